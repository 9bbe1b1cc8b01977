"""Fold ``affine`` nodes (BatchNorm, constant scale/shift) into the layer before them.

An affine after a conv or dense costs a multiplier and an adder per element on the
FPGA; folded into the weights it costs nothing. ``conv -> affine`` becomes one conv
with ``w' = w * s`` (per output channel) and ``b' = b * s + t``; ``dense -> affine``
likewise per output feature. Two affines in a row merge into one, so
``BatchNorm -> Mul -> Add`` chains (old Caffe2 exports) fold too.

A fold is done only when it is exact in float arithmetic terms and invisible
outside: the producer's output has exactly one use (the affine) and is not a graph
output, the params vary only along the producer's output-channel axis, and both
sides are still float (folding after quantization would change the numbers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fpgac.ir import Float, Graph, Node, Param

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldAffine:
    """Fold every foldable ``affine`` into its ``conv``/``dense``/``affine`` producer."""

    name: ClassVar[str] = "fold_affine"

    def run(self, graph: Graph) -> Graph:
        for node in graph.nodes:  # topological order: a chain folds front to back in one sweep
            if node.op == "affine" and _fold(graph, node):
                log.debug("fold_affine: folded %s", node.name)
        return graph


def _fold(graph: Graph, affine: Node) -> bool:
    source = affine.inputs[0]
    producer = source.producer
    if producer is not None and producer.op == "reshape" and _unit_reshape(producer):
        return _fold_through_reshape(graph, affine, producer)
    if producer is None or len(source.uses) != 1 or source in graph.outputs:
        return False
    if not _all_float(producer, affine):
        return False
    scale, shift = (affine.params[k].data.astype(np.float64) for k in ("scale", "shift"))
    if not _fold_values(producer, scale, shift):
        return False
    graph.bypass(affine, source)
    return True


def _all_float(producer: Node, affine: Node) -> bool:
    if not all(isinstance(p.format, Float) for n in (producer, affine) for p in n.params.values()):
        return False
    return isinstance(producer.output.type.format, Float) and isinstance(affine.output.type.format, Float)


def _fold_values(producer: Node, scale: np.ndarray, shift: np.ndarray) -> bool:
    """Fold ``x * scale + shift`` (shaped against the producer's output) into ``producer``."""
    rank = len(producer.output.shape)
    if producer.op == "affine":
        _merge_affines(producer, scale, shift)
        return True
    if producer.op in ("conv", "dense"):
        channel_axis = 0 if producer.op == "conv" else rank - 1
        vectors = per_channel(scale, shift, rank, channel_axis, producer.output.shape[channel_axis])
        if vectors is None:
            return False
        _fold_into_layer(producer, *vectors)
        return True
    return False


def per_channel(
    scale: np.ndarray, shift: np.ndarray, rank: int, axis: int, channels: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Scale and shift as 1-d per-channel vectors, or None when they vary along another axis."""
    vectors = []
    for data in (scale, shift):
        full = data.reshape((1,) * (rank - data.ndim) + data.shape)
        if any(d != 1 for i, d in enumerate(full.shape) if i != axis):
            return None
        vectors.append(np.broadcast_to(full.reshape(-1), (channels,)))
    return vectors[0], vectors[1]


def _fold_into_layer(layer: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    weight = layer.params["weight"]
    data = weight.data.astype(np.float64)
    folded = data * scale.reshape((-1,) + (1,) * (data.ndim - 1))
    bias = layer.params["bias"].data.astype(np.float64) if "bias" in layer.params else np.zeros(len(scale))
    layer.params["weight"] = Param(folded.astype(weight.data.dtype), weight.format)
    layer.params["bias"] = Param((bias * scale + shift).astype(weight.data.dtype), weight.format)


def _merge_affines(first: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    """(x * s1 + t1) * s2 + t2 == x * (s1 * s2) + (t1 * s2 + t2)."""
    s1, t1 = (first.params[k] for k in ("scale", "shift"))
    dtype = s1.data.dtype
    new_scale = s1.data.astype(np.float64) * scale
    new_shift = t1.data.astype(np.float64) * scale + shift
    shape = np.broadcast_shapes(new_scale.shape, new_shift.shape)
    first.params["scale"] = Param(np.broadcast_to(new_scale, shape).astype(dtype), s1.format)
    first.params["shift"] = Param(np.broadcast_to(new_shift, shape).astype(dtype), t1.format)


def _unit_reshape(node: Node) -> bool:
    """A reshape that only adds or drops axes of size 1 (an Unsqueeze, a Squeeze)."""
    before = [d for d in node.inputs[0].shape if d != 1]
    return before == [d for d in node.output.shape if d != 1] and node.inputs[0].type.layout is None


def _fold_through_reshape(graph: Graph, affine: Node, reshape: Node) -> bool:
    """``layer -> unsqueeze -> affine -> squeeze`` (old torch BatchNorm1d exports: Gemm, Unsqueeze,
    BatchNormalization, Squeeze): the affine's params, reshaped to the layer's output, fold into the
    layer, and the reshapes around it collapse into one identity, which goes too."""
    source, inner = affine.inputs[0], reshape.inputs[0]
    layer = inner.producer
    if layer is None or len(inner.uses) != 1 or inner in graph.outputs:
        return False
    if len(source.uses) != 1 or source in graph.outputs or not _all_float(layer, affine):
        return False
    scale, shift = (
        _squeezed_constant(np.broadcast_to(affine.params[k].data, source.shape).reshape(inner.shape))
        for k in ("scale", "shift")
    )
    if not _fold_values(layer, scale.astype(np.float64), shift.astype(np.float64)):
        return False
    graph.bypass(affine, source)
    for node, index in list(source.uses):  # the Squeeze after it now reads the layer's output directly
        if node.op == "reshape":
            node.set_input(index, inner)
            if node.output.type == inner.type:
                graph.bypass(node, inner)
    if not source.uses and source not in graph.outputs:
        graph.remove(reshape)
    return True


def _squeezed_constant(full: np.ndarray) -> np.ndarray:
    """``full`` with every axis along which it is constant reduced to size 1 (broadcasts back to it)."""
    for axis in range(full.ndim):
        first = np.take(full, [0], axis=axis)
        if np.all(full == first):
            full = first
    return full
