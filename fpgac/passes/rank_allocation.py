"""Which ranks a low-rank split gets under a budget: the layers' costs, spectra and the two allocations.

Not a pass: the analysis :mod:`fpgac.passes.lowrank` sizes its factors from. A layer's ranks follow a
one-parameter family (``r`` in every mode, capped by each mode's size), so both allocations are searches
over one integer per layer; see the lowrank pass's docstring for the global criterion and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fpgac.ir.graph import Node

Ranks = tuple[int, int]  # svd: (r, r); tucker: (r_out, r_in)


@dataclass
class SplitLayer:
    """One splittable layer: its matrices, spectra and cost as a function of its ranks."""

    node: Node
    tucker: bool
    weight: np.ndarray  # float64, original shape
    positions: int  # output positions per sample
    in_positions: int
    energies: tuple[np.ndarray, np.ndarray]  # normalised σ² (svd: the same array twice)
    factors: tuple[np.ndarray, ...]
    mean: np.ndarray | None = None
    bias: np.ndarray | None = None  # replaces the node's bias when the layer was refitted

    @property
    def out(self) -> int:
        return self.weight.shape[0]

    @property
    def channels(self) -> int:
        return self.weight.shape[1]

    @property
    def taps(self) -> int:
        return math.prod(self.weight.shape[2:])

    @property
    def full(self) -> Ranks:
        if self.tucker:
            return self.out, self.channels
        r = min(self.out, self.channels * self.taps)
        return r, r

    def cost(self, ranks: Ranks, what: str) -> int:
        """MACs or params of the split layer at ``ranks`` (weights only; the bias is the same either way)."""
        m, c, k = self.out, self.channels, self.taps
        p, p_in = (self.positions, self.in_positions) if what == "macs" else (1, 1)
        if not self.tucker:
            return p * ranks[0] * (m + c * k)
        r_out, r_in = ranks
        first = p_in * c * r_in if r_in < c else 0
        last = p * m * r_out if r_out < m else 0
        return first + p * r_out * r_in * k + last

    def original(self, what: str) -> int:
        return self.weight.size * (self.positions if what == "macs" else 1)

    def ranks_at(self, r: int) -> Ranks:
        """The ranks of the one-parameter family the budgets search over."""
        full = self.full
        return min(r, full[0]), min(r, full[1])

    def steps(self) -> int:
        return max(self.full)

    def scores(self, what: str) -> np.ndarray:
        """Criterion of going from rank r-1 to r (r = 1..steps), non-increasing."""
        e_out, e_in = self.energies
        gains, costs = [], []
        for r in range(1, self.steps() + 1):
            gain = (e_out[r - 1] if r <= len(e_out) else 0.0) + (
                e_in[r - 1] if self.tucker and r <= len(e_in) else 0.0
            )
            gains.append(gain)
            costs.append(max(self.cost(self.ranks_at(r), what) - self.cost(self.ranks_at(r - 1), what), 1))
        return np.minimum.accumulate(np.array(gains) / np.array(costs))


def effective_cost(layer: SplitLayer, ranks: Ranks, what: str) -> int:
    """The layer's cost at ``ranks``, or its original cost where splitting would not save MACs."""
    if layer.cost(ranks, "macs") >= layer.original("macs") or ranks == layer.full:
        return layer.original(what)
    return layer.cost(ranks, what)


def energy_ranks(layer: SplitLayer, energy: float) -> Ranks:
    def least(e: np.ndarray) -> int:
        return min(int(np.searchsorted(np.cumsum(e), energy - 1e-12)) + 1, len(e))

    return least(layer.energies[0]), least(layer.energies[1]) if layer.tucker else least(layer.energies[0])


def global_ranks(
    layers: list[SplitLayer], what: str, fits: Callable[[list[Ranks]], bool], floor: int = 1
) -> list[Ranks] | None:
    """Ranks from the least threshold on the global criterion that fits the budget, then topped up.

    The threshold moves by whole components, which on a small network can leave several percent of the
    budget unused; the components below it are then added in criterion order wherever they still fit.
    Every layer keeps at least ``floor`` components (capped by its size): the lowrank pass's ``min_rank``.
    """
    scores = [layer.scores(what) for layer in layers]
    thresholds = np.unique(np.concatenate([[-np.inf], *scores]))

    def ranks(counts: list[int]) -> list[Ranks]:
        return [layer.ranks_at(c) for layer, c in zip(layers, counts, strict=True)]

    def counts(tau: float) -> list[int]:
        return [max(min(floor, len(s)), int(np.sum(s > tau))) for s in scores]

    if not fits(ranks(counts(thresholds[-1]))):
        return None
    lo, hi = 0, len(thresholds) - 1  # fits(hi) holds; find the least index that fits
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(ranks(counts(thresholds[mid]))):
            hi = mid
        else:
            lo = mid + 1
    chosen = counts(thresholds[lo])
    steps = [(s[r], i, r + 1) for i, s in enumerate(scores) for r in range(chosen[i], len(s))]
    for _, i, r in sorted(steps, key=lambda step: -step[0]):
        if chosen[i] == r - 1:
            trial = [*chosen[:i], r, *chosen[i + 1 :]]
            if fits(ranks(trial)):
                chosen = trial
    return ranks(chosen)


def uniform_ranks(
    layers: list[SplitLayer], what: str, fits: Callable[[list[Ranks]], bool], floor: int = 1
) -> list[Ranks] | None:
    """The same fraction of MACs (or params) kept in every layer: the largest fraction that fits, each
    layer keeping at least ``floor`` components (capped by its size)."""

    def ranks(fraction: float) -> list[Ranks]:
        chosen = []
        for layer in layers:
            r = min(floor, layer.steps())
            while r < layer.steps() and layer.cost(layer.ranks_at(r + 1), what) <= fraction * layer.original(
                what
            ):
                r += 1
            chosen.append(layer.ranks_at(r))
        return chosen

    if not fits(ranks(0.0)):
        return None
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(ranks(mid)) else (lo, mid)
    return ranks(lo)


def nested_ranks(
    layers: list[SplitLayer], budgets: list[float], fits: Callable[[list[Ranks], float], bool]
) -> list[list[Ranks]] | None:
    """Ranks for rank levels, largest budget first, each level a prefix of the one before.

    Every level comes from the same global criterion (:func:`global_ranks` at that level's budget), so a
    smaller budget raises the one threshold and each layer keeps a prefix of its components. The top-up
    after the threshold may add a component at a smaller budget that a larger one left out; each level is
    therefore capped by the level before it (which only lowers its cost), so the levels are nested.
    """
    levels: list[list[Ranks]] = []
    for budget in budgets:

        def at_budget(ranks: list[Ranks], budget: float = budget) -> bool:
            return fits(ranks, budget)

        ranks = global_ranks(layers, "macs", at_budget)
        if ranks is None:
            return None
        if levels:
            ranks = [(min(a[0], b[0]), min(a[1], b[1])) for a, b in zip(ranks, levels[-1], strict=True)]
        levels.append(ranks)
    return levels
