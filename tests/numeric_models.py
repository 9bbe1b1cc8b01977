"""Small ONNX models that reach what real networks reach: huge logits, LRN (shared by unit and g++ tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(
    path: Path, name: str, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], shape: list[int]
) -> Path:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        initializer=inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def wide_softmax_model(path: Path, scale: float = 1e5) -> Path:
    """Gemm with N(0, scale) weights, then Softmax: logits of several times +-scale (ShuffleNet's range)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((16, 10)) * scale).astype(np.float32), "w")
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["prob"], name="prob", axis=1),
    ]
    return _save(path, "wide_softmax", nodes, [w], [16])


def lrn_model(path: Path) -> Path:
    """Conv, ReLU, LRN with AlexNet's constants (size 5, alpha 1e-4, beta 0.75), then an even-sized LRN."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 3).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("LRN", ["r"], ["n1"], name="norm1", size=5, alpha=1e-4, beta=0.75, bias=1.0),
        helper.make_node("LRN", ["n1"], ["n2"], name="norm2", size=4, alpha=0.5, beta=0.5, bias=2.0),
    ]
    return _save(path, "lrn", nodes, [w], [3, 6, 6])
