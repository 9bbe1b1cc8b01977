"""``report.json``'s ``rank_levels``: per rank level, the ranks, MACs, latency and frame rate estimate.

The resources are the design's, which holds the largest level (a level only runs fewer components on the
same multipliers); latency and ii are the estimate's with every ranked factor at the level's rank
(:mod:`fpgac.analysis.rank_schedule`), at the reuse factors the design was fitted with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fpgac.analysis.cost import node_cost
from fpgac.analysis.estimate import Estimate, assemble, layer_models
from fpgac.analysis.rank_schedule import largest_rank
from fpgac.ir.graph import Graph, Node
from fpgac.ir.levels import level_count, node_rank


def level_macs(node: Node, level: int) -> int:
    """The node's MACs at ``level``: a ranked factor's scale with the components it runs."""
    macs = node_cost(node).macs
    rank = node_rank(node, level)
    return macs if rank is None else macs * rank // largest_rank(node)


def levels_markdown(entries: list[dict[str, Any]] | None) -> list[str]:
    """``report.md``'s table of the rank levels (nothing for a design without them)."""
    if not entries:
        return []
    lines = [
        "",
        "## Rank levels (run-time register `rank_level`)",
        "",
        "| level | MACs | latency (cycles) | fps | ranks |",
        "|---:|---:|---:|---:|---|",
    ]
    for e in entries:
        ranks = ", ".join(f"`{name}` {rank}" for name, rank in e["ranks"].items()).replace("|", "\\|")
        speed = f"{e['latency_cycles']:,} | {e['fps']:,.0f}"
        lines.append(f"| {e['level']} | {e['macs']:,} | {speed} | {ranks} |")
    return lines


def level_report(graph: Graph, estimate: Estimate) -> list[dict[str, Any]]:
    """One entry per level, largest first (see the module docstring)."""
    models = layer_models(graph, estimate.io, estimate.board)
    factors = {layer.name: layer.reuse for layer in estimate.layers}
    entries = []
    for level in range(level_count(graph)):
        at = assemble([dataclasses.replace(m, level=level) for m in models], factors, estimate.offchip)
        ranks = {n.name: node_rank(n, level) for n in graph.nodes if "ranks_out" in n.attrs}
        entries.append(
            {
                "level": level,
                "ranks": ranks,
                "macs": sum(level_macs(n, level) for n in graph.nodes),
                "latency_cycles": at.latency_cycles,
                "ii": at.ii,
                "latency_us": round(at.latency_us, 3),
                "fps": round(at.fps, 3),
            }
        )
    return entries
