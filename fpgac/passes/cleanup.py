"""Remove what lowering leaves behind: dead nodes and reshapes that do nothing.

Converters emit reshapes freely (Flatten, Squeeze, Unsqueeze, Reshape all
become ``reshape``); many are identities once the batch axis is gone, and a
chain of reshapes is one reshape. Removing them here keeps converters simple.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fpgac.ir import Graph


@dataclass(frozen=True)
class Cleanup:
    """Drop nodes whose outputs nobody reads, collapse reshape chains and identity reshapes."""

    name: ClassVar[str] = "cleanup"

    def run(self, graph: Graph) -> Graph:
        _fold_reshapes(graph)
        remove_dead_nodes(graph)
        return graph


def _fold_reshapes(graph: Graph) -> None:
    for node in graph.nodes:
        if node.op != "reshape":
            continue
        source = node.inputs[0]
        producer = source.producer
        if producer is not None and producer.op == "reshape" and producer.inputs[0].type.layout is None:
            node.set_input(0, producer.inputs[0])  # reshape(reshape(x)) == reshape(x)
            source = producer.inputs[0]
        if node.output.type == source.type:
            graph.bypass(node, source)


def remove_dead_nodes(graph: Graph) -> None:
    """Remove nodes, last first, whose outputs are neither used nor graph outputs."""
    outputs = {id(v) for v in graph.outputs}
    for node in reversed(graph.nodes):
        if all(not v.uses and id(v) not in outputs for v in node.outputs):
            graph.remove(node)
