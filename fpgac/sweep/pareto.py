"""Pareto fronts of a sweep: the designs no other design beats in both accuracy and one cost.

A front is taken per cost (DSPs, BRAM18s, latency) rather than over all at once: with three costs nearly
every point is on the joint front, which tells the engineer nothing; one front per budget answers "what is
the most accurate design within N DSPs". Only points that were built and fit the board compete: a design
the board cannot hold is no choice at all (the plots still show it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The costs a front is drawn against, as the table names them, and how a person reads them.
COSTS: dict[str, str] = {"dsp": "DSP", "bram18": "BRAM18", "latency_cycles": "latency (cycles)"}


def front(rows: Sequence[Mapping[str, Any]], cost: str) -> list[int]:
    """The points (their ``point`` numbers) on the accuracy-vs-``cost`` front, cheapest first.

    A point is on it when every cheaper-or-equal point is strictly less accurate; of equal designs the first
    point is kept.
    """
    candidates = [
        r for r in rows if r.get("status") == "ok" and r.get("fits") and r.get("accuracy") is not None
    ]
    candidates.sort(key=lambda r: (r[cost], -r["accuracy"], r["point"]))
    chosen, best = [], -1.0
    for row in candidates:
        if row["accuracy"] > best:
            chosen.append(int(row["point"]))
            best = row["accuracy"]
    return chosen


def fronts(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Every cost's front."""
    return {cost: front(rows, cost) for cost in COSTS}
