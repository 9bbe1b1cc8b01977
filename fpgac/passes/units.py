"""Which units (dense neurons, conv channels) can be removed, together, and how to remove them.

A *group* is a set of units that must be removed everywhere at once: the channels of one value and of
every value joined to it by ops that act on each unit separately. In a chain that is one producer
layer, the per-unit ops after it and the one dense/conv layer that reads it. In a residual network a
channel of the residual stream is produced by several layers (each block's last conv, a downsample
conv) and joined by the ``add``s, and read by several (each block's first conv, the next stage's
convs, the head): removing unit ``i`` removes row ``i`` of every producer's weight and bias, the
matching per-channel params and reshape sizes on the way, and every consumer's input columns of that
unit, and nothing else in the graph changes meaning. The groups are the connected components of the
values under the per-unit ops and adds (networkx).

Only provably per-unit paths are accepted: elementwise activations, affine/prelu with per-channel (or
scalar) params, adds of equal shapes, depthwise convs (one filter per channel: they pass channels
through), pooling and padding that leave the channel axis alone, and a
flatten of ``(C, ...)`` into a dense layer's features (channel ``c`` owns a block of them). A group
whose channels reach a graph input or output, a concat, a softmax, an LRN, a transpose, a grouped conv
or a quantized layer is not pruned.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from fpgac.ir.graph import Graph, Node, Param, Value
from fpgac.ir.opdef import Kind
from fpgac.ir.ops import OPS, infer_shapes
from fpgac.ir.types import Float

log = logging.getLogger(__name__)

Layout = tuple[int, int]  # (unit axis, elements per unit along it) of a value


@dataclass(frozen=True)
class Consumer:
    """A dense/conv layer reading a group's units; ``block`` as in :class:`Group`."""

    node: Node
    block: int

    def columns(self, unit: int) -> np.ndarray:
        """The consumer's weight columns (of ``weight.reshape(out, -1)``) that read ``unit``."""
        width = self.block if self.node.op == "dense" else math.prod(self.node.params["weight"].shape[2:])
        return np.arange(unit * width, (unit + 1) * width)

    def signals(self, x: np.ndarray, units: int) -> np.ndarray:
        """Each unit's activations, as the consumer reads them, as columns ``(samples, units)``."""
        if self.node.op == "conv":
            return np.moveaxis(np.asarray(x, np.float64), 1, -1).reshape(-1, units)
        flat = np.asarray(x, np.float64).reshape(-1, units, self.block)
        return np.swapaxes(flat, 1, 2).reshape(-1, units)


@dataclass(frozen=True)
class Group:
    """Producers, the per-unit ops and adds between them (graph order) and the consumers of one set of units.

    ``layouts[i]`` is the (unit axis, block) of ``path[i]``'s first input; a consumer's ``block`` is how
    many consecutive elements of its input (along the unit axis) one unit owns: 1, or the spatial size
    of a channel flattened into dense features.
    """

    producers: tuple[Node, ...]
    path: tuple[Node, ...]
    layouts: tuple[Layout, ...]
    consumers: tuple[Consumer, ...]

    @property
    def name(self) -> str:
        return self.producers[0].name

    @property
    def units(self) -> int:
        return int(self.producers[0].params["weight"].shape[0])


def find_groups(graph: Graph) -> tuple[list[Group], dict[str, str]]:
    """The prunable groups (by their first producer's place in the graph) and, per dense/conv layer whose
    output cannot be pruned, the reason (for the log)."""
    joined = nx.Graph()
    for value in graph.values():
        joined.add_node(id(value))
    for node in graph.nodes:
        if _joins(node):
            for value in node.inputs:
                joined.add_edge(id(value), id(node.output))
    values = {id(v): v for v in graph.values()}
    place = {id(v): i for i, v in enumerate(graph.values())}
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    groups, reasons = [], {}
    for component in nx.connected_components(joined):
        members = [values[i] for i in sorted(component, key=place.__getitem__)]  # deterministic
        producers = sorted(
            {
                id(v.producer): v.producer
                for v in members
                if v.producer is not None and _is_layer(v.producer)
            }.values(),
            key=lambda n: order[id(n)],
        )
        if not producers:
            continue
        found = _group(graph, members, producers, order)
        if isinstance(found, Group):
            groups.append(found)
        else:
            reasons.update({p.name: found for p in producers})
    groups.sort(key=lambda g: order[id(g.producers[0])])
    return groups, reasons


def _is_layer(node: Node) -> bool:
    """A dense or conv layer that mixes units (a depthwise conv passes them through)."""
    return node.op == "dense" or (node.op == "conv" and not _depthwise(node))


def _depthwise(node: Node) -> bool:
    """A conv whose every group is one channel in and one out: channel ``c`` only feeds channel ``c``."""
    return node.op == "conv" and node.attrs["groups"] == node.inputs[0].shape[0] == node.output.shape[0]


def _joins(node: Node) -> bool:
    """Whether ``node`` may carry units from its inputs to its output (checked per axis later)."""
    opdef = OPS[node.op]
    if node.op == "add":
        return True
    if _depthwise(node):
        return True
    if len(node.inputs) != 1 or _is_layer(node):
        return False
    return opdef.kind in (Kind.ELEMENTWISE, Kind.WINDOW) or node.op in ("reduce", "pad", "reshape")


def _group(graph: Graph, members: list[Value], producers: list[Node], order: dict[int, int]) -> Group | str:
    """The group of the values ``members`` (one component), or why it cannot be pruned."""
    outputs = {id(v) for v in graph.outputs}
    layout: dict[int, Layout] = {}
    path: list[Node] = []
    for producer in producers:
        reason = _prunable_layer(producer)
        if reason:
            return f"{producer.op} {producer.name!r} {reason}"
        layout[id(producer.output)] = (0 if producer.op == "conv" else len(producer.output.shape) - 1, 1)
    inner = sorted(
        {
            id(v.producer): v.producer
            for v in members
            if v.producer is not None and not _is_layer(v.producer)
        }.values(),
        key=lambda n: order[id(n)],
    )
    for value in members:
        if value.producer is None:
            return f"its units reach the graph input {value.name!r}"
        if id(value) in outputs:
            return f"its units reach the graph output {value.name!r}"
    producer_ids = {id(p) for p in producers}
    for value in members:
        if any(id(node) in producer_ids for node, _ in value.uses):
            return "a layer reads and writes the same units"
    for node in inner:
        ins = [layout.get(id(v)) for v in node.inputs]
        if node.op == "add":
            if any(v.shape != node.output.shape for v in node.inputs) or len(set(ins)) != 1:
                return f"add {node.name!r} broadcasts or mixes unit layouts"
        elif not _joins(node):
            return f"{node.op} {node.name!r} is not a per-unit op"
        if ins[0] is None:
            return f"{node.op} {node.name!r} is reached before its input is"
        axis, block = ins[0]
        reason = _passes_units(node, node.inputs[0], axis, block)
        if reason:
            return f"{node.op} {node.name!r} {reason}"
        if node.op == "reshape" and len(node.attrs["shape"]) == 1:
            block *= math.prod(node.inputs[0].shape[1:])
        layout[id(node.output)] = (axis, block)
        path.append(node)
    consumers = []
    path_ids = {id(n) for n in path}
    for value in members:
        for node, _ in value.uses:
            if id(node) in path_ids:
                continue
            if not _is_layer(node):
                return f"{node.op} {node.name!r} reads its units"
            axis, block = layout[id(value)]
            reason = _consumer_reason(node, axis, block)
            if reason:
                return reason
            consumers.append(Consumer(node, block))
    if not consumers:
        return "no layer reads its units"
    consumers.sort(key=lambda c: order[id(c.node)])
    return Group(
        tuple(producers), tuple(path), tuple(layout[id(n.inputs[0])] for n in path), tuple(consumers)
    )


def _prunable_layer(node: Node) -> str:
    if node.op == "conv" and node.attrs["groups"] != 1:
        return "is a grouped convolution"
    if not all(isinstance(p.format, Float) for p in node.params.values()):
        return "is already quantized"
    return ""


def _consumer_reason(consumer: Node, axis: int, block: int) -> str:
    rank = len(consumer.inputs[0].shape)
    if not all(isinstance(p.format, Float) for p in consumer.params.values()):
        return f"consumer {consumer.name!r} is already quantized"
    if consumer.op == "dense" and axis != rank - 1:
        return f"units do not lie along the features of dense {consumer.name!r}"
    if consumer.op == "conv" and (axis != 0 or block != 1 or consumer.attrs["groups"] != 1):
        return f"units are not the input channels of ungrouped conv {consumer.name!r}"
    return ""


def _passes_units(node: Node, value: Value, axis: int, block: int) -> str:
    """Why ``node`` does not act on each unit of ``value`` separately ('' when it does)."""
    op, opdef = node.op, OPS[node.op]
    if op == "add":
        return ""
    if _depthwise(node):
        if not all(isinstance(p.format, Float) for p in node.params.values()):
            return "is quantized"
        return "" if axis == 0 and block == 1 else "is a depthwise conv across units"
    if opdef.kind is Kind.ELEMENTWISE:
        # Its weights (affine's scale and shift, prelu's slope) broadcast: they must be per unit.
        for key in opdef.weights:
            data = node.params[key].data
            if not isinstance(node.params[key].format, Float):
                return "is quantized"
            lead = len(value.shape) - data.ndim
            if any(d != 1 for i, d in enumerate(data.shape) if i + lead != axis):
                return f"param {key!r} varies along another axis than the units'"
        return ""
    if opdef.kind is Kind.WINDOW:  # a pool: conv is a layer
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


def remove_units(group: Group, kept: list[int], consumer_weights: list[np.ndarray]) -> None:
    """Keep only units ``kept``; consumer ``j`` gets ``consumer_weights[j]`` (out, n) + bias as last column.

    Each of ``consumer_weights`` holds the columns of every unit (dropped ones are ignored) and the bias
    column, in float64; params go back to their dtype.
    """
    units, keep = group.units, np.asarray(kept)
    for producer in group.producers:
        for key in ("weight", "bias"):
            if key in producer.params:
                param = producer.params[key]
                producer.params[key] = Param(param.data[keep], param.format)
        _retype(producer)
    for node, (axis, block) in zip(group.path, group.layouts, strict=True):
        value = node.inputs[0]
        if node.op == "conv":  # depthwise (the only conv on a path): keep the kept channels' filters
            for key, param in list(node.params.items()):
                node.params[key] = Param(param.data[keep], param.format)
            node.attrs["groups"] = len(kept)
            _retype(node)
            continue
        for key in OPS[node.op].weights:
            param = node.params[key]
            index = axis - (len(value.shape) - param.data.ndim)
            if index >= 0 and param.data.shape[index] != 1:
                indices = keep if param.data.shape[index] == units else _features(kept, block)
                node.params[key] = Param(np.take(param.data, indices, axis=index), param.format)
        if node.op == "reshape":
            target = list(node.attrs["shape"])
            target[0] = len(kept) * (block * math.prod(value.shape[1:]) if len(target) == 1 else 1)
            node.attrs["shape"] = target
        _retype(node)
    for consumer, new in zip(group.consumers, consumer_weights, strict=True):
        node = consumer.node
        weight = node.params["weight"]
        columns = np.concatenate([consumer.columns(u) for u in kept])
        width = len(kept) * consumer.block if node.op == "dense" else len(kept)
        dtype = weight.data.dtype
        node.params["weight"] = Param(
            new[:, columns].reshape((weight.shape[0], width, *weight.shape[2:])).astype(dtype), weight.format
        )
        if "bias" in node.params or np.any(new[:, -1]):
            fmt = node.params["bias"].format if "bias" in node.params else weight.format
            node.params["bias"] = Param(new[:, -1].astype(dtype), fmt)
        _retype(node)


def _features(kept: list[int], block: int) -> np.ndarray:
    return np.concatenate([np.arange(u * block, (u + 1) * block) for u in kept])


def _retype(node: Node) -> None:
    shape = infer_shapes(node.op, [v.shape for v in node.inputs], node.attrs, node.params)
    node.output.type = dataclasses.replace(node.output.type, shape=shape)
