"""The graph IR: values with use-def links, nodes, and an ordered graph.

Learned from onnx-ir's ``_core.py``: a :class:`Value` knows the node that produces
it and every (node, input index) that uses it, so rewrites are local
(``value.replace_all_uses_with(other)``) instead of dictionary bookkeeping.
Storage is our own; networkx serves analyses on a view built for the purpose
(:meth:`Graph.sort`'s topological order).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpgac.errors import FpgacError
from fpgac.ir.encoding import Encoding
from fpgac.ir.types import FLOAT32, Format, TensorType


class IRError(FpgacError):
    """A malformed graph or an illegal edit of one."""


@dataclass(eq=False)
class Param:
    """A constant tensor owned by one node (weights, biases, scales).

    Params are not values: they are not computed per sample and have no batch
    dimension, so they live on the node that uses them. ``format`` is the numeric
    format the hardware stores them in (float until quantization). ``encoding`` says how a
    compressed tensor is stored (sparse, codebook + indices, Huffman); ``data`` is always the
    decoded values, so code that only computes never looks at it.
    """

    data: np.ndarray
    format: Format = FLOAT32
    encoding: Encoding | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def equals(self, other: Param) -> bool:
        same_encoding = (
            other.encoding is None if self.encoding is None else self.encoding.equals(other.encoding)
        )
        return (
            self.format == other.format
            and self.data.dtype == other.data.dtype
            and np.array_equal(self.data, other.data)
            and same_encoding
        )

    def copy(self) -> Param:
        return Param(self.data.copy(), self.format, None if self.encoding is None else self.encoding.copy())


class Value:
    """A per-sample tensor flowing along one edge of the graph."""

    def __init__(self, name: str, type: TensorType) -> None:
        self.name = name
        self.type = type
        self.producer: Node | None = None
        self._uses: list[tuple[Node, int]] = []

    @property
    def uses(self) -> tuple[tuple[Node, int], ...]:
        """(consumer node, input index) pairs, in the order the uses were made."""
        return tuple(self._uses)

    @property
    def consumers(self) -> list[Node]:
        seen: dict[int, Node] = {}
        for node, _ in self._uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    def replace_all_uses_with(self, other: Value) -> None:
        """Make every consumer of this value read ``other`` instead (graph outputs too)."""
        if other is self:
            return
        for node, index in list(self._uses):
            node.set_input(index, other)

    def __repr__(self) -> str:
        return f"Value({self.name!r}, {self.type})"


class Node:
    """One operation: ``op`` with typed attributes, value inputs, params and outputs."""

    def __init__(
        self,
        op: str,
        name: str,
        inputs: Iterable[Value],
        outputs: Iterable[Value],
        attrs: Mapping[str, Any] | None = None,
        params: Mapping[str, Param] | None = None,
    ) -> None:
        self.op = op
        self.name = name
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.params: dict[str, Param] = dict(params or {})
        self.graph: Graph | None = None
        self._inputs: list[Value] = []
        for value in inputs:
            self._inputs.append(value)
            value._uses.append((self, len(self._inputs) - 1))
        self._outputs = list(outputs)
        for value in self._outputs:
            if value.producer is not None:
                raise IRError(f"value {value.name!r} already has a producer")
            value.producer = self

    @property
    def inputs(self) -> tuple[Value, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Value, ...]:
        return tuple(self._outputs)

    @property
    def output(self) -> Value:
        """The single output of a single-output node."""
        if len(self._outputs) != 1:
            raise IRError(f"node {self.name!r} has {len(self._outputs)} outputs, not 1")
        return self._outputs[0]

    def set_input(self, index: int, value: Value) -> None:
        old = self._inputs[index]
        old._uses.remove((self, index))
        self._inputs[index] = value
        value._uses.append((self, index))

    def _detach(self) -> None:
        for index, value in enumerate(self._inputs):
            value._uses.remove((self, index))
        self._inputs = []
        for value in self._outputs:
            value.producer = None

    def __repr__(self) -> str:
        ins = ", ".join(v.name for v in self._inputs)
        return f"Node({self.op} {self.name!r}: ({ins}) -> {[v.name for v in self._outputs]})"


class Graph:
    """An ordered list of nodes between graph inputs and outputs.

    The node list is kept in topological order by construction (``add`` appends
    after its inputs' producers, or at an explicit position) and checked by the
    verifier. ``nodes`` returns a snapshot, so a pass may edit the graph while
    iterating over it.
    """

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self._outputs: list[Value] = []
        self._nodes: list[Node] = []
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self.metadata: dict[str, Any] = {}
        # Per graph input (by name) whose callers' arrays are not in the value's logical axis order: the
        # order of its logical axes in them (fpgac.ir.boundary).
        self.input_layouts: dict[str, tuple[int, ...]] = {}
        # Per graph output position likewise (fpgac.ir.boundary): by position, as a rewrite that replaces
        # an output value keeps its place.
        self.output_layouts: dict[int, tuple[int, ...]] = {}

    # -- naming -----------------------------------------------------------------------------
    def unique_value_name(self, base: str) -> str:
        return _unique(base or "v", self._names)

    def unique_node_name(self, base: str) -> str:
        return _unique(base or "n", self._node_names)

    # -- construction -----------------------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        value = Value(self.unique_value_name(name), type)
        self.inputs.append(value)
        return value

    def add(
        self,
        op: str,
        inputs: Iterable[Value],
        output_types: Iterable[TensorType] | None = None,
        *,
        name: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        params: Mapping[str, Param] | None = None,
        output_names: Iterable[str] | None = None,
        index: int | None = None,
    ) -> Node:
        """Create a node and insert it (at the end, or at ``index`` in the node list).

        Without ``output_types`` the op's shape inference computes them (float32, or
        the format of the first input).
        """
        from fpgac.ir.ops import infer_types  # ops depends on graph types only

        inputs = list(inputs)
        node_name = self.unique_node_name(name or op)
        if output_types is None:
            output_types = infer_types(op, [v.type for v in inputs], dict(attrs or {}), dict(params or {}))
        output_types = list(output_types)
        names = list(output_names) if output_names is not None else []
        if not names:
            names = (
                [node_name]
                if len(output_types) == 1
                else [f"{node_name}_{i}" for i in range(len(output_types))]
            )
        outputs = [Value(self.unique_value_name(n), t) for n, t in zip(names, output_types, strict=True)]
        node = Node(op, node_name, inputs, outputs, attrs, params)
        node.graph = self
        if index is None:
            self._nodes.append(node)
        else:
            self._nodes.insert(index, node)
        return node

    def remove(self, node: Node) -> None:
        """Remove a node whose outputs are no longer used."""
        for value in node.outputs:
            if value.uses or value in self._outputs:
                raise IRError(f"cannot remove node {node.name!r}: output {value.name!r} is still used")
        node._detach()
        node.graph = None
        self._nodes.remove(node)
        self._node_names.discard(node.name)

    def bypass(self, node: Node, replacement: Value) -> None:
        """Route every use of ``node``'s single output to ``replacement``, then remove it."""
        self.replace_value(node.output, replacement)
        self.remove(node)

    def replace_value(self, old: Value, new: Value) -> None:
        old.replace_all_uses_with(new)
        self._outputs = [new if v is old else v for v in self._outputs]

    def index_of(self, node: Node) -> int:
        return self._nodes.index(node)

    # -- access -----------------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self._nodes)

    @property
    def outputs(self) -> tuple[Value, ...]:
        return tuple(self._outputs)

    def set_outputs(self, values: Iterable[Value]) -> None:
        self._outputs = list(values)

    def values(self) -> list[Value]:
        """Graph inputs then node outputs, in order."""
        return list(self.inputs) + [v for n in self._nodes for v in n.outputs]

    def node(self, name: str) -> Node:
        for node in self._nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self._nodes)

    # -- analyses ---------------------------------------------------------------------------
    def sort(self) -> None:
        """Restore topological order (stable: keeps the current order where it is legal)."""
        import networkx as nx  # here, not at module level: importing it costs `fpgac sim` 0.3 s at start-up

        position = {id(n): i for i, n in enumerate(self._nodes)}
        view = nx.DiGraph()
        view.add_nodes_from(range(len(self._nodes)))
        for node in self._nodes:
            for value in node.inputs:
                if value.producer is not None and id(value.producer) in position:
                    view.add_edge(position[id(value.producer)], position[id(node)])
        try:
            order = list(nx.lexicographical_topological_sort(view))
        except nx.NetworkXUnfeasible as exc:
            raise IRError(f"graph {self.name!r} has a cycle") from exc
        self._nodes = [self._nodes[i] for i in order]

    def clone(self) -> Graph:
        """A deep copy (params are copied too, so the clone can be rewritten freely)."""
        copy = Graph(self.name)
        copy.metadata = deepcopy(self.metadata)  # passes append to lists in it
        copy.input_layouts = dict(self.input_layouts)
        copy.output_layouts = dict(self.output_layouts)
        mapping: dict[int, Value] = {}
        for value in self.inputs:
            new = Value(value.name, value.type)
            copy.inputs.append(new)
            mapping[id(value)] = new
        copy._names = set(self._names)
        copy._node_names = set(self._node_names)
        for node in self._nodes:
            outputs = [Value(v.name, v.type) for v in node.outputs]
            params = {k: p.copy() for k, p in node.params.items()}
            new_node = Node(
                node.op,
                node.name,
                [mapping[id(v)] for v in node.inputs],
                outputs,
                _copy_attrs(node.attrs),
                params,
            )
            new_node.graph = copy
            copy._nodes.append(new_node)
            for old, new in zip(node.outputs, outputs, strict=True):
                mapping[id(old)] = new
        copy._outputs = [mapping[id(v)] for v in self._outputs]
        return copy


def _copy_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in attrs.items()}


def _unique(base: str, taken: set[str]) -> str:
    name = base
    if name in taken:
        for i in itertools.count(1):
            name = f"{base}_{i}"
            if name not in taken:
                break
    taken.add(name)
    return name


def graphs_equal(a: Graph, b: Graph) -> bool:
    """Structural equality: same inputs, nodes (op, name, attrs, params, types) and outputs."""
    if a.name != b.name or len(a.inputs) != len(b.inputs) or len(a.nodes) != len(b.nodes):
        return False
    if any(x.name != y.name or x.type != y.type for x, y in zip(a.inputs, b.inputs, strict=True)):
        return False
    if a.input_layouts != b.input_layouts or a.output_layouts != b.output_layouts:
        return False
    for x, y in zip(a.nodes, b.nodes, strict=True):
        if (x.op, x.name, x.attrs) != (y.op, y.name, y.attrs):
            return False
        if [v.name for v in x.inputs] != [v.name for v in y.inputs]:
            return False
        if [(v.name, v.type) for v in x.outputs] != [(v.name, v.type) for v in y.outputs]:
            return False
        if x.params.keys() != y.params.keys():
            return False
        if not all(x.params[k].equals(y.params[k]) for k in x.params):
            return False
    return [v.name for v in a.outputs] == [v.name for v in b.outputs]
