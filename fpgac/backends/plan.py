"""Build plans: what a backend wants written, and the one place that writes it.

Backends return a :class:`BuildPlan` (relative path -> bytes) and never touch the
disk, as in Amaranth's ``build/plat.py``. A big file (a model's weights, as an
archive or as C literals) may instead be planned as a function that writes it, run
only when the plan is written, so a plan never holds a second copy of the weights.
:func:`write_plan` writes a plan into a temporary folder beside the target and
renames it into place, so a failed or interrupted build never leaves a
half-written folder, and refuses any path that would escape the build folder.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from fpgac.errors import FpgacError

MARKER = ".fpgac-build"


class BuildFolderError(FpgacError):
    """The build folder cannot be written as asked."""


Writer = Callable[[BinaryIO], None]
"""Writes a planned file's bytes to an open file, when the plan is written (or read through ``files``)."""


@dataclass
class BuildPlan:
    """Files of a build folder, by relative POSIX path: bytes, or a :data:`Writer` that makes them."""

    contents: dict[str, bytes | Writer] = field(default_factory=dict)

    def add(self, path: str, content: str | bytes | Writer) -> None:
        _check_relative(path)
        if path in self.contents:
            raise BuildFolderError(f"build plan writes {path!r} twice")
        self.contents[path] = content.encode() if isinstance(content, str) else content

    def merge(self, other: BuildPlan, prefix: str = "") -> None:
        for path, content in other.contents.items():
            self.add(f"{prefix}{path}", content)

    @property
    def files(self) -> Mapping[str, bytes]:
        """Every file's bytes by path; a writer's file is made when it is read."""
        return _Files(self.contents)


class _Files(Mapping[str, bytes]):
    def __init__(self, contents: Mapping[str, bytes | Writer]) -> None:
        self._contents = contents

    def __getitem__(self, path: str) -> bytes:
        content = self._contents[path]
        if isinstance(content, bytes):
            return content
        buffer = io.BytesIO()
        content(buffer)
        return buffer.getvalue()

    def __iter__(self) -> Iterator[str]:
        return iter(self._contents)

    def __len__(self) -> int:
        return len(self._contents)


def _check_relative(path: str) -> None:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path or path != pure.as_posix():
        raise BuildFolderError(f"refusing to write {path!r}: not a plain path inside the build folder")


def is_build_folder(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def check_target(folder: Path, *, force: bool = False) -> None:
    """Refuse a target that is a file, or a folder fpgac did not make (unless ``force``).

    Called before a build starts too, so a wrong ``--out`` fails at once, not after compiling.
    """
    if folder.exists():
        if not folder.is_dir():
            raise BuildFolderError(f"{folder}: exists and is not a folder")
        if not force and any(folder.iterdir()) and not is_build_folder(folder):
            raise BuildFolderError(
                f"{folder}: exists and is not an fpgac build folder; use --force to replace it"
            )


def write_plan(plan: BuildPlan, folder: str | Path, *, force: bool = False) -> Path:
    """Write ``plan`` to ``folder`` atomically (replacing an earlier fpgac build there).

    An existing folder that fpgac did not make is refused unless ``force``, so a
    typo in ``--out`` cannot wipe someone's work.
    """
    folder = Path(folder)
    check_target(folder, force=force)
    parent = folder.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=parent))
    except OSError as exc:
        raise BuildFolderError(f"{folder}: cannot create the build folder ({exc.strerror or exc})") from None
    try:
        for path, content in sorted(plan.contents.items()):
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                with target.open("wb") as file:
                    content(file)
        (staging / MARKER).write_text("written by fpgac; safe to delete\n")
        os.chmod(staging, 0o755)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=parent))
            old.rmdir()
            folder.rename(old)
            staging.rename(folder)
            shutil.rmtree(old)
        else:
            staging.rename(folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BuildFolderError(f"{folder}: cannot write the build folder ({exc.strerror or exc})") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
