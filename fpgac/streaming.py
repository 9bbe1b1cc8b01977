"""Running a model over an input file chunk by chunk: memory bounded by the chunk, not by the file.

``fpgac sim`` of a build reads its ``.npy`` input a chunk of samples at a time and writes each chunk's
outputs as soon as they are computed, so a million-sample batch (3.1 GB of float32 MNIST) runs in the
memory of a few thousand samples. The input is read with plain file reads, not a memory map: every page a
map touches counts in the process's resident memory until it is unmapped, which for a whole pass over the
file is the whole file. A ``.npz`` input (several inputs) is loaded whole; outputs go to a temporary file
renamed into place at the end, so a failed run (a NaN in the last chunk, say) leaves no output behind.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fpgac.arrays import ArrayFileError, check_input, check_output_path, load_inputs, output_names
from fpgac.ir import Graph

Run = Callable[[list[np.ndarray]], list[np.ndarray]]


def run_file(graph: Graph, input_path: Path, output_path: Path, run: Run, rows: int) -> list[tuple[int, ...]]:
    """Apply ``run`` to ``rows`` samples of ``input_path`` at a time, writing ``output_path`` atomically.

    ``run`` takes the graph's inputs for one chunk (float32, batch first) and returns its outputs; the
    chunks' outputs are concatenated along the batch. Returns the shapes of the outputs written.
    """
    check_output_path(output_path, graph)
    total, chunks = _input_chunks(Path(input_path), graph, rows)
    names = output_names(graph)
    parts = [output_path.with_name(f".{output_path.name}.{i}.tmp") for i in range(len(names))]
    tmp = output_path.with_name(f".{output_path.name}.tmp")
    writers: list[_NpyWriter] = []
    try:
        with contextlib.ExitStack() as stack:
            for chunk in chunks:
                outputs = run(chunk)
                if not writers:
                    files = [stack.enter_context(open(p if len(names) > 1 else tmp, "wb")) for p in parts]
                    writers = [_NpyWriter(f, total, o) for f, o in zip(files, outputs, strict=True)]
                for writer, output in zip(writers, outputs, strict=True):
                    writer.write(output)
        if len(names) > 1 or output_path.suffix == ".npz":
            _zip_members(tmp, parts if len(names) > 1 else [tmp], names)
        tmp.replace(output_path)
    finally:
        for path in [*parts, tmp]:
            path.unlink(missing_ok=True)
    return [(total, *w.sample_shape) for w in writers]


def _input_chunks(path: Path, graph: Graph, rows: int) -> tuple[int, Iterator[list[np.ndarray]]]:
    """The batch size and an iterator over chunks of at most ``rows`` samples (at least one chunk)."""
    if path.suffix != ".npz" and len(graph.inputs) == 1:
        header = _npy_header(path)
        if header is not None:
            shape, dtype, offset = header
            check_input(path, graph, graph.inputs[0], dtype, shape)
            return shape[0], _read_rows(path, shape, dtype, offset, rows)
    arrays = load_inputs(path, graph)
    total = arrays[0].shape[0]
    starts = range(0, total, rows) if total else range(1)
    return total, iter([[a[i : i + rows] for a in arrays] for i in starts])


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """Shape, dtype and data offset of a C-ordered ``.npy``; None for anything else (loaded whole)."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None  # load_inputs says what is wrong with it
    if not isinstance(mapped, np.memmap) or not mapped.flags.c_contiguous or mapped.ndim == 0:
        return None
    shape, dtype, offset = tuple(mapped.shape), mapped.dtype, int(mapped.offset)
    del mapped  # the map is only for the header: see the module docstring
    return shape, dtype, offset


def _read_rows(
    path: Path, shape: tuple[int, ...], dtype: np.dtype, offset: int, rows: int
) -> Iterator[list[np.ndarray]]:
    per_sample = int(np.prod(shape[1:], dtype=np.int64))
    with open(path, "rb") as handle:
        handle.seek(offset)
        for start in range(0, shape[0], rows) if shape[0] else range(1):
            count = min(rows, shape[0] - start)
            chunk = np.empty((count, *shape[1:]), dtype)
            if handle.readinto(chunk.reshape(-1).view(np.uint8).data) != chunk.nbytes:
                raise ArrayFileError(
                    f"{path}: the file ends before its {shape[0]} samples ({per_sample} values each)"
                )
            yield [chunk.astype(np.float32, copy=False)]


class _NpyWriter:
    """A ``.npy`` of ``total`` samples written chunk by chunk (its header says the whole shape up front)."""

    def __init__(self, handle: BinaryIO, total: int, first: np.ndarray) -> None:
        self.handle, self.total, self.written = handle, total, 0
        self.sample_shape, self.dtype = tuple(first.shape[1:]), first.dtype
        header = np.lib.format.header_data_from_array_1_0(first)
        header["shape"] = (total, *self.sample_shape)
        np.lib.format.write_array_header_1_0(handle, header)

    def write(self, chunk: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(chunk, dtype=self.dtype).tobytes())
        self.written += chunk.shape[0]
        if self.written > self.total:
            raise ArrayFileError(f"more output samples than the {self.total} inputs")


def _zip_members(tmp: Path, members: list[Path], names: list[str]) -> None:
    """An ``.npz`` (stored, as ``np.savez`` writes it) of the ``.npy`` files ``members``, keyed by name."""
    zipped = tmp.with_name(tmp.name + ".zip")
    try:
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for member, name in zip(members, names, strict=True):
                archive.write(member, f"{name}.npy")
        zipped.replace(tmp)
    finally:
        zipped.unlink(missing_ok=True)
