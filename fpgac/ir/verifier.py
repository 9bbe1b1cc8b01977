"""The IR verifier: the invariants every pass must keep.

Run after every pass in tests. It re-infers each node's output shape from the op
table, so a pass that forgets to update a shape is caught at the pass that broke
it, not three backends later.
"""

from __future__ import annotations

from fpgac.ir.encoding import encoding_problem
from fpgac.ir.graph import Graph, IRError, Node, Value
from fpgac.ir.opdef import ShapeError
from fpgac.ir.ops import OPS, infer_shapes
from fpgac.ir.types import Fixed


class VerificationError(IRError):
    """The graph breaks an IR invariant; the message names the node."""


def verify(graph: Graph) -> None:
    """Raise :class:`VerificationError` naming the first broken invariant."""
    defined: set[int] = set()
    value_names: set[str] = set()
    node_names: set[str] = set()

    def define(value: Value, where: str) -> None:
        if value.name in value_names:
            raise VerificationError(f"{where}: value name {value.name!r} is defined twice")
        value_names.add(value.name)
        defined.add(id(value))

    for value in graph.inputs:
        if value.producer is not None:
            raise VerificationError(f"graph input {value.name!r} has a producer")
        define(value, "graph inputs")

    _check_input_layouts(graph)

    for node in graph.nodes:
        where = f"node {node.name!r} ({node.op})"
        if node.name in node_names:
            raise VerificationError(f"{where}: node name is used twice")
        node_names.add(node.name)
        if node.graph is not graph:
            raise VerificationError(f"{where}: node does not belong to this graph")
        for index, value in enumerate(node.inputs):
            if id(value) not in defined:
                raise VerificationError(f"{where}: input {value.name!r} is not defined before it is used")
            if (node, index) not in value.uses:
                raise VerificationError(f"{where}: use list of {value.name!r} is out of date")
        _check_node(node, where)
        for value in node.outputs:
            if value.producer is not node:
                raise VerificationError(f"{where}: output {value.name!r} names another producer")
            define(value, where)

    for value in graph.outputs:
        if id(value) not in defined:
            raise VerificationError(f"graph output {value.name!r} is not defined")
    for value in graph.values():
        for consumer, _ in value.uses:
            if consumer.graph is not graph:
                raise VerificationError(
                    f"value {value.name!r} is used by {consumer.name!r}, which is not in the graph"
                )


def _check_input_layouts(graph: Graph) -> None:
    ranks = {v.name: len(v.shape) for v in graph.inputs}
    for name, layout in graph.input_layouts.items():
        if name not in ranks:
            raise VerificationError(f"input layout {list(layout)} names {name!r}, which is not a graph input")
        if sorted(layout) != list(range(ranks[name])):
            raise VerificationError(
                f"graph input {name!r}: layout {list(layout)} is not a permutation of its {ranks[name]} axes"
            )
    for index, layout in graph.output_layouts.items():
        if not 0 <= index < len(graph.outputs):
            raise VerificationError(f"output layout {list(layout)} is for output {index}, which is not one")
        rank = len(graph.outputs[index].shape)
        if sorted(layout) != list(range(rank)):
            raise VerificationError(
                f"graph output {index}: layout {list(layout)} is not a permutation of its {rank} axes"
            )


def _check_node(node: Node, where: str) -> None:
    if node.op not in OPS:
        raise VerificationError(f"{where}: unknown op")
    if len(node.outputs) != 1:
        raise VerificationError(f"{where}: IR ops have one output, this node has {len(node.outputs)}")
    try:
        shape = infer_shapes(node.op, [v.shape for v in node.inputs], node.attrs, node.params)
    except ShapeError as exc:
        raise VerificationError(f"{where}: {exc}") from exc
    if shape != node.output.shape:
        raise VerificationError(f"{where}: output shape is {node.output.shape}, inference gives {shape}")
    for key, param in node.params.items():
        if isinstance(param.format, Fixed) and param.data.dtype.kind not in "iuf":
            raise VerificationError(f"{where}: param {key!r} has non-numeric data")
        problem = encoding_problem(param)
        if problem:
            raise VerificationError(f"{where}: param {key!r}: {problem}")
    opdef = OPS[node.op]
    # Inputs combined position by position must share one layout, or the backend would pair up
    # elements from different logical positions.
    layouts = {v.type.layout for v in node.inputs}
    if opdef.aligned_inputs and len(layouts) > 1:
        raise VerificationError(f"{where}: inputs have different layouts {sorted(map(str, layouts))}")
    if opdef.logical_order and (
        node.inputs[0].type.layout is not None or node.output.type.layout is not None
    ):
        raise VerificationError(
            f"{where}: {node.op} needs logical (row-major) order on both sides; insert a relayout first"
        )
