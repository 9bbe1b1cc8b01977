"""A BatchNormalization between a Transpose that moves the batch axis and its inverse, as an exporter
writes a Keras BatchNormalization over axis 0 of a model with a fixed batch of 1.

tf2onnx moves a normalized axis that is not axis 1 to position 1 with a Transpose and back after (a
``(1, C)`` tensor: perm ``[1, 0]``, BatchNormalization over the old batch axis, perm ``[1, 0]``). The
normalized axis is the batch, of size 1, so the parameters are scalars and the three nodes compute one
scalar affine map of every element, whatever the layout: ``Mul`` and ``Add`` by constants on the
untransposed tensor, which the frontend lowers per sample. No transpose moving the batch axis remains.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _perm(node: onnx.NodeProto) -> list[int] | None:
    for attr in node.attribute:
        if attr.name == "perm":
            return list(attr.ints)
    return None


def _inverse(perm: list[int]) -> list[int]:
    return [int(i) for i in np.argsort(perm)]


def _scalars(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> tuple[float, float] | None:
    """A BatchNormalization's ``(scale, shift)`` if its parameters are one-element initializers."""
    if len(node.input) != 5 or any(name not in initializers for name in node.input[1:]):
        return None
    gamma, beta, mean, var = (numpy_helper.to_array(initializers[name]) for name in node.input[1:])
    if any(p.size != 1 for p in (gamma, beta, mean, var)):
        return None
    epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    if float(var.reshape(-1)[0]) + epsilon <= 0:
        return None  # the converter refuses it by name
    scale = float(gamma.reshape(-1)[0]) / float(np.sqrt(np.float64(var.reshape(-1)[0]) + epsilon))
    return scale, float(beta.reshape(-1)[0]) - float(mean.reshape(-1)[0]) * scale


def fold_batch_axis_batchnorms(graph: onnx.GraphProto) -> None:
    """Replace each ``Transpose(p) -> BatchNormalization (scalar parameters) -> Transpose(p^-1)`` whose
    first perm moves axis 0 by ``Mul`` and ``Add`` by the scalars on the Transpose's input."""
    initializers = {t.name: t for t in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}
    for first in graph.node:
        perm = _perm(first) if first.op_type == "Transpose" else None
        if not perm or perm[0] == 0 or first.output[0] in outputs:
            continue
        (norm, *others) = readers.get(first.output[0], [None])
        if norm is None or others or norm.op_type != "BatchNormalization" or norm.output[0] in outputs:
            continue
        (last, *others) = readers.get(norm.output[0], [None])
        if last is None or others or last.op_type != "Transpose" or _perm(last) != _inverse(perm):
            continue
        affine = _scalars(norm, initializers)
        if affine is None or len(norm.output) != 1:
            continue
        prefix = norm.name or norm.output[0]
        names = (f"{prefix}/batch_axis_scale", f"{prefix}/batch_axis_shift", f"{prefix}/batch_axis_scaled")
        for name, value in zip(names, affine, strict=False):
            graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), name))
        replaced[id(first)] = [
            helper.make_node("Mul", [first.input[0], names[0]], [names[2]], name=f"{prefix}/scale"),
            helper.make_node("Add", [names[2], names[1]], [last.output[0]], name=prefix),
        ]
        replaced[id(norm)] = replaced[id(last)] = []
    if not replaced:
        return
    nodes = [new for node in graph.node for new in replaced.get(id(node), [node])]
    del graph.node[:]
    graph.node.extend(nodes)
