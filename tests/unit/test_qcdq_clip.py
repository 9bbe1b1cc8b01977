"""QCDQ, as qonnx's QuantToQCDQ and Brevitas' QCDQ export write fewer than 8 bits: QuantizeLinear (int8 or
uint8) -> Clip with integer bounds -> DequantizeLinear. The Clip narrows the integer range: the design
equals onnxruntime bit for bit (both exact on the dyadic grid); a range that is no bit width is refused."""

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
from fpgac.passes.quantize import Quantize


def _qcdq(path: Path, zero: np.ndarray, low: int, high: int) -> Path:
    inits = {
        "s": np.array(2.0**-3, np.float32),
        "z": zero,
        "lo": np.array(low, zero.dtype),
        "hi": np.array(high, zero.dtype),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("Clip", ["q", "lo", "hi"], ["c"], name="clip"),
        helper.make_node("DequantizeLinear", ["c", "s", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qcdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.parametrize(
    ("zero", "low", "high"),
    [(np.array(0, np.int8), -7, 7), (np.array(0, np.uint8), 0, 15), (np.array(3, np.int8), -8, 7)],
    ids=["int4-narrow", "uint4", "int4-odd-zero-point"],
)
def test_qcdq_clip_narrows_the_range(tmp_path: Path, zero: np.ndarray, low: int, high: int) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = _qcdq(tmp_path / "qcdq.onnx", zero, low, high)
    x = (np.random.default_rng(0).integers(-3 * 64, 3 * 64, size=(256, 4)) / 64).astype(np.float32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    graph = load_onnx(path)
    assert [n.op for n in graph.nodes][-1] == "quant"
    assert np.array_equal(run_float(graph, [x])[0], want)
    assert np.array_equal(run_fixed(Quantize(precision=16, calib=(x,)).run(graph), [x]).outputs[0], want)


def test_a_clip_range_that_is_no_bit_width_is_refused(tmp_path: Path) -> None:
    path = _qcdq(tmp_path / "qcdq.onnx", np.array(0, np.int8), -5, 9)
    with pytest.raises(FpgacError, match=r"qcdq.onnx.*'clip'.*Clip.*\[-5, 9\] is no QONNX integer range"):
        load_onnx(path)


def test_qcdq_on_a_weight_is_folded(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    inits = {
        "w": rng.normal(size=(4, 3)).astype(np.float32),
        "s": np.array(0.125, np.float32),
        "z": np.array(0, np.int8),
        "lo": np.array(-7, np.int8),
        "hi": np.array(7, np.int8),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"]),
        helper.make_node("Clip", ["q", "lo", "hi"], ["c"]),
        helper.make_node("DequantizeLinear", ["c", "s", "z"], ["wd"]),
        helper.make_node("MatMul", ["x", "wd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qcdq_weight",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    path = tmp_path / "w.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(run_float(load_onnx(path), [x])[0], want, rtol=1e-6, atol=1e-6)
