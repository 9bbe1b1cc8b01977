"""How many units each group of the reap pass keeps under a MAC or parameter budget.

Not a pass: the analysis :mod:`fpgac.passes.reap` sizes its groups from. A group's units scale every
layer that produces them (its output rows), every per-unit op on the way (per-channel params, affine
MACs) and every layer that reads them (its input columns), so a layer between two groups costs its
original count times both groups' kept fractions: the cost of a choice of counts is exact without
pruning anything (:class:`CostModel`).

``uniform`` keeps the largest single fraction of every group that fits. ``output`` is greedy on the
groups' *profiles*: the relative error of the network's final outputs when one group alone is pruned to
each count of a grid. From every group at full size, it repeatedly moves one group down to whichever
lower count of its grid costs the least error per MAC (or param) saved, until the budget is met, then
tops the budget back up with the moves up that buy the most error per cost and still fit. Moving to any
lower count (not only the next) steps over flat stretches of a profile that is not convex; between the
profiled counts the error is interpolated linearly, so the budget is met to one unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fpgac.analysis.cost import node_cost
from fpgac.ir.graph import Graph, Value
from fpgac.ir.ops import OPS
from fpgac.passes.units import Group

Counts = dict[str, int]  # group name -> units kept


@dataclass(frozen=True)
class _Term:
    """One node's MACs or one param's size, and the groups whose kept fractions scale it."""

    size: int
    groups: tuple[str, ...]


@dataclass(frozen=True)
class CostModel:
    """The graph's MACs and params as functions of the groups' kept counts."""

    units: Mapping[str, int]
    macs: tuple[_Term, ...]
    params: tuple[_Term, ...]

    @classmethod
    def of(cls, graph: Graph, groups: Sequence[Group], refit: bool) -> CostModel:
        """``refit``: a consumer without a bias gets one (the refit's constant column)."""
        out_group = {id(v): g.name for g in groups for v in _group_values(g)}
        in_group = {id(c.node): g.name for g in groups for c in g.consumers}
        macs, params = [], []
        for node in graph.nodes:
            out = out_group.get(id(node.output)) if node.outputs else None
            into = in_group.get(id(node))
            both = tuple(g for g in (out, into) if g is not None)
            macs.append(_Term(node_cost(node).macs, both))
            for key, param in node.params.items():
                if key in ("weight", "bias") and node.op in ("dense", "conv"):
                    scaled = both if key == "weight" else tuple(g for g in (out,) if g is not None)
                elif key in OPS[node.op].weights and out is not None and param.data.size > 1:
                    scaled = (out,)
                else:
                    scaled = ()
                params.append(_Term(param.data.size, scaled))
            if refit and into is not None and "bias" not in node.params:
                rows = node.params["weight"].shape[0]
                params.append(_Term(rows, tuple(g for g in (out,) if g is not None)))
        return cls({g.name: g.units for g in groups}, tuple(macs), tuple(params))

    def cost(self, counts: Mapping[str, int], what: str) -> float:
        terms = self.macs if what == "macs" else self.params
        return sum(t.size * math.prod(counts[g] / self.units[g] for g in t.groups) for t in terms)


def _group_values(group: Group) -> list[Value]:
    return [p.output for p in group.producers] + [n.output for n in group.path]


def grid(units: int, points: int = 16) -> list[int]:
    """The counts a group is profiled at: every count for small groups, else dense at both ends."""
    if units <= 2 * points:
        return list(range(1, units + 1))
    geometric = np.round(units ** np.linspace(0.0, 1.0, points))
    linear = np.round(np.linspace(1, units, points))
    return sorted({int(c) for c in np.concatenate([geometric, linear])})


def uniform_counts(model: CostModel, fixed: Counts, what: str, budget: float) -> Counts | None:
    """The largest single kept fraction of every free group that fits ``budget`` (None if none fits)."""

    def counts(fraction: float) -> Counts:
        return {g: fixed.get(g, max(1, math.floor(fraction * u + 1e-9))) for g, u in model.units.items()}

    fractions = sorted({k / u for u in model.units.values() for k in range(1, u + 1)}, reverse=True)
    for fraction in fractions:
        chosen = counts(fraction)
        if model.cost(chosen, what) <= budget:
            return chosen
    return None


def output_counts(
    model: CostModel,
    profiles: Mapping[str, Mapping[int, float]],
    fixed: Counts,
    what: str,
    budget: float,
) -> Counts | None:
    """Greedy on the profiles (group -> count -> final-output error); None if the least counts overrun."""
    chosen: Counts = {g: fixed.get(g, u) for g, u in model.units.items()}
    least = {g: fixed.get(g, 1) for g in model.units}
    if model.cost(least, what) > budget:
        return None

    errors = {g: _interpolated(profile, model.units[g]) for g, profile in profiles.items()}

    def moves(down: bool) -> list[tuple[float, str, int]]:
        found = []
        now = model.cost(chosen, what)
        for g, error in errors.items():
            if g in fixed:
                continue
            for k in range(1, chosen[g]) if down else range(chosen[g] + 1, model.units[g] + 1):
                trial = {**chosen, g: k}
                saved = now - model.cost(trial, what)
                gained = error[k] - error[chosen[g]]
                if down and saved > 0:
                    found.append((gained / saved, g, k))
                elif not down and model.cost(trial, what) <= budget and saved < 0:
                    found.append((gained / -saved, g, k))
        return found

    while model.cost(chosen, what) > budget:
        _, g, k = min(moves(down=True))
        chosen[g] = k
    while True:
        up = moves(down=False)
        if not up:
            return chosen
        _, g, k = min(up)  # the most error removed per cost added (gained is negative)
        chosen[g] = k


def _interpolated(profile: Mapping[int, float], units: int) -> np.ndarray:
    """The profile at every count 0..units, linear between the profiled counts (index = count)."""
    counts = sorted(profile)
    return np.interp(np.arange(units + 1), counts, [profile[k] for k in counts])
