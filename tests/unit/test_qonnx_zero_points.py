"""Non-zero zero points, where they are exact: ``R(v + z) == R(v) + z`` (FLOOR, CEIL; round-half-even for
an even ``z``), so the zero point only shifts the clamp range. A uint8 QuantizeLinear/DequantizeLinear
pair with zero point 128 and Quant nodes with integer zero points: the bit-accurate simulator equals the
float semantics (QONNX's, onnxruntime's) bit for bit; an odd zero point under ROUND is refused by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.frontend.onnx import load_onnx
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir.quant import quant_float
from fpgac.passes.quantize import Quantize, QuantizeError

DOMAIN = "qonnx.custom_op.general"
CASES = [
    (True, "ROUND", 2),
    (True, "FLOOR", -3),
    (False, "CEIL", 5),
    (False, "ROUND", 128),
    (True, "ROUND", 3),
]


def _save(path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], outs: list[str]) -> Path:
    graph = helper.make_graph(
        nodes,
        "zp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 4]) for o in outs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def _x() -> np.ndarray:
    """Inputs on a 2**-6 grid over [-40, 40): ties, clamps at both ends, nothing rounded by the input."""
    return (np.random.default_rng(0).integers(-40 * 64, 40 * 64, size=(512, 4)) / 64).astype(np.float32)


def _quant_graph(tmp_path: Path, cases: list[tuple[bool, str, int]]) -> Path:
    inits = {"s": np.array(0.25, np.float32), "b": np.array(8.0, np.float32)}
    nodes = []
    for k, (signed, mode, zero) in enumerate(cases):
        inits[f"z{k}"] = np.array(zero, np.float32)
        nodes.append(
            helper.make_node(
                "Quant", ["x", "s", f"z{k}", "b"], [f"y{k}"], name=f"q{k}", domain=DOMAIN,
                signed=int(signed), rounding_mode=mode,
            )
        )  # fmt: skip
    return _save(tmp_path / "zp.onnx", nodes, inits, [f"y{k}" for k in range(len(cases))])


def test_integer_zero_points_are_exact(tmp_path: Path) -> None:
    cases = CASES[:-1]
    x = _x()
    graph = load_onnx(_quant_graph(tmp_path, cases))
    fixed = Quantize(precision=16, calib=(x,)).run(graph)
    for k, ((signed, mode, zero), got) in enumerate(zip(cases, run_fixed(fixed, [x]).outputs, strict=True)):
        want = quant_float(
            x.astype(np.float64), np.array(0.25), np.array(float(zero)), 8, signed, False, mode
        )
        assert np.array_equal(got, want), (k, np.argwhere(got != want)[:3])


def test_odd_zero_point_under_round_is_refused(tmp_path: Path) -> None:
    graph = load_onnx(_quant_graph(tmp_path, CASES[-1:]))
    with pytest.raises(QuantizeError, match=r"q0.*odd zero point"):
        Quantize(precision=16, calib=(_x(),)).run(graph)


def test_uint8_quantize_linear_pair_with_zero_point_128(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    inits = {"s": np.array(2.0**-3, np.float32), "z": np.array(128, np.uint8)}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
    ]
    path = _save(tmp_path / "qdq.onnx", nodes, inits, ["y"])
    x = _x()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    graph = load_onnx(path)
    assert np.array_equal(run_float(graph, [x])[0], want)
    fixed = Quantize(precision=16, calib=(x,)).run(graph)
    assert np.array_equal(run_fixed(fixed, [x]).outputs[0], want)
