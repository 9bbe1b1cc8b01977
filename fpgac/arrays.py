"""Reading input batches and writing output batches (``.npy`` / ``.npz``) for the CLI.

A single-input model takes a ``.npy``; a model with several inputs takes a
``.npz`` keyed by input name. Outputs are written the same way. Arrays are
batch-first in the model's own layout (NCHW for a PyTorch export, NHWC for a tf2onnx or Keras one, the
inputs and the feature-map outputs alike: :mod:`fpgac.ir.boundary`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fpgac.errors import FpgacError
from fpgac.ir import Graph
from fpgac.ir.boundary import array_shape
from fpgac.ir.graph import Value


class ArrayFileError(FpgacError):
    """An input or output array file that cannot be used."""


def _read(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    if not path.is_file():
        raise ArrayFileError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # numpy reads any non-numpy bytes as a possible pickle and says so: that is no help here.
        why = "" if "pickle" in str(exc) else f" ({exc})"
        raise ArrayFileError(f"{path}: not a numpy .npy/.npz array file{why}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        return {key: loaded[key] for key in loaded.files}


def load_inputs(path: str | Path, graph: Graph) -> list[np.ndarray]:
    """The graph's inputs from ``path``, checked for dtype and per-sample shape."""
    path = Path(path)
    data = _read(path)
    names = [v.name for v in graph.inputs]
    if isinstance(data, np.ndarray):
        if len(names) != 1:
            raise ArrayFileError(
                f"{path}: the model has {len(names)} inputs {names}; pass a .npz keyed by name"
            )
        arrays = [data]
    else:
        missing = [n for n in names if n not in data]
        if missing:
            raise ArrayFileError(f"{path}: no array for input(s) {missing}; it holds {sorted(data)}")
        arrays = [data[n] for n in names]
    checked = []
    for value, array in zip(graph.inputs, arrays, strict=True):
        check_input(path, graph, value, array.dtype, array.shape)
        checked.append(array.astype(np.float32, copy=False))
    return checked


def check_input(path: Path, graph: Graph, value: Value, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Refuse an input array of ``dtype`` and ``shape`` that is not a batch of graph input ``value`` (in
    the callers' layout of it: :mod:`fpgac.ir.boundary`)."""
    per_sample = array_shape(graph, value)
    expected = "(N, " + ", ".join(str(d) for d in per_sample) + ")"
    if dtype.kind not in "fiub":
        raise ArrayFileError(f"{path}: input {value.name!r} has dtype {dtype}, expected numbers")
    if len(shape) != len(per_sample) + 1 or tuple(shape[1:]) != per_sample:
        raise ArrayFileError(
            f"{path}: input {value.name!r} has shape {tuple(shape)} but the model takes {expected}"
        )


def output_names(graph: Graph) -> list[str]:
    """The model's own output names, in order.

    They come from the ONNX file (kept in the graph's metadata): two ONNX outputs may be one IR value (an
    output returned twice, or an input passed through), so value names can repeat or differ.
    """
    names = list(graph.metadata.get("outputs", {}))
    return names if len(names) == len(graph.outputs) else [v.name for v in graph.outputs]


def check_output_path(path: str | Path, graph: Graph) -> None:
    """Refuse an output file the outputs cannot be written to as its name says.

    numpy writes to any name, so ``y.txt`` would silently hold ``.npy`` bytes. The CLI calls this before
    it simulates, so a long C-simulation does not end in this error.
    """
    path = Path(path)
    count = len(graph.outputs)
    if count > 1 and path.suffix != ".npz":
        raise ArrayFileError(f"{path}: the model has {count} outputs; write them to a .npz")
    if path.suffix not in (".npy", ".npz"):
        raise ArrayFileError(f"{path}: write the output to a .npy (or a .npz keyed by output name)")
    if not path.parent.is_dir():
        raise ArrayFileError(f"{path}: folder {path.parent} does not exist")


def save_outputs(path: str | Path, graph: Graph, outputs: list[np.ndarray]) -> None:
    """Write outputs atomically: ``.npy`` for one output, ``.npz`` keyed by name (for any number)."""
    path = Path(path)
    check_output_path(path, graph)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        if path.suffix == ".npy":
            np.save(handle, outputs[0])
        else:
            np.savez(handle, allow_pickle=False, **dict(zip(output_names(graph), outputs, strict=True)))
    tmp.replace(path)
