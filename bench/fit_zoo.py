"""Does ``fpgac build --board B`` fit B? The fitted design of ImageNet-sized models, per board.

``python bench/fit_zoo.py [--boards zcu104,pynq-z2] [MODEL ...]`` quantizes each model once (16 bits, a
calibration batch of 2 standard-normal samples) and fits it (:func:`fpgac.analysis.fit.fit`, io auto,
weights auto, util 0.8) to each board, printing a Markdown table: fits, io, frames per second, ii, what
bounds it, off-chip layers, channel-folded stream values, utilisation and the time the fitting took
(reading the layers' datapaths included). Models: the onnx package's weightless ``light_*`` ImageNet
models with seeded random weights (``randomize_weights`` of tests/numerics/test_onnx_zoo.py) and
tests/models.py's depthwise_separable. A second table gives each model's smallest board preset (by LUTs)
whose fitted design fits, its frame rate there, and the fitting's one-line reason why the smallest preset of
all does not fit.
Run big models under ``flock /tmp/bigmodel.lock``: VGG-19 takes minutes and ~15 GB to quantize.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the models the tests use

from fpgac.analysis.fit import fit
from fpgac.boards import BOARDS, Board, get_board
from fpgac.build import BuildOptions, compile_model, load_model
from fpgac.errors import FpgacError
from fpgac.ir import Graph
from fpgac.ir.boundary import array_shape

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = (
    "resnet50",
    "vgg19",
    "densenet121",
    "inception_v2",
    "squeezenet",
    "shufflenet",
    "bvlc_alexnet",
    "depthwise_separable",
)


def _onnx_file(name: str, folder: Path) -> Path:
    """The model file: a light model with random weights, or an export of a tests/models.py model."""
    path = folder / f"{name}.onnx"
    if name.startswith("depthwise"):
        from tests.models import export_named

        return export_named(name, "torchscript", folder)
    from tests.numerics.test_onnx_zoo import randomize_weights

    onnx.save(randomize_weights(onnx.load(str(LIGHT / f"light_{name}.onnx"))), str(path))
    return path


def _quantized(name: str, folder: Path) -> Graph:
    model = _onnx_file(name, folder)
    graph = load_model(model)
    shape = array_shape(graph, graph.inputs[0])  # without the batch axis, in the callers' layout (NHWC)
    calib = folder / f"{name}_calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32))
    return compile_model(model, BuildOptions(calib=calib, backend="none", reuse=1)).graph


def _smallest(graph: Graph) -> str:
    """A row of the second table: the smallest preset that fits, and why the smallest of all does not."""
    by_size: list[Board] = sorted(BOARDS.values(), key=lambda b: b.lut)
    fitted = [(board, fit(graph, board)) for board in by_size]
    first = next(((b, f) for b, f in fitted if f.fits and f.within_util), None)
    where = f"{first[0].name} | {first[1].estimate.fps:,.2f}" if first else "none | -"
    smallest, at_smallest = fitted[0]
    why = "-" if first and first[0] is smallest else f"{smallest.name}: {at_smallest.note}"
    return f"{where} | {why}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--boards", default="zcu104,pynq-z2")
    args = parser.parse_args()
    boards = [get_board(b) for b in args.boards.split(",")]
    print(
        "| model | board | fits | io | fps | ii | bound | off-chip layers | folded values | DSP | LUT | FF "
        "| BRAM18 | URAM | fit s | note |"
    )
    print("|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    smallest: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            try:
                graph = _quantized(name, Path(tmp))
            except FpgacError as exc:  # an op without a fixed-point kernel: nothing to fit
                print(f"| {name} | all | cannot build | | | | | | | | | | | | | {exc} |", flush=True)
                continue
            for board in boards:
                start = time.perf_counter()
                f = fit(graph, board)
                seconds = time.perf_counter() - start
                u = f.estimate.utilization
                bound = f.limit + (f" ({f.limit_layer})" if f.limit_layer else "")
                print(
                    f"| {name} | {board.name} | {f.fits} | {f.io} | {f.estimate.fps:,.2f} "
                    f"| {f.estimate.ii:,} | {bound} | {len(f.offchip)} | {len(f.lanes)} | "
                    + " | ".join(f"{u[k]:.0%}" for k in ("dsp", "lut", "ff", "bram18", "uram"))
                    + f" | {seconds:.2f} | {f.note or ''} |",
                    flush=True,
                )
            smallest.append(f"| {name} | {_smallest(graph)} |")
    print("\n| model | smallest preset that fits | fps there | why not the smallest preset |")
    print("|---|---|---:|---|")
    print("\n".join(smallest))


if __name__ == "__main__":
    main()
