"""Golden files: the generated HLS project of two small models, pinned byte for byte (normalized).

A change to code generation shows up here as a readable diff of C++ and Tcl. When the change is intended,
regenerate with ``FPGAC_REGEN_GOLDEN=1 pytest tests/golden`` and review the diff before committing.
Normalization: the fpgac version in generated headers is replaced by ``<version>``, so a release does not
touch every file. The models are built directly in the IR (no exporter in the loop), seeded, and quantized
with a fixed calibration batch, so the files depend on fpgac alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fpgac import __version__
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.ir import Graph, Param, TensorType
from fpgac.passes.quantize import Quantize

GOLDEN = Path(__file__).parent / "vitis"
TEMPLATES = Path(__file__).resolve().parents[2] / "fpgac" / "hls_templates"
REGEN = os.environ.get("FPGAC_REGEN_GOLDEN") == "1"


def _param(rng: np.random.Generator, *shape: int) -> Param:
    return Param((rng.standard_normal(shape) * 0.5).astype(np.float32))


def mlp() -> tuple[Graph, np.ndarray]:
    """8 -> 6 -> 4 with ReLU, then Softmax."""
    rng = np.random.default_rng(1)
    graph = Graph("golden_mlp")
    x = graph.add_input("x", TensorType((8,)))
    fc1 = graph.add("dense", [x], name="fc1", params={"weight": _param(rng, 6, 8), "bias": _param(rng, 6)})
    act = graph.add("relu", [fc1.output], name="relu1")
    fc2 = graph.add(
        "dense", [act.output], name="fc2", params={"weight": _param(rng, 4, 6), "bias": _param(rng, 4)}
    )
    prob = graph.add("softmax", [fc2.output], name="prob", attrs={"axis": 0})
    graph.set_outputs([prob.output])
    return graph, rng.uniform(-1, 1, (64, 8)).astype(np.float32)


def cnn() -> tuple[Graph, np.ndarray]:
    """1x6x6 -> conv 3x3 (2 ch) -> ReLU -> max pool 2 -> global average -> dense 3 -> sigmoid."""
    rng = np.random.default_rng(2)
    graph = Graph("golden_cnn")
    x = graph.add_input("image", TensorType((1, 6, 6)))
    conv_attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    conv = graph.add(
        "conv",
        [x],
        name="conv",
        attrs=conv_attrs,
        params={"weight": _param(rng, 2, 1, 3, 3), "bias": _param(rng, 2)},
    )
    act = graph.add("relu", [conv.output], name="relu")
    pool_attrs = {
        "kernel": [2, 2],
        "strides": [2, 2],
        "pads": [0, 0, 0, 0],
        "dilations": [1, 1],
        "ceil_mode": False,
    }
    pool = graph.add("max_pool", [act.output], name="pool", attrs=pool_attrs)
    gap = graph.add(
        "reduce", [pool.output], name="gap", attrs={"mode": "mean", "axes": [1, 2], "keepdims": False}
    )
    fc = graph.add(
        "dense", [gap.output], name="fc", params={"weight": _param(rng, 3, 2), "bias": _param(rng, 3)}
    )
    out = graph.add("sigmoid", [fc.output], name="out")
    graph.set_outputs([out.output])
    return graph, rng.uniform(0, 1, (64, 1, 6, 6)).astype(np.float32)


# The MLP pins the io_parallel style; the CNN the io_stream style, with a reuse factor on its conv.
STYLES = {"mlp": ("parallel", {}), "cnn": ("stream", {"conv": 4})}


def _generated(make) -> dict[str, str]:
    graph, calib = make()
    graph = Quantize(precision=10, calib=(calib,)).run(graph)
    io, reuse = STYLES[make.__name__]
    plan = vitis_plan(graph, get_board("pynq-z2"), io, reuse, model=f"{graph.name}.onnx")
    # The hand-written kernel headers are copied verbatim: they are source, not generated, so not pinned.
    copied = {p.name for p in TEMPLATES.glob("*.h")}
    return {
        path: data.decode().replace(f"fpgac {__version__}", "fpgac <version>")
        for path, data in sorted(plan.files.items())
        if path.endswith((".cpp", ".h", ".tcl", ".md", ".txt")) and Path(path).name not in copied
    }


@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp", "cnn"])
def test_generated_project_matches_golden(make) -> None:
    files = _generated(make)
    folder = GOLDEN / make.__name__
    if REGEN:
        for path, text in files.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
    expected = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert sorted(files) == expected, "generated file list changed (FPGAC_REGEN_GOLDEN=1 to accept)"
    for path, text in files.items():
        assert text == (folder / path).read_text(), f"{make.__name__}/{path} changed (FPGAC_REGEN_GOLDEN=1)"
