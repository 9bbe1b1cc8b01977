"""How a factor layer with rank levels spends its cycles: the schedule its HLS kernel and the estimate share.

A ranked factor (:mod:`fpgac.ir.levels`) runs its components ``UNROLL`` at a time, one group per iteration
of a loop pipelined at ``STEP_II``; a step (a dense row, a conv pixel) is ``ceil(rank / UNROLL)`` groups
at the level's rank (``fpgac_levels.h``). The multipliers are the static layer's, ``ceil(products /
reuse)``, so at the largest level a step takes about ``reuse`` cycles, as a static layer does, and a
smaller level proportionally fewer; at reuse 1 the whole rank is one group, gated, and latency stays.
"""

from __future__ import annotations

import math

from fpgac.ir.graph import Node
from fpgac.ir.levels import node_rank


def component_schedule(rank: int, reuse: int) -> tuple[int, int]:
    """(UNROLL, STEP_II) of a factor whose largest rank is ``rank``, at reuse ``reuse``: at reuse R <= rank,
    ceil(rank / R) components a cycle; above, one component every ceil(R / rank) cycles."""
    if reuse <= rank:
        return math.ceil(rank / reuse), 1
    return 1, math.ceil(reuse / rank)


def largest_rank(node: Node) -> int:
    """The components a ranked factor stores: its inputs (second factor) or outputs (first factor, or a
    layer with only a bias per level)."""
    weight = node.params["weight"].shape
    return weight[1] if "ranks_in" in node.attrs else weight[0]


def step_cycles(node: Node, reuse: int, level: int) -> int:
    """Cycles of one step of ``node`` at ``level``: ``reuse`` for a layer without rank levels."""
    rank = node_rank(node, level)
    if rank is None:
        return reuse
    unroll, step_ii = component_schedule(largest_rank(node), reuse)
    return math.ceil(rank / unroll) * step_ii
