"""Rank levels: one design whose low-rank factors run at a rank chosen at run time (Decomposable-Net).

A split layer's two factors keep their components at the largest level's rank, ordered so that every
smaller level is a prefix of them (:mod:`fpgac.passes.lowrank`). A factor node records, per level, how
many components it uses: ``ranks_out`` on the first factor (its output channels ``>= rank`` are 0) and
``ranks_in`` on the second (its input channels ``>= rank`` are not read), plus ``level_bias`` (levels x
outputs) where the refit gave each level its own bias (its row 0, level 0, is the node's ``bias``); a
dense or conv layer after the factors may carry a ``level_bias`` alone (its weights are the same at every
level, its bias is not).

The meaning of level ``i`` is :func:`at_level`: the same graph with the unused components' weights zero
and the level's bias. Accumulators are exact, so a zero product changes nothing and the result equals, bit
for bit, a static graph truncated to those ranks; the HLS skips (or gates) those products instead. Level 0
is the largest: the graph as stored.
"""

from __future__ import annotations

from fpgac.errors import FpgacError
from fpgac.ir.graph import Graph, Node, Param

LEVEL_ATTRS = ("ranks_out", "ranks_in")
LEVEL_BIAS = "level_bias"


class RankLevelError(FpgacError):
    """A rank level that the design does not have."""


def is_levelled(node: Node) -> bool:
    """Whether the node computes differently per level (a rank, or a bias per level)."""
    return any(key in node.attrs for key in LEVEL_ATTRS) or LEVEL_BIAS in node.params


def level_count(graph: Graph) -> int:
    """How many rank levels the design has (1 for a design without them)."""
    counts = {len(node.attrs[k]) for node in graph.nodes for k in LEVEL_ATTRS if k in node.attrs}
    if len(counts) > 1:
        raise RankLevelError(f"graph {graph.name!r}: layers disagree on the number of rank levels {counts}")
    return counts.pop() if counts else 1


def check_level(graph: Graph, level: int) -> None:
    count = level_count(graph)
    if not 0 <= level < count:
        raise RankLevelError(
            f"rank level {level} does not exist: this design has {count} level(s), 0..{count - 1}"
        )


def node_rank(node: Node, level: int) -> int | None:
    """The node's rank at ``level`` (its components in use), or None for a layer without levels."""
    for key in LEVEL_ATTRS:
        if key in node.attrs:
            return int(node.attrs[key][level])
    return None


def at_level(graph: Graph, level: int) -> Graph:
    """The static graph that level ``level`` computes: unused components zeroed, the level's bias, no
    level attributes. The graph itself at level 0 (nothing to change), else a copy."""
    check_level(graph, level)
    if level == 0 or not any(is_levelled(n) for n in graph.nodes):
        return graph
    copy = graph.clone()
    for node in copy.nodes:
        if not is_levelled(node):
            continue
        weight = node.params["weight"]
        data = weight.data.copy()
        if "ranks_out" in node.attrs:
            data[int(node.attrs.pop("ranks_out")[level]) :] = 0
        if "ranks_in" in node.attrs:
            data[:, int(node.attrs.pop("ranks_in")[level]) :] = 0
        node.params["weight"] = Param(data, weight.format)
        if LEVEL_BIAS in node.params:
            biases = node.params.pop(LEVEL_BIAS)
            node.params["bias"] = Param(biases.data[level].copy(), biases.format)
    return copy
