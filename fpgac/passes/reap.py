"""Structured pruning of neurons and channels by REAP, Neuro-Unification or L1 norm, without retraining.

Units are removed by *group* (see :mod:`fpgac.passes.units`): in a chain, one layer's units that feed
one dense/conv consumer through per-unit ops; in a residual network, a channel of the residual stream,
produced by every layer that adds into it and read by every layer that reads it, removed everywhere at
once (``residual=false`` prunes only groups of one producer, no add and one consumer: "internal-only").
What is measured is the consumers' pre-activations on the calibration batch, because that is all a
unit's removal can change directly.

* ``method=reap`` (default): greedily drop the unit whose removal leaves the least error in those
  pre-activations after every consumer is refitted by least squares, in closed form: a group's error is
  the sum over its consumers, each with the Gram matrix of its own input (see
  :func:`fpgac.passes.linalg.reap_drops`).
* ``method=unify``: merge each dropped unit into the surviving unit that best emulates it, folding its
  outgoing weights (Neuro-Unification; groups with one consumer only).
* ``method=l1``: drop the units with the smallest L1 norm of incoming weights (the usual baseline).

``refit`` (default true, false for ``l1``) refits the consumers by least squares on the kept units, so
the value of a method's *selection* can be measured apart from the refit.

How much: ``keep=F`` keeps a fraction F of every group (``layer_keep`` per layer, from the build config;
0.5 when nothing is given), or ``macs=R`` / ``params=R`` bounds the whole graph's MACs or params to R of
the original, allocated by ``allocation`` (see :mod:`fpgac.passes.reap_allocation`): ``uniform``, the
same fraction everywhere, or ``output``, by each group's measured effect on the network's *final* outputs
(Kamma & Wada's pruning-ratio optimisation; where the uniform choice differs, both are measured with
every group pruned and the one with the smaller output error is kept). ``order``: groups are pruned
``forward`` (front to back), ``backward``, or by ``impact`` (the group whose pruning at its count hurts
the final outputs least first, measured again after each; out of forward order, every consumer is then
refitted once more, front to back, on its final inputs).

Groups are pruned one after the other, each on the activations of the graph as already pruned, against
the *original* graph's consumer pre-activations: the refit then also corrects the drift that earlier
prunes caused, which one-shot pruning on the original activations cannot. (The closed form still
applies: the refit target ``W_0 X_0`` is first projected onto the current inputs, ``W* = Y Xᵀ G⁻¹``,
and ``‖Y - W'X‖² = ‖Y - W*X‖² + tr((W* - W') G (W* - W')ᵀ)``.) A consumer's bias is the weight of a
constant input, so a dropped unit's mean is absorbed into it. ``G = XᵀX + λI`` with ``λ = damp`` times
the mean diagonal: a unit that is never active (a dead ReLU) would otherwise make ``G`` singular.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fpgac.analysis.cost import graph_cost, node_cost
from fpgac.errors import FpgacError
from fpgac.interp.interpreter import run_float
from fpgac.ir.boundary import output_to_logical
from fpgac.ir.graph import Graph, Node, Param
from fpgac.passes import linalg
from fpgac.passes.reap_allocation import CostModel, Counts, grid, output_counts, uniform_counts
from fpgac.passes.units import Group, find_groups, remove_units

log = logging.getLogger(__name__)

METHODS = ("reap", "unify", "l1")
ALLOCATIONS = ("uniform", "output")
ORDERS = ("forward", "backward", "impact")

Trace = dict[str, np.ndarray]


@dataclass
class Reference:
    """The original graph's values on the calibration batch, and the units each pruned layer still has.

    A consumer's refit target is its original output, restricted to the output units it keeps when it
    was itself pruned as a producer before (``order=backward`` or ``impact``).
    """

    trace: Trace
    kept: dict[str, list[int]] = field(default_factory=dict)

    def target(self, node: Node) -> np.ndarray:
        target = self.trace[node.output.name]
        if node.name not in self.kept:
            return target
        return np.take(target, self.kept[node.name], axis=1 if node.op == "conv" else -1)


class ReapError(FpgacError):
    """The reap pass cannot run as asked."""


@dataclass(frozen=True)
class Reap:
    """Remove units of every prunable group; see the module docstring for the options.

    Options: ``keep`` (fraction of units kept, rounded down, at least one) or ``macs`` / ``params``
    (budget, fraction of the graph's) with ``allocation`` (``uniform``/``output``), ``order``
    (``forward``/``backward``/``impact``), ``method`` (``reap``/``unify``/``l1``), ``refit``
    (least-squares refit of the consumers; default true except for ``l1``), ``damp`` (relative ridge
    λ), ``residual`` (prune groups across residual adds and shared values), ``layer_keep`` (per-layer
    fractions from the build config). ``calib`` is the calibration batch; only ``l1`` without refit,
    with ``keep`` and the ``forward``/``backward`` order, runs without one.
    """

    name: ClassVar[str] = "reap"
    keep: float | None = None
    macs: float | None = None
    params: float | None = None
    allocation: str = "uniform"
    order: str = "forward"
    method: str = "reap"
    refit: bool | None = None
    damp: float = 1e-3
    residual: bool = True
    poem: bool = False
    layer_keep: Mapping[str, float] = field(default_factory=dict)
    calib: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for key, allowed in (("method", METHODS), ("allocation", ALLOCATIONS), ("order", ORDERS)):
            if getattr(self, key) not in allowed:
                raise ReapError(
                    f"reap: unknown {key} {getattr(self, key)!r}; expected one of {list(allowed)}"
                )
        given = [k for k in ("keep", "macs", "params") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ReapError(f"reap: give one of keep, macs, params (got {given})")
        fractions = [(k, getattr(self, k)) for k in given] + [
            (f"keep of {k!r}", v) for k, v in self.layer_keep.items()
        ]
        for what, fraction in fractions:
            if not 0.0 < fraction <= 1.0:
                raise ReapError(f"reap: {what} must be in (0, 1], not {fraction!r}")
        if self.allocation == "output" and self.budget is None:
            raise ReapError("reap: allocation=output needs a budget (macs=R or params=R)")
        if self.poem and (self.method != "reap" or not self.do_refit):
            raise ReapError("reap: poem=true is REAP's selection and refit: it needs method=reap, refit=true")
        if not self.damp > 0:
            raise ReapError(f"reap: damp must be positive, not {self.damp!r}")
        if self.calib is None and (self.method != "l1" or self.do_refit):
            raise ReapError(
                f"reap: method={self.method}{' with refit' if self.do_refit else ''} needs calibration data"
                " (--calib); only method=l1 with refit=false runs without"
            )
        if self.calib is None and (self.allocation == "output" or self.order == "impact"):
            raise ReapError("reap: allocation=output and order=impact need calibration data (--calib)")

    @property
    def do_refit(self) -> bool:
        return self.method != "l1" if self.refit is None else self.refit

    @property
    def budget(self) -> tuple[str, float] | None:
        """(``macs`` or ``params``, fraction), or None when ``keep`` decides."""
        for what in ("macs", "params"):
            value = getattr(self, what)
            if value is not None:
                return what, float(value)
        return None

    def run(self, graph: Graph) -> Graph:
        groups = self._groups(graph)
        unknown = set(self.layer_keep) - {p.name for g in groups for p in g.producers}
        if unknown:
            log.warning("reap: keep is set for %s, which are not prunable layers", sorted(unknown))
        original = Reference(self._trace(graph)) if self.calib is not None else None
        macs_before = graph_cost(graph).macs
        units = {g.name: g.units for g in groups}
        profiles: dict[str, dict[int, float]] = {}
        counts = self._counts(graph, groups, original, profiles)
        layers = self._apply(graph, groups, counts, original)
        for name, profile in profiles.items():
            layers[name]["profile"] = {str(k): v for k, v in sorted(profile.items())}
        order = [name for name in units if name in layers]
        graph.metadata.setdefault("compression", []).append(
            {
                "pass": self.name,
                "options": self._options(),
                "macs_before": macs_before,
                "macs_after": graph_cost(graph).macs,
                "order": list(layers),
                "layers": {name: layers[name] for name in order},
            }
        )
        return graph

    def _apply(
        self, graph: Graph, groups: list[Group], counts: Counts, original: Reference | None
    ) -> dict[str, dict[str, object]]:
        """Prune every group to its count, in the pass's order; what each group became, by prune order."""
        layers: dict[str, dict[str, object]] = {}
        pending = list(groups)
        while pending:
            group = self._next(graph, pending, counts, original)
            pending.remove(group)
            layers[group.name] = {
                "units": group.units,
                "kept": counts[group.name],
                "producers": [p.name for p in group.producers],
                "consumers": [c.node.name for c in group.consumers],
                "macs_before": _macs(group),
            }
            if counts[group.name] < group.units:
                kept = self._prune(graph, group, counts[group.name], original)
                if original is not None:
                    original.kept.update({p.name: kept for p in group.producers})
            layers[group.name]["macs_after"] = _macs(group)
        if self.order != "forward" and self.do_refit and original is not None:
            self._refit_forward(graph, [c.node for g in groups for c in g.consumers], original)
        return layers

    def _refit_forward(self, graph: Graph, consumers: list[Node], original: Reference) -> None:
        """Refit every consumer again, front to back, on the inputs of the graph as finally pruned.

        Pruned ``backward`` or by ``impact``, a consumer was refitted before the groups upstream of it
        were cut, on inputs that no longer exist; its error would compound with theirs. Refitted in
        graph order against the original outputs, each consumer sees its final inputs, as in ``forward``
        order (where this sweep would change nothing).
        """
        wanted = {id(n) for n in consumers}
        for node in [n for n in graph.nodes if id(n) in wanted]:
            stats = linalg.moments(node, self._trace(graph)[node.inputs[0].name], original.target(node))
            fitted = stats.fit(self.damp)
            if fitted is None:
                continue
            weight = node.params["weight"]
            dtype = weight.data.dtype
            node.params["weight"] = Param(fitted[:, :-1].reshape(weight.shape).astype(dtype), weight.format)
            fmt = node.params["bias"].format if "bias" in node.params else weight.format
            node.params["bias"] = Param(fitted[:, -1].astype(dtype), fmt)

    def _measured(self, graph: Graph, counts: Counts, original: Reference) -> float:
        """The final outputs' relative error of ``graph`` with every group pruned to ``counts``."""
        trial = graph.clone()
        self._apply(trial, self._groups(trial), counts, Reference(original.trace))
        return _output_error(trial, self.calib, original)

    def _options(self) -> dict[str, object]:
        amount: dict[str, object] = (
            {"keep": 0.5 if self.keep is None else self.keep}
            if self.budget is None
            else {self.budget[0]: self.budget[1], "allocation": self.allocation}
        )
        return {**amount, "order": self.order, "method": self.method, "refit": self.do_refit}

    def _groups(self, graph: Graph) -> list[Group]:
        groups, reasons = find_groups(graph)
        for name, reason in reasons.items():
            log.info("reap: layer %s is not pruned: %s", name, reason)
        chosen = []
        for group in groups:
            if not self.residual and (len(group.producers) > 1 or len(group.consumers) > 1):
                log.info("reap: layer %s is not pruned: its units are shared (residual=false)", group.name)
            elif self.method == "unify" and len(group.consumers) > 1:
                log.info("reap: layer %s is not pruned: unify needs a single consumer", group.name)
            else:
                chosen.append(group)
        return chosen

    def _trace(self, graph: Graph) -> Trace:
        assert self.calib is not None
        traced = run_float(graph, list(self.calib), trace=True)
        assert isinstance(traced, dict)
        return traced

    def _counts(
        self,
        graph: Graph,
        groups: list[Group],
        original: Reference | None,
        profiles: dict[str, dict[int, float]],
    ) -> Counts:
        """Units kept per group: from ``keep``/``layer_keep``, or allocated under the budget."""

        def count(group: Group, fraction: float) -> int:
            return max(1, math.floor(fraction * group.units + 1e-9))

        fixed = {
            g.name: count(g, self.layer_keep[p.name])
            for g in groups
            for p in g.producers
            if p.name in self.layer_keep
        }
        if self.budget is None:
            keep = 0.5 if self.keep is None else self.keep
            return {g.name: fixed.get(g.name, count(g, keep)) for g in groups}
        what, fraction = self.budget
        model = CostModel.of(graph, groups, self.do_refit)
        limit = fraction * getattr(graph_cost(graph), what)
        if self.allocation == "uniform":
            chosen = uniform_counts(model, fixed, what, limit)
        else:
            assert original is not None
            for group in groups:
                if group.name not in fixed:
                    profiles[group.name] = self._profile(graph, group, original)
            chosen = output_counts(model, profiles, fixed, what, limit)
            uniform = uniform_counts(model, fixed, what, limit)
            # The profiles add errors measured one group at a time; where uniform is a different choice,
            # the two are measured with every group pruned, and the better one kept.
            if chosen is not None and uniform is not None and uniform != chosen:
                errors = {"output": self._measured(graph, chosen, original)}
                errors["uniform"] = self._measured(graph, uniform, original)
                log.info("reap: output errors of the allocations: %s", errors)
                chosen = uniform if errors["uniform"] < errors["output"] else chosen
        if chosen is None:
            least = model.cost({g.name: fixed.get(g.name, 1) for g in groups}, what)
            raise ReapError(
                f"reap: {what}={fraction} cannot be met: with one unit per prunable group the graph keeps"
                f" {least / getattr(graph_cost(graph), what):.3f} of its {what}"
            )
        return chosen

    def _profile(self, graph: Graph, group: Group, original: Reference) -> dict[int, float]:
        """The relative error of the final outputs with ``group`` alone pruned to each count of its grid.

        REAP's greedy drops are nested, so one pass down its path gives every count's selection and refit.
        """
        counts = set(grid(group.units))
        profile = {group.units: 0.0}
        if self.method == "reap" and self.do_refit:
            problem = self._problem(graph, group, original)
            for remaining, weights in linalg.reap_drops(problem.fits, problem.grams, problem.blocks):
                if len(remaining) in counts and len(remaining) < group.units:
                    profile[len(remaining)] = self._error_with(
                        graph, group, sorted(remaining), weights, original
                    )
        else:
            for count in sorted(counts - {group.units}):
                trial = graph.clone()
                (copy,) = [g for g in find_groups(trial)[0] if g.name == group.name]
                self._prune(trial, copy, count, original)
                profile[count] = _output_error(trial, self.calib, original)
        log.info("reap: profiled %s at %d counts", group.name, len(profile))
        return profile

    def _error_with(
        self, graph: Graph, group: Group, kept: list[int], weights: list[np.ndarray], original: Reference
    ) -> float:
        """The final outputs' relative error with ``group`` cut to ``kept``, its consumers to ``weights``."""
        trial = graph.clone()
        (copy,) = [g for g in find_groups(trial)[0] if g.name == group.name]
        remove_units(copy, kept, weights)
        return _output_error(trial, self.calib, original)

    def _error_alone(self, graph: Graph, group: Group, count: int, original: Reference) -> float:
        """The final outputs' relative error of ``graph`` with only ``group`` pruned to ``count`` units."""
        trial = graph.clone()
        (copy,) = [g for g in find_groups(trial)[0] if g.name == group.name]
        self._prune(trial, copy, count, original)
        return _output_error(trial, self.calib, original)

    def _next(self, graph: Graph, pending: list[Group], counts: Counts, original: Reference | None) -> Group:
        """The group pruned next (``impact`` measures each candidate on the graph as pruned so far)."""
        if self.order == "forward":
            return pending[0]
        if self.order == "backward":
            return pending[-1]
        assert original is not None
        shrinking = [g for g in pending if counts[g.name] < g.units] or pending
        return min(shrinking, key=lambda g: self._error_alone(graph, g, counts[g.name], original))

    def _prune(self, graph: Graph, group: Group, keep: int, original: Reference | None) -> list[int]:
        """Keep ``keep`` units of ``group``, chosen by the method; refit every consumer if asked."""
        problem = self._problem(graph, group, original)
        if self.method == "l1":
            norms = sum(
                np.abs(p.params["weight"].data.reshape(group.units, -1)).sum(axis=1) for p in group.producers
            )
            kept = sorted(int(u) for u in np.argsort(-np.asarray(norms), kind="stable")[:keep])
            new = problem.weights
        elif self.method == "reap":
            kept, new = linalg.reap_group_select(problem.fits, problem.grams, problem.blocks, keep)
            new = new if self.do_refit else problem.weights
            if self.poem:
                assert original is not None
                kept, new = self._after_relu(group, problem, (keep, kept), new, original)
        else:
            assert problem.inputs is not None
            weight, columns = problem.weights[0], problem.blocks[0]
            signals = group.consumers[0].signals(problem.inputs[0], group.units)
            kept, folded = linalg.unify_select(weight, signals, columns, weight.shape[1] - 1, keep)
            new = [folded]
        if self.do_refit and self.method != "reap":
            new = [
                linalg.refit(fit, gram, np.concatenate([*(b[u] for u in kept), [fit.shape[1] - 1]]))
                for fit, gram, b in zip(problem.fits, problem.grams, problem.blocks, strict=True)
            ]
        remove_units(group, kept, new)
        log.info("reap: %s keeps %d of %d units", group.name, keep, group.units)
        return kept

    def _after_relu(
        self,
        group: Group,
        problem: _Problem,
        selected: tuple[int, list[int]],
        new: list[np.ndarray],
        original: Reference,
    ) -> tuple[list[int], list[np.ndarray]]:
        """POEM: select and refit again for the error after the ReLU that follows a consumer.

        Each consumer read by a ReLU alone becomes one least-squares problem per output over the rows that
        count after the ReLU (:func:`fpgac.passes.linalg.relu_masked_fits`), masked by the refit so far;
        twice, since the mask depends on the refit (masked, iterated least squares).
        """
        assert problem.inputs is not None
        rectified = [
            j
            for j, c in enumerate(group.consumers)
            if len(c.node.output.uses) == 1 and c.node.output.uses[0][0].op == "relu"
        ]
        keep, kept = selected
        if not rectified:
            return kept, new
        rows = {}
        for j in rectified:
            node = group.consumers[j].node
            x = linalg.layer_rows(node, problem.inputs[j])
            rows[j] = (
                np.concatenate([x, np.ones((len(x), 1))], axis=1),
                linalg.output_rows(node, original.target(node)),
            )
        for _ in range(2):
            fits, grams, blocks, owner = [], [], [], []
            for j in range(len(group.consumers)):
                if j in rows:
                    x, target = rows[j]
                    each_fit, each_gram = linalg.relu_masked_fits(x, target, x @ new[j].T, self.damp)
                else:
                    each_fit, each_gram = [problem.fits[j]], [problem.grams[j]]
                fits += each_fit
                grams += each_gram
                blocks += [problem.blocks[j]] * len(each_fit)
                owner += [j] * len(each_fit)
            kept, fitted = linalg.reap_group_select(fits, grams, blocks, keep)
            new = [
                np.concatenate([f for f, o in zip(fitted, owner, strict=True) if o == j])
                for j in range(len(new))
            ]
        return kept, new

    def _problem(self, graph: Graph, group: Group, original: Reference | None) -> _Problem:
        weights, blocks = [], []
        for consumer in group.consumers:
            node = consumer.node
            weight = node.params["weight"].data.astype(np.float64).reshape(node.params["weight"].shape[0], -1)
            bias = (
                node.params["bias"].data.astype(np.float64)
                if "bias" in node.params
                else np.zeros(len(weight))
            )
            weights.append(np.concatenate([weight, bias[:, None]], axis=1))
            blocks.append([consumer.columns(u) for u in range(group.units)])
        if self.method == "l1" and not self.do_refit:
            return _Problem(weights, blocks, [], [], None)
        assert original is not None
        traced = self._trace(graph)
        fits, grams, inputs = [], [], []
        for consumer, weight in zip(group.consumers, weights, strict=True):
            node = consumer.node
            inputs.append(traced[node.inputs[0].name])
            stats = linalg.moments(node, inputs[-1], original.target(node))
            grams.append(linalg.add_damping(stats.gram, self.damp))
            fits.append(_project(weight, stats, self.damp))
        return _Problem(weights, blocks, fits, grams, inputs)


@dataclass(frozen=True)
class _Problem:
    """A group's consumers as least-squares problems: weights (+ bias column), each unit's columns, and
    with data the projected targets ``fits``, damped Gram matrices and the consumers' current inputs."""

    weights: list[np.ndarray]
    blocks: list[list[np.ndarray]]
    fits: list[np.ndarray]
    grams: list[np.ndarray]
    inputs: list[np.ndarray] | None


def _output_error(graph: Graph, calib: tuple[np.ndarray, ...] | None, original: Reference) -> float:
    """The mean over graph outputs of the relative squared error against the original graph's (both in
    the graph's own order: the trace's, not the callers' layout that ``run_float`` gives its outputs in)."""
    assert calib is not None
    outputs = [output_to_logical(graph, i, y) for i, y in enumerate(run_float(graph, list(calib)))]
    errors = [
        float(
            np.sum((y - original.trace[v.name]) ** 2) / max(float(np.sum(original.trace[v.name] ** 2)), 1e-30)
        )
        for y, v in zip(outputs, graph.outputs, strict=True)
    ]
    return float(np.mean(errors))


def _macs(group: Group) -> int:
    """MACs of the layers a group's units scale (its producers, per-unit ops and consumers)."""
    nodes = {id(n): n for n in (*group.producers, *group.path, *(c.node for c in group.consumers))}
    return sum(node_cost(n).macs for n in nodes.values())


def _project(weight: np.ndarray, stats: linalg.Moments, damp: float) -> np.ndarray:
    """The full-rank least-squares fit of the original outputs on the current inputs (``W* = Y Xᵀ G⁻¹``).

    The consumer's own weights where there is no target or too few calibration rows to fit one.
    """
    fitted = stats.fit(damp)
    return weight if fitted is None else fitted
