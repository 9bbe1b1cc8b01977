"""Non-zero zero points: ``R(v + z) == R(v) + z`` for FLOOR, CEIL and round-half-even with an even ``z``,
so the zero point only shifts the clamp range; with an odd ``z`` round-half-even sends ties to odd, which
the design computes as one step added before the rounding and taken off after. Per tensor and per channel,
Quant nodes and QuantizeLinear/DequantizeLinear pairs: the bit-accurate simulator equals the float
semantics (QONNX's, onnxruntime's) bit for bit; a zero point under a sign-dependent mode is refused by
name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.errors import FpgacError
from fpgac.frontend.onnx import load_onnx
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir.quant import quant_float
from fpgac.passes.quantize import Quantize

DOMAIN = "qonnx.custom_op.general"
CASES = [
    (True, "ROUND", 2),
    (True, "FLOOR", -3),
    (False, "CEIL", 5),
    (False, "ROUND", 128),
    (True, "ROUND", 3),
    (False, "ROUND", -7),
    (True, "HALF_UP", 3),
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
    cases = CASES[:-1]  # odd ones under ROUND included
    x = _x()
    graph = load_onnx(_quant_graph(tmp_path, cases))
    fixed = Quantize(precision=16, calib=(x,)).run(graph)
    for k, ((signed, mode, zero), got) in enumerate(zip(cases, run_fixed(fixed, [x]).outputs, strict=True)):
        want = quant_float(
            x.astype(np.float64), np.array(0.25), np.array(float(zero)), 8, signed, False, mode
        )
        assert np.array_equal(got, want), (k, np.argwhere(got != want)[:3])


def test_zero_point_under_a_sign_dependent_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        FpgacError, match=r"zp.onnx: node 'q0' \(op .*Quant\): .*HALF_UP has no fixed-point form"
    ):
        load_onnx(_quant_graph(tmp_path, CASES[-1:]))


def test_per_channel_scales_and_odd_zero_points_are_exact(tmp_path: Path) -> None:
    scale = np.array([0.25, 0.5, 0.25, 0.125], np.float32)
    zero = np.array([3.0, -2.0, 0.0, 5.0], np.float32)
    inits = {"s": scale, "z": zero, "b": np.array(6.0, np.float32)}
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], name="q", domain=DOMAIN, signed=1)]
    x = _x()
    graph = load_onnx(_save(tmp_path / "zp_channel.onnx", nodes, inits, ["y"]))
    got = run_fixed(Quantize(precision=16, calib=(x,)).run(graph), [x]).outputs[0]
    want = quant_float(
        x.astype(np.float64), scale.astype(np.float64), zero.astype(np.float64), 6, True, False, "ROUND"
    )
    assert np.array_equal(got, want), np.argwhere(got != want)[:3]


@pytest.mark.parametrize(
    ("scale", "zero"),
    [
        (np.array(2.0**-3, np.float32), np.array(128, np.uint8)),
        (np.array([2.0**-3, 2.0**-2, 2.0**-3, 1.0], np.float32), np.array([1, -3, 0, 5], np.int8)),
    ],
    ids=["uint8-128", "int8-per-axis-odd"],
)
def test_quantize_linear_pairs_with_zero_points(tmp_path: Path, scale: np.ndarray, zero: np.ndarray) -> None:
    ort = pytest.importorskip("onnxruntime")
    inits = {"s": scale, "z": zero}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1),
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


def test_weight_quantize_linear_with_an_odd_zero_point_rounds_before_adding_it(tmp_path: Path) -> None:
    """On a weight the pair is folded: ties (``k + 1/2`` steps) go to even before the zero point is added."""
    ort = pytest.importorskip("onnxruntime")
    w = ((np.arange(16, dtype=np.float32).reshape(4, 4) - 8) + 0.5) * np.float32(0.25)  # every one a tie
    inits = {"w": w, "s": np.array(0.25, np.float32), "z": np.array(3, np.int8)}
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
        helper.make_node("MatMul", ["x", "wd"], ["y"]),
    ]
    path = _save(tmp_path / "wzp.onnx", nodes, inits, ["y"])
    x = _x()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no QDQ fusion
    want = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(run_float(load_onnx(path), [x])[0], want, rtol=1e-6, atol=1e-5)
