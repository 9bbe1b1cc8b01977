"""Which units (dense neurons, conv channels) of a layer can be removed, and how to remove them.

A *site* is a producer layer whose output reaches exactly one dense/conv consumer through ops that act
on each unit separately. Removing unit ``i`` then removes row ``i`` of the producer's weight and bias,
the matching per-channel params and reshape sizes on the way, and the consumer's input columns of that
unit, and nothing else in the graph changes meaning.

Only provably per-unit paths are accepted: elementwise activations, affine/prelu with per-channel (or
scalar) params, pooling and padding that leave the channel axis alone, and a flatten of ``(C, ...)``
into a dense layer's features (channel ``c`` owns a block of them). A value with a second use, a graph
output, a residual ``add``, a ``concat``, a softmax, an LRN or a transpose ends the path, and the layer
is skipped: the channels of a residual sum are shared by every branch that adds into it, so removing
one would need every branch to agree, which this pass does not try.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np

from fpgac.ir.graph import Graph, Node, Param, Value
from fpgac.ir.opdef import Kind
from fpgac.ir.ops import OPS, infer_shapes
from fpgac.ir.types import Float

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Site:
    """A producer, the per-unit ops after it and the one consumer that reads its units.

    ``block`` is how many consecutive elements of the consumer's input (along its unit axis) one unit
    owns: 1, or the spatial size of a channel flattened into dense features.
    """

    producer: Node
    path: tuple[Node, ...]
    consumer: Node
    block: int

    @property
    def units(self) -> int:
        return int(self.producer.params["weight"].shape[0])

    def columns(self, unit: int) -> np.ndarray:
        """The consumer's weight columns (of ``weight.reshape(out, -1)``) that read ``unit``."""
        width = self.block if self.consumer.op == "dense" else _taps(self.consumer)
        return np.arange(unit * width, (unit + 1) * width)

    def signals(self, x: np.ndarray) -> np.ndarray:
        """Each unit's activations, as the consumer reads them, as columns ``(samples, units)``."""
        if self.consumer.op == "conv":
            return np.moveaxis(np.asarray(x, np.float64), 1, -1).reshape(-1, self.units)
        flat = np.asarray(x, np.float64).reshape(-1, self.units, self.block)
        return np.swapaxes(flat, 1, 2).reshape(-1, self.units)


def _taps(node: Node) -> int:
    return math.prod(node.params["weight"].shape[2:])


def find_site(graph: Graph, producer: Node) -> Site | str:
    """The site of ``producer``, or the reason it has none (for the log)."""
    if producer.op not in ("dense", "conv"):
        return "not a dense or conv layer"
    if producer.op == "conv" and producer.attrs["groups"] != 1:
        return "grouped convolution"
    if not all(isinstance(p.format, Float) for p in producer.params.values()):
        return "already quantized"
    value = producer.output
    axis = 0 if producer.op == "conv" else len(value.shape) - 1
    block = 1
    path: list[Node] = []
    outputs = {id(v) for v in graph.outputs}
    while True:
        if id(value) in outputs or len(value.uses) != 1:
            return f"value {value.name!r} is a graph output or has {len(value.uses)} uses"
        node = value.uses[0][0]
        if node.op in ("dense", "conv"):
            return _consumer_site(producer, path, node, axis, block)
        reason = _passes_units(node, value, axis, block)
        if reason:
            return f"{node.op} {node.name!r} {reason}"
        if node.op == "reshape":
            target = node.attrs["shape"]
            if len(target) == 1:
                block *= math.prod(value.shape[1:])
        path.append(node)
        value = node.output


def _consumer_site(producer: Node, path: list[Node], consumer: Node, axis: int, block: int) -> Site | str:
    rank = len(consumer.inputs[0].shape)
    if not all(isinstance(p.format, Float) for p in consumer.params.values()):
        return "consumer already quantized"
    if consumer.op == "dense" and axis != rank - 1:
        return f"units do not lie along the features of dense {consumer.name!r}"
    if consumer.op == "conv" and (axis != 0 or block != 1 or consumer.attrs["groups"] != 1):
        return f"units are not the input channels of ungrouped conv {consumer.name!r}"
    return Site(producer, tuple(path), consumer, block)


def _passes_units(node: Node, value: Value, axis: int, block: int) -> str:
    """Why ``node`` does not act on each unit of ``value`` separately ('' when it does)."""
    op, opdef = node.op, OPS[node.op]
    if opdef.kind is Kind.ELEMENTWISE and len(node.inputs) == 1:
        # Its weights (affine's scale and shift, prelu's slope) broadcast: they must be per unit.
        for key in opdef.weights:
            data = node.params[key].data
            if not isinstance(node.params[key].format, Float):
                return "is quantized"
            lead = len(value.shape) - data.ndim
            if any(d != 1 for i, d in enumerate(data.shape) if i + lead != axis):
                return f"param {key!r} varies along another axis than the units'"
        return ""
    if opdef.kind is Kind.WINDOW:  # a pool: conv is a consumer
        return "" if axis == 0 and block == 1 else "pools across units"
    if op == "reduce":
        return "" if axis == 0 and 0 not in node.attrs["axes"] else "reduces over units"
    if op == "pad":
        pads = node.attrs["pads"]
        return "" if pads[axis] == 0 and pads[len(value.shape) + axis] == 0 else "pads the unit axis"
    if op == "reshape":
        target = node.attrs["shape"]
        if axis == 0 and (len(target) == 1 or (block == 1 and target[0] == value.shape[0])):
            return ""
        return "reshapes across units"
    return "is not a per-unit op"


def remove_units(site: Site, kept: list[int], consumer_weight: np.ndarray) -> None:
    """Keep only units ``kept``; the consumer gets ``consumer_weight`` (out, n) + bias as last column.

    ``consumer_weight`` holds the columns of every unit (dropped ones are ignored) and the bias column,
    in float64; params go back to their dtype.
    """
    units, keep = site.units, np.asarray(kept)
    producer = site.producer
    value = producer.output
    axis, block = (0 if producer.op == "conv" else len(value.shape) - 1), 1
    for key in ("weight", "bias"):
        if key in producer.params:
            param = producer.params[key]
            producer.params[key] = Param(param.data[keep], param.format)
    _retype(producer)
    for node in site.path:
        value = node.inputs[0]
        for key in OPS[node.op].weights:
            param = node.params[key]
            index = axis - (len(value.shape) - param.data.ndim)
            if index >= 0 and param.data.shape[index] != 1:
                indices = keep if param.data.shape[index] == units else _features(kept, block)
                node.params[key] = Param(np.take(param.data, indices, axis=index), param.format)
        if node.op == "reshape":
            target = list(node.attrs["shape"])
            if len(target) == 1:
                block *= math.prod(value.shape[1:])
                target[0] = len(kept) * block
            else:
                target[0] = len(kept)
            node.attrs["shape"] = target
            axis = 0
        _retype(node)
    consumer = site.consumer
    weight = consumer.params["weight"]
    columns = np.concatenate([site.columns(u) for u in kept])
    shape = (weight.shape[0], len(kept) * block if consumer.op == "dense" else len(kept), *weight.shape[2:])
    dtype = weight.data.dtype
    consumer.params["weight"] = Param(consumer_weight[:, columns].reshape(shape).astype(dtype), weight.format)
    if "bias" in consumer.params or np.any(consumer_weight[:, -1]):
        fmt = consumer.params["bias"].format if "bias" in consumer.params else weight.format
        consumer.params["bias"] = Param(consumer_weight[:, -1].astype(dtype), fmt)
    _retype(consumer)


def _features(kept: list[int], block: int) -> np.ndarray:
    return np.concatenate([np.arange(u * block, (u + 1) * block) for u in kept])


def _retype(node: Node) -> None:
    shape = infer_shapes(node.op, [v.shape for v in node.inputs], node.attrs, node.params)
    node.output.type = dataclasses.replace(node.output.type, shape=shape)
