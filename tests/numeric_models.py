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
