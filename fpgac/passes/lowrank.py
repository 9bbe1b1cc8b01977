"""Low-rank split of dense and conv layers (Decomposable-Net style), after training, without retraining.

``method=svd``: a dense ``W`` (m x n) becomes two dense layers from its truncated SVD, ``W ≈ B A`` with
``A = √S_r V_rᵀ`` (r x n) and ``B = U_r √S_r`` (m x r; the bias stays on it): the square roots balance
the two factors' ranges, which fixed point likes. A conv becomes a k x k conv with r filters (same
strides, pads, dilations) and a 1 x 1 conv. ``method=tucker``: a conv becomes Tucker-2, 1 x 1 (c -> r_in)
then the k x k core (r_in -> r_out) then 1 x 1 (r_out -> m), from the HOSVD of the kernel; a 1 x 1 that
would keep every channel is left out. Dense layers are always split by SVD.

A layer is split only where that saves MACs. How much to keep is one of:

* ``rank=K`` in every layer, or ``rank=auto``: the rank VBMF finds (per mode for Tucker);
* ``energy=E``: the least rank keeping a fraction E of each layer's squared singular values;
* ``macs=R`` / ``params=R``: the whole graph's MACs (as ``report.json`` counts them: every dense, conv
  and affine) or params at most R of the original. With ``allocation=global`` (default) one threshold
  on one criterion over all layers' singular values s decides every rank, as Decomposable-Net does.
  The criterion of a rank-one component is its share of its layer's energy, ``s_i² / sum(s²)``,
  divided by the MACs (or params) it costs in that layer. The share, not ``s_i``, because a ReLU
  network computes the same function with ``W_1 c`` and ``W_2 / c``, and a criterion that changes
  under that rescaling is arbitrary; divided by the cost because the budget is in MACs, so this is
  the greedy knapsack rule (least loss per MAC saved) and big layers give up more rank than small
  ones. Whatever budget the threshold leaves is topped up with the next components that still fit.
  ``allocation=uniform`` keeps the same fraction of MACs in every layer (the baseline).
  ``min_rank=R`` (default 1) keeps at least R components in every split layer (per mode for Tucker,
  capped by its size) and allocates the rest of the budget as above. The criterion ranks components by
  the error they leave *without training*; a layer it starves to rank 1 is a bottleneck that a later
  ``finetune`` cannot widen (it trains the factors, it cannot add rank). On the digits CNN at
  ``macs=0.2, method=tucker`` the floor costs 2.8 points training-free (81.6% vs 84.4%) and gains 1.6
  after the same fine-tune (96.0% vs 94.4%).

With calibration data the SVD is activation-aware (``aware``, default on when there is data): the
factors minimise the error of the layer's *outputs* on the calibration batch, not of its weights, by
an SVD of ``W L`` (``L Lᵀ`` the inputs' covariance), and the bias absorbs the mean shift; the
singular values ranked by the global criterion are then those of ``W L``, shares of output energy. For
Tucker, ``aware`` refits the last 1 x 1 factor and the bias to the original outputs by least squares.
Layers are split front to back: once one is split, every later dense/conv layer (split or not) is first
refitted by least squares to its *original* outputs on the inputs the split graph now gives it, so it
absorbs the earlier splits' error (on the digits CNN at ``macs=0.3``: 88% instead of 41%).

``levels="1,0.5,0.3,0.2"`` (svd only): rank levels, one design whose rank is chosen at run time
(:mod:`fpgac.ir.levels`). Each level is a MAC budget (a fraction of the original's MACs, largest first).
The layers that get levels are those the smallest level's allocation splits (elsewhere a split would not
save MACs); they are split at every level, their factors at the largest level's rank, the others keep
their weights. The ranks of every level come from the one global criterion above at that level's budget,
so a smaller budget only raises the threshold and every layer keeps a prefix of its components (singular
values in descending order); a top-up that would break the prefix is capped by the level above
(:func:`~fpgac.passes.rank_allocation.nested_ranks`). With calibration data the weights are shared, so the
refits of later layers fit the inputs of every level at once (the levels' traces stacked), and every level
gets its own bias on each second factor and every dense/conv layer after the first factor: the
least-squares bias for the level's own inputs (the mean of the original output minus the level's), fitted
front to back.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fpgac.analysis.cost import graph_cost, node_cost
from fpgac.errors import FpgacError
from fpgac.interp.interpreter import run_float
from fpgac.ir.graph import Graph, Node, Param
from fpgac.ir.levels import LEVEL_BIAS, at_level
from fpgac.ir.types import Float
from fpgac.passes import linalg
from fpgac.passes.rank_allocation import (
    Ranks,
    SplitLayer,
    effective_cost,
    energy_ranks,
    global_ranks,
    nested_ranks,
    uniform_ranks,
)

log = logging.getLogger(__name__)


class LowRankError(FpgacError):
    """The lowrank pass cannot run as asked."""


@dataclass(frozen=True)
class LowRank:
    """Split dense/conv layers into low-rank factors; see the module docstring for the options."""

    name: ClassVar[str] = "lowrank"
    macs: float | None = None
    params: float | None = None
    rank: int | str | None = None
    energy: float | None = None
    levels: str | None = None
    allocation: str = "global"
    method: str = "svd"
    aware: bool | None = None
    damp: float = 1e-3
    min_rank: int = 1
    calib: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        given = [k for k in ("macs", "params", "rank", "energy", "levels") if getattr(self, k) is not None]
        if len(given) != 1:
            raise LowRankError(
                f"lowrank: give exactly one of macs, params, rank, energy, levels (got {given or 'none'})"
            )
        if self.levels is not None:
            self._check_levels()
        for key in ("macs", "params", "energy"):
            value = getattr(self, key)
            if value is not None and not 0.0 < value <= 1.0:
                raise LowRankError(f"lowrank: {key} must be in (0, 1], not {value!r}")
        if (
            self.rank is not None
            and self.rank != "auto"
            and not (isinstance(self.rank, int) and self.rank >= 1)
        ):
            raise LowRankError(f"lowrank: rank must be a positive integer or auto, not {self.rank!r}")
        if self.allocation not in ("global", "uniform"):
            raise LowRankError(f"lowrank: allocation must be global or uniform, not {self.allocation!r}")
        if self.method not in ("svd", "tucker"):
            raise LowRankError(f"lowrank: method must be svd or tucker, not {self.method!r}")
        if self.aware and self.calib is None:
            raise LowRankError("lowrank: aware=true needs calibration data (--calib)")
        if isinstance(self.min_rank, bool) or not isinstance(self.min_rank, int) or self.min_rank < 1:
            raise LowRankError(f"lowrank: min_rank must be a positive integer, not {self.min_rank!r}")
        if self.min_rank > 1 and self.macs is None and self.params is None:
            raise LowRankError("lowrank: min_rank floors the allocation of a budget: give macs or params")

    def _check_levels(self) -> None:
        fractions = self.level_fractions
        if len(fractions) < 2 or any(not 0.0 < f <= 1.0 for f in fractions):
            raise LowRankError(
                f"lowrank: levels must be two or more MAC fractions in (0, 1], not {self.levels!r}"
            )
        if any(a <= b for a, b in itertools.pairwise(fractions)):
            raise LowRankError(f"lowrank: levels must decrease, largest first, not {self.levels!r}")
        if self.method != "svd":
            raise LowRankError("lowrank: levels need method=svd (a Tucker core has no nested ranks)")

    @property
    def level_fractions(self) -> list[float]:
        """The levels' MAC budgets, largest first."""
        try:
            return [float(f) for f in str(self.levels).split(",")]
        except ValueError:
            raise LowRankError(
                f"lowrank: levels must be comma-separated fractions, not {self.levels!r}"
            ) from None

    @property
    def use_data(self) -> bool:
        return self.calib is not None if self.aware is None else self.aware

    def run(self, graph: Graph) -> Graph:
        traced = None
        if self.use_data:
            assert self.calib is not None
            traced = run_float(graph, list(self.calib), trace=True)
        layers = [self._layer(n, traced) for n in graph.nodes if _splittable(n)]
        what = "params" if self.params is not None else "macs"
        total = getattr(graph_cost(graph), what)
        macs_before = graph_cost(graph).macs
        per_level, levelled = self._level_ranks(layers, total) if self.levels is not None else (None, [])
        ranks = per_level[0] if per_level is not None else self._allocate(layers, what, total)
        record, drifted, seconds = {}, False, []
        target = traced  # what refits aim at: the original outputs (once per level with levels)
        if per_level is not None and traced is not None:
            target = {k: np.concatenate([v] * len(per_level)) for k, v in traced.items()}
        for i, (layer, r) in enumerate(zip(layers, ranks, strict=True)):
            name = layer.node.name
            before = node_cost(layer.node).macs
            split = (
                levelled[i]
                if per_level is not None
                else (layer.cost(r, "macs") < layer.original("macs") and r != layer.full)
            )
            current = traced
            if drifted and traced is not None:  # refit to the original outputs on today's inputs
                current = self._current(graph, len(per_level) if per_level is not None else 1)
            if split:
                if current is not traced:
                    assert target is not None
                    layer = self._layer(layer.node, current, target)
                nodes = _replace(graph, layer, r, self._fit_last(layer, r, current, target))
                after = sum(node_cost(n).macs for n in nodes)
                if per_level is not None:  # every level's rank; the factors hold the largest
                    nodes[0].attrs["ranks_out"] = [level[i][0] for level in per_level]
                    nodes[1].attrs["ranks_in"] = [level[i][0] for level in per_level]
                    seconds.append(nodes[1])
                drifted = True
            else:
                if current is not traced:  # an unsplit layer after split ones still corrects their drift
                    assert current is not None and target is not None
                    _refit_in_place(layer.node, current, target, self.damp)
                after = before
            kept = r if split else layer.full  # an unsplit layer keeps its full rank
            record[name] = {
                "rank": list(kept) if layer.tucker else kept[0],
                **({"level_ranks": [level[i][0] for level in per_level]} if per_level is not None else {}),
                "split": split,
                "macs_before": before,
                "macs_after": after,
            }
            log.info("lowrank: %s rank %s%s", name, r, "" if split else " (not split)")
        if per_level is not None and traced is not None:
            assert self.calib is not None
            _level_biases(graph, _biased_after(graph, seconds), len(per_level), list(self.calib), traced)
        graph.metadata.setdefault("compression", []).append(
            {
                "pass": self.name,
                "options": self._options(),
                "macs_before": macs_before,
                "macs_after": graph_cost(graph).macs,
                "layers": record,
            }
        )
        return graph

    def _options(self) -> dict[str, object]:
        keys = ("macs", "params", "rank", "energy", "levels")
        options = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        floor = {"min_rank": self.min_rank} if self.min_rank > 1 else {}
        return {
            **options,
            "allocation": self.allocation,
            "method": self.method,
            "aware": self.use_data,
            **floor,
        }

    def _layer(
        self,
        node: Node,
        traced: dict[str, np.ndarray] | None,
        original: dict[str, np.ndarray] | None = None,
    ) -> SplitLayer:
        """The layer's factors; with ``original`` values, first refitted to its original outputs."""
        weight = node.params["weight"].data.astype(np.float64)
        tucker = self.method == "tucker" and node.op == "conv"
        shape = node.output.shape
        positions = math.prod(shape[:-1]) if node.op == "dense" else math.prod(shape[1:])
        in_positions = math.prod(node.inputs[0].shape[1:]) if node.op == "conv" else positions
        mean = None
        if tucker:
            u_out, s_out, _ = np.linalg.svd(weight.reshape(weight.shape[0], -1), full_matrices=False)
            mode1 = np.moveaxis(weight, 1, 0).reshape(weight.shape[1], -1)
            u_in, s_in, _ = np.linalg.svd(mode1, full_matrices=False)
            energies = (s_out**2 / np.sum(s_out**2), s_in**2 / np.sum(s_in**2))
            return SplitLayer(node, True, weight, positions, in_positions, energies, (u_out, u_in))
        cov, bias = None, None
        if traced is not None:
            target = None if original is None else original[node.output.name]
            stats = linalg.moments(node, traced[node.inputs[0].name], target)
            fitted = stats.fit(self.damp)
            if fitted is not None:
                weight, bias = fitted[:, :-1].reshape(weight.shape), fitted[:, -1]
            mean, cov = stats.mean(), stats.covariance(self.damp)
        u, s, vt, l_inv = linalg.whitened_svd(weight.reshape(weight.shape[0], -1), cov)
        if l_inv is not None:
            vt = vt @ l_inv
        energy = s**2 / max(float(np.sum(s**2)), 1e-300)
        layer = SplitLayer(node, False, weight, positions, in_positions, (energy, energy), (u, s, vt), mean)
        layer.bias = bias
        return layer

    def _current(self, graph: Graph, count: int) -> dict[str, np.ndarray]:
        """Every value on the calibration batch; with rank levels, at each level, stacked along the batch,
        so a refit serves all levels at once (their weights are shared; ``count`` times the memory)."""
        assert self.calib is not None
        runs = [run_float(at_level(graph, level), list(self.calib), trace=True) for level in range(count)]
        return runs[0] if count == 1 else {k: np.concatenate([run[k] for run in runs]) for k in runs[0]}

    def _level_ranks(self, layers: list[SplitLayer], total: int) -> tuple[list[list[Ranks]], list[bool]]:
        """Nested ranks per level, and which layers get levels: those that the allocation at the smallest
        level splits (there a split saves MACs); the others keep their weights at every level."""
        fractions = self.level_fractions

        def out_of_reach() -> LowRankError:
            return LowRankError(f"lowrank: levels={self.levels} are out of reach: rank 1 costs too much")

        def fits_smallest(ranks: list[Ranks]) -> bool:
            cost = sum(effective_cost(layer, r, "macs") for layer, r in zip(layers, ranks, strict=True))
            return total - sum(layer.original("macs") for layer in layers) + cost <= fractions[-1] * total

        smallest = global_ranks(layers, "macs", fits_smallest)
        if smallest is None:
            raise out_of_reach()
        levelled = [
            effective_cost(layer, r, "macs") < layer.original("macs")
            for layer, r in zip(layers, smallest, strict=True)
        ]
        chosen = [layer for layer, keep in zip(layers, levelled, strict=True) if keep]
        fixed = total - sum(layer.original("macs") for layer in chosen)

        def fits(ranks: list[Ranks], fraction: float) -> bool:
            cost = fixed + sum(layer.cost(r, "macs") for layer, r in zip(chosen, ranks, strict=True))
            return cost <= fraction * total

        nested = nested_ranks(chosen, fractions, fits)
        if nested is None:
            raise out_of_reach()
        per_level = []
        for level in nested:
            picks = iter(level)
            pairs = zip(layers, levelled, strict=True)
            per_level.append([next(picks) if keep else layer.full for layer, keep in pairs])
        return per_level, levelled

    def _allocate(self, layers: list[SplitLayer], what: str, total: int) -> list[Ranks]:
        if self.rank is not None:
            return [self._fixed_rank(layer) for layer in layers]
        if self.energy is not None:
            return [energy_ranks(layer, self.energy) for layer in layers]
        fraction = self.macs if self.macs is not None else self.params
        assert fraction is not None
        fixed = total - sum(layer.original(what) for layer in layers)
        budget = fraction * total

        def cost(ranks: list[Ranks]) -> int:
            return fixed + sum(effective_cost(layer, r, what) for layer, r in zip(layers, ranks, strict=True))

        search = global_ranks if self.allocation == "global" else uniform_ranks
        ranks = search(layers, what, lambda rs: cost(rs) <= budget, self.min_rank)
        if ranks is None:
            smallest = cost([layer.ranks_at(self.min_rank) for layer in layers])
            raise LowRankError(
                f"lowrank: {what}={fraction:g} is out of reach: rank {self.min_rank} everywhere still costs "
                f"{smallest / total:.3f} of the original {what}"
            )
        return ranks

    def _fixed_rank(self, layer: SplitLayer) -> Ranks:
        if self.rank != "auto":
            assert isinstance(self.rank, int)
            return layer.ranks_at(self.rank)
        if layer.tucker:
            w = layer.weight
            return (
                linalg.vbmf_rank(w.reshape(w.shape[0], -1)),
                linalg.vbmf_rank(np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)),
            )
        r = linalg.vbmf_rank(layer.weight.reshape(layer.out, -1))  # of the weights, as Kim et al. do
        return r, r

    def _fit_last(
        self,
        layer: SplitLayer,
        ranks: Ranks,
        current: dict[str, np.ndarray] | None,
        original: dict[str, np.ndarray] | None,
    ) -> np.ndarray | None:
        """Aware Tucker: the last factor and bias refitted to the original outputs, as (m, r_out + 1)."""
        if not layer.tucker or current is None or original is None or ranks[0] >= layer.out:
            return None
        node = layer.node
        u_out, u_in = layer.factors
        r_out, r_in = ranks
        core = np.einsum("oc...,or,ci->ri...", layer.weight, u_out[:, :r_out], u_in[:, :r_in])
        inner = np.einsum("ri...,ci->rc...", core, u_in[:, :r_in]).reshape(r_out, -1)
        basis = np.zeros((inner.shape[1] + 1, r_out + 1))  # [x 1] @ basis = [z 1], z the core's output
        basis[:-1, :-1], basis[-1, -1] = inner.T, 1.0
        stats = linalg.moments(node, current[node.inputs[0].name], original[node.output.name])
        return stats.fit(self.damp, basis)


def _biased_after(graph: Graph, seconds: list[Node]) -> list[Node]:
    """The layers whose bias can follow the level: the second factors, and every dense or (groups 1)
    conv layer with a bias after the first of them (their inputs change with the level)."""
    if not seconds:
        return []
    later = graph.nodes[graph.index_of(seconds[0]) :]
    return [
        n
        for n in later
        if n in seconds or (_splittable_op(n) and "bias" in n.params and not n.attrs.get("ranks_out"))
    ]


def _level_biases(
    graph: Graph, biased: list[Node], count: int, calib: list[np.ndarray], original: dict[str, np.ndarray]
) -> None:
    """Give every layer of ``biased`` a bias per level: its bias plus the mean of (original - level) output.

    Front to back and level by level, each fitted on the level's own inputs, so later layers absorb the
    shifts earlier ones leave at that level; row 0 (the largest level) is also the node's ``bias``.
    """
    for node in biased:
        bias = node.params["bias"]
        node.params[LEVEL_BIAS] = Param(np.repeat(bias.data[None], count, axis=0), bias.format)
    for level in range(count):
        for node in biased:
            out = run_float(at_level(graph, level), calib, trace=True)[node.output.name].astype(np.float64)
            axis = out.ndim - 1 if node.op == "dense" else 1
            others = tuple(a for a in range(out.ndim) if a != axis)
            shift = np.mean(original[node.output.name].astype(np.float64) - out, axis=others)
            biases = node.params[LEVEL_BIAS]
            biases.data[level] = biases.data[level] + shift.astype(biases.data.dtype)
            if level == 0:
                node.params["bias"] = Param(biases.data[0].copy(), biases.format)


def _refit_in_place(
    node: Node, current: dict[str, np.ndarray], original: dict[str, np.ndarray], damp: float
) -> None:
    """Refit ``node`` to its original outputs on its current inputs (when the batch is big enough)."""
    stats = linalg.moments(node, current[node.inputs[0].name], original[node.output.name])
    fitted = stats.fit(damp)
    if fitted is None:
        return
    weight = node.params["weight"]
    fmt = node.params["bias"].format if "bias" in node.params else weight.format
    data = fitted[:, :-1].reshape(weight.shape).astype(weight.data.dtype)
    node.params["weight"] = Param(data, weight.format)
    node.params["bias"] = Param(fitted[:, -1].astype(weight.data.dtype), fmt)


def _splittable(node: Node) -> bool:
    return all(isinstance(p.format, Float) for p in node.params.values()) and _splittable_op(node)


def _splittable_op(node: Node) -> bool:
    return node.op == "dense" or (node.op == "conv" and node.attrs["groups"] == 1)


def _replace(graph: Graph, layer: SplitLayer, ranks: Ranks, last: np.ndarray | None) -> list[Node]:
    """Put the factor layers in place of ``layer.node``; the output value keeps its name."""
    node = layer.node
    dtype = node.params["weight"].data.dtype
    fmt = node.params["weight"].format
    bias = node.params["bias"].data.astype(np.float64) if "bias" in node.params else np.zeros(layer.out)
    bias = bias if layer.bias is None else layer.bias
    specs = _tucker_specs(layer, ranks, bias, last) if layer.tucker else _svd_specs(layer, ranks[0], bias)
    value, index, nodes = node.inputs[0], graph.index_of(node), []
    for i, (weight, b, window) in enumerate(specs):
        attrs = {} if node.op == "dense" else _window(node, window)
        params = {"weight": Param(weight.astype(dtype), fmt)}
        if b is not None:
            params["bias"] = Param(b.astype(dtype), fmt)
        new = graph.add(
            node.op, [value], name=f"{node.name}_lr{i + 1}", attrs=attrs, params=params, index=index + i
        )
        value = new.output
        nodes.append(new)
    name = node.output.name
    graph.replace_value(node.output, value)
    graph.remove(node)
    value.name = name
    return nodes


def _window(node: Node, full: bool) -> dict[str, object]:
    """The original conv's window, or a 1 x 1 pointwise one."""
    if full:
        return {k: list(v) if isinstance(v, list) else v for k, v in node.attrs.items()}
    nd = len(node.params["weight"].shape) - 2
    return {"strides": [1] * nd, "pads": [0] * (2 * nd), "dilations": [1] * nd, "groups": 1}


def _svd_specs(
    layer: SplitLayer, r: int, bias: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray | None, bool]]:
    u, s, vt = layer.factors
    root = np.sqrt(s[:r])
    first = root[:, None] * vt[:r]
    second = u[:, :r] * root[None, :]
    if layer.mean is not None:  # the mean output the truncation lost goes into the bias
        bias = bias + (layer.weight.reshape(layer.out, -1) - second @ first) @ layer.mean
    if layer.node.op == "dense":
        return [(first, None, True), (second, bias, True)]
    kernel = layer.weight.shape[2:]
    ones = (1,) * len(kernel)
    return [
        (first.reshape(r, layer.channels, *kernel), None, True),
        (second.reshape(layer.out, r, *ones), bias, False),
    ]


def _tucker_specs(
    layer: SplitLayer, ranks: Ranks, bias: np.ndarray, last: np.ndarray | None
) -> list[tuple[np.ndarray, np.ndarray | None, bool]]:
    u_out, u_in = layer.factors
    r_out, r_in = ranks
    ones = (1,) * (layer.weight.ndim - 2)
    specs: list[tuple[np.ndarray, np.ndarray | None, bool]] = []
    project_in = u_in[:, :r_in] if r_in < layer.channels else np.eye(layer.channels)
    project_out = u_out[:, :r_out] if r_out < layer.out else np.eye(layer.out)
    core = np.einsum("oc...,or,ci->ri...", layer.weight, project_out, project_in)
    if r_in < layer.channels:
        specs.append((project_in.T.reshape(r_in, layer.channels, *ones), None, False))
    if r_out < layer.out:
        weight, b = (project_out, bias) if last is None else (last[:, :-1], last[:, -1])
        specs += [(core, None, True), (weight.reshape(layer.out, r_out, *ones), b, False)]
    else:
        specs.append((core, bias, True))
    return specs
