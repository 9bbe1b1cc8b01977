"""Build plans are written atomically and never outside the build folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpgac.backends.plan import MARKER, BuildFolderError, BuildPlan, write_plan


def test_write_replaces_an_earlier_build(tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = BuildPlan()
    plan.add("a.txt", "one")
    plan.add("sub/b.bin", b"\x00\x01")
    write_plan(plan, out)
    assert (out / "a.txt").read_text() == "one"
    assert (out / MARKER).is_file()
    second = BuildPlan()
    second.add("c.txt", "two")
    write_plan(second, out)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "c.txt"])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folders left


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "", "a\\b", "./a"])
def test_refuses_paths_outside_the_folder(path: str) -> None:
    with pytest.raises(BuildFolderError, match="refusing"):
        BuildPlan().add(path, "x")


def test_refuses_foreign_folder_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    plan = BuildPlan()
    plan.add("a.txt", "x")
    with pytest.raises(BuildFolderError, match="--force"):
        write_plan(plan, tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    write_plan(plan, tmp_path, force=True)
    assert not (tmp_path / "mine.txt").exists()


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = BuildPlan()
    plan.add("a.txt", "x")

    def boom(self: Path, data: bytes) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", boom)
    with pytest.raises(BuildFolderError, match="disk full"):
        write_plan(plan, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
