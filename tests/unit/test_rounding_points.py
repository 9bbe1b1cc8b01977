"""Declared rounding points: a binary weight of scale 0.1 (Brevitas' default) feeding a ROUND quantizer.

The design computes ``0.1f * sum(+-x)`` exactly and rounds it to float32's resolution, as float QONNX
execution stores it: the exact ties of the model with the decimal scale 0.1 (float32's 0.1 is 1.5e-8
above it) become ties, rounded to even. The report counts exactly those values (where a float32 sum in
another order could round the other way); on this 8-term layer qonnx's execution equals the design on
every sample, ties included.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.build import BuildOptions, build
from fpgac.interp.simulator import run_fixed
from fpgac.ir.serialize import load_graph

DOMAIN = "qonnx.custom_op.general"
WIDTH, OUT, STEP = 8, 4, 0.5


def _model(path: Path) -> tuple[Path, np.ndarray]:
    """x -> Quant (8 bits, 2**-4) -> MatMul(BipolarQuant(w, 0.1)) -> Quant (5 bits, 0.5, ROUND)."""
    rng = np.random.default_rng(0)
    inits = {
        "w": rng.normal(size=(WIDTH, OUT)).astype(np.float32),
        "ws": np.array(0.1, np.float32),
        "xs": np.array(2.0**-4, np.float32),
        "ys": np.array(STEP, np.float32),
        "z": np.array(0.0, np.float32),
        "xb": np.array(8.0, np.float32),
        "yb": np.array(5.0, np.float32),
    }
    nodes = [
        helper.make_node("Quant", ["x", "xs", "z", "xb"], ["xq"], domain=DOMAIN, signed=1, narrow=0),
        helper.make_node("BipolarQuant", ["w", "ws"], ["wq"], domain=DOMAIN),
        helper.make_node("MatMul", ["xq", "wq"], ["h"], name="fc"),
        helper.make_node("Quant", ["h", "ys", "z", "yb"], ["y"], domain=DOMAIN, signed=1, narrow=0),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", OUT])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path, np.where(inits["w"] >= 0, 1.0, -1.0)


def _ties(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Where ``0.1 * (x @ codes)`` is exactly half-way between two steps (``s == 5 (k + 1/2)``)."""
    s = x.astype(np.float64) @ codes  # sums of multiples of 2**-4: exact
    return (2 * s) % 10 == 5


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    root = tmp_path_factory.mktemp("rounding_points")
    path, codes = _model(root / "m.onnx")
    rng = np.random.default_rng(1)
    x = (rng.integers(-32, 32, size=(256, WIDTH)) / 16).astype(np.float32)
    x[::2] = rng.integers(-1, 2, size=(128, WIDTH)) * 1.25  # sums 1.25 n: a tie where n = 2 mod 4
    np.save(root / "calib.npy", x)
    build(path, root / "build", BuildOptions(calib=root / "calib.npy", backend="none"))
    return path, root / "build", x, codes


def test_report_counts_the_values_on_ties_of_the_decimal_scale(
    built: tuple[Path, Path, np.ndarray, np.ndarray],
) -> None:
    _, folder, x, codes = built
    report = json.loads((folder / "report.json").read_text())
    (row,) = report["rounding_points"]
    samples = row["of_samples"]
    ties = _ties(x[:samples], codes)
    assert row["layer"] == "fc" and row["scale"] == [float(np.float32(0.1))] and row["step"] == STEP
    assert row["values"] == ties.sum() > 0 and row["of"] == ties.size
    assert row["samples"] == np.any(ties, axis=1).sum()
    assert "## Declared rounding points" in (folder / "report.md").read_text()


def test_qonnx_equals_the_design_on_every_sample_ties_included(
    built: tuple[Path, Path, np.ndarray, np.ndarray],
) -> None:
    pytest.importorskip("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    path, folder, x, codes = built
    model = onnx.load(path)
    for info in (*model.graph.input, *model.graph.output):
        info.type.tensor_type.shape.dim[0].dim_value = len(x)
    theirs = execute_onnx(ModelWrapper(model).transform(InferShapes()), {"x": x})["y"]
    ours = run_fixed(load_graph(folder), [x]).outputs[0]
    assert _ties(x, codes).sum() > 100  # the exact product rounded up 128 of them the other way
    np.testing.assert_array_equal(ours, theirs)
