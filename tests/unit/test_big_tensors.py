"""Big tensors are quantized in chunks, measured on the fly and kept out of shape inference; the results
are those of one piece.

The chunk size is made tiny here so that small arrays cross chunk boundaries.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.analysis.ranges import RangeError, calibrated_ranges
from fpgac.frontend import onnx as onnx_frontend
from fpgac.interp.interpreter import run_float
from fpgac.ir import fixed
from fpgac.ir.graph import Graph, Param
from fpgac.ir.types import Fixed, Overflow, Rounding
from fpgac.passes import quantize
from tests.unit.test_quantize import mlp

FMT = Fixed(10, 3, True, Rounding.RND_CONV, Overflow.SAT)


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((7, 13)).astype(np.float32) * 3
    data[0, :3] = [np.inf, -np.inf, 1e-310]  # saturation and the bitwise path in some chunks only
    return data


def test_chunked_quantize_equals_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    whole, whole_bad = fixed.quantize(data, FMT, return_overflow=True)
    monkeypatch.setattr(fixed, "QUANTIZE_CHUNK", 5)
    chunked, chunked_bad = fixed.quantize(data, FMT, return_overflow=True)
    assert chunked.shape == data.shape and chunked.dtype == whole.dtype
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(chunked_bad, whole_bad)


def test_chunked_param_and_row_sums_equal_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()[1:]  # finite
    whole = quantize._quantized(data, FMT)
    sums = np.abs(quantize._mantissas(whole)).reshape(len(data), -1).sum(axis=1)
    monkeypatch.setattr(fixed, "QUANTIZE_CHUNK", 5)
    chunked = quantize._quantized(data, FMT)
    assert chunked.data.dtype == np.float64
    np.testing.assert_array_equal(chunked.data, whole.data)
    row_sums = quantize._abs_row_sums(chunked)
    assert row_sums.dtype == object and row_sums.tolist() == sums.tolist()
    assert quantize._quantized(np.float64(0.3), FMT).data.shape == ()  # scalars stay scalar
    assert quantize._abs_row_sums(Param(np.ones((2, 3)), FMT)).tolist() == [3 * 2**7] * 2


def _mlp() -> tuple[Graph, np.ndarray]:
    rng = np.random.default_rng(1)
    return mlp(rng, [6, 5, 4]), rng.standard_normal((3, 6)).astype(np.float32)


def test_ranges_measured_on_the_fly_equal_the_traced_ones() -> None:
    graph, calib = _mlp()
    traced = run_float(graph, [calib], trace=True)
    expected = {k: (float(a.min(initial=0.0)), float(a.max(initial=0.0))) for k, a in traced.items()}
    assert calibrated_ranges(graph, [calib]) == expected


def test_ranges_name_the_node_that_makes_inf() -> None:
    graph, calib = _mlp()
    node = graph.nodes[0]
    node.params["weight"] = Param(np.full_like(node.params["weight"].data, 1e38))
    with pytest.raises(RangeError, match=f"node '{node.name}'"), np.errstate(over="ignore"):
        calibrated_ranges(graph, [calib * 0 + 1e3])


def test_shape_inference_sees_big_weights_without_their_data() -> None:
    """The output type is inferred through a weight above the size limit, and the model keeps its data."""
    weight = np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32)
    assert weight.size > onnx_frontend._WEIGHT_ELEMENTS
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["h"]), helper.make_node("Reshape", ["h", "s"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.array([-1, 8, 8]), "s")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    inferred = onnx_frontend._infer_shapes(model, "big.onnx")
    dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 8, 8]
    assert [v.name for v in inferred.graph.value_info] == ["h"]
    np.testing.assert_array_equal(numpy_helper.to_array(inferred.graph.initializer[0]), weight)
