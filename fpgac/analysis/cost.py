"""Parameter and multiply-accumulate counts per node, for reports and budgets.

MACs count the multiplications of the per-sample computation: a dense layer
costs ``out_features * in_features`` per output row, a convolution
``(in_channels / groups) * prod(kernel)`` per output element, and an ``affine``
one multiply per element. Pools, activations and data movement count zero,
as in the usual literature figures (so ResNet-50 comes out near 4.1 GMACs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fpgac.ir.graph import Graph, Node


@dataclass(frozen=True)
class NodeCost:
    params: int
    macs: int


def node_cost(node: Node) -> NodeCost:
    params = sum(p.data.size for p in node.params.values())
    out = node.output.type.size if node.outputs else 0
    if node.op == "dense":
        macs = out * node.params["weight"].shape[1]
    elif node.op == "conv":
        macs = out * math.prod(node.params["weight"].shape[1:])
    elif node.op == "affine":
        macs = out
    else:
        macs = 0
    return NodeCost(params, macs)


def graph_cost(graph: Graph) -> NodeCost:
    costs = [node_cost(n) for n in graph.nodes]
    return NodeCost(sum(c.params for c in costs), sum(c.macs for c in costs))
