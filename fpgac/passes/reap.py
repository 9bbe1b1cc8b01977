"""Structured pruning of neurons and channels by REAP, Neuro-Unification or L1 norm, without retraining.

A layer's units (dense neurons, conv channels) are removed where they feed exactly one dense/conv
consumer through per-unit ops (see :mod:`fpgac.passes.units`; the channels of residual sums and concats
are kept). What is measured is the consumer's pre-activation on the calibration batch, because that is
all a unit's removal can change directly.

* ``method=reap`` (default): greedily drop the unit whose removal leaves the least error in those
  pre-activations after the consumer is refitted by least squares, in closed form (see
  :func:`fpgac.passes.linalg.reap_select`).
* ``method=unify``: merge each dropped unit into the surviving unit that best emulates it, folding its
  outgoing weights (Neuro-Unification).
* ``method=l1``: drop the units with the smallest L1 norm of incoming weights (the usual baseline).

``refit`` (default true, false for ``l1``) refits the consumer by least squares on the kept units, so
the value of a method's *selection* can be measured apart from the refit.

Layers are pruned one after the other, front to back, each on the activations of the graph as already
pruned, against the *original* graph's consumer pre-activations: the refit then also corrects the drift
that earlier prunes caused, which one-shot pruning on the original activations cannot. (The closed form
still applies: the refit target ``W_0 X_0`` is first projected onto the current inputs, ``W* = Y Xᵀ G⁻¹``,
and ``‖Y - W'X‖² = ‖Y - W*X‖² + tr((W* - W') G (W* - W')ᵀ)``.) The consumer's bias is the weight of a
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
from fpgac.ir.graph import Graph
from fpgac.passes import linalg
from fpgac.passes.units import Site, find_site, remove_units

log = logging.getLogger(__name__)

METHODS = ("reap", "unify", "l1")


class ReapError(FpgacError):
    """The reap pass cannot run as asked."""


@dataclass(frozen=True)
class Reap:
    """Remove units of every prunable layer, keeping ``keep`` of them (``layer_keep`` per layer).

    Options: ``keep`` (fraction of units kept, rounded down, at least one), ``method``
    (``reap``/``unify``/``l1``), ``refit`` (least-squares refit of the consumer; default true except for
    ``l1``), ``damp`` (relative ridge λ), ``layer_keep`` (per-layer fractions from the build config).
    ``calib`` is the calibration batch; only ``l1`` without refit runs without one.
    """

    name: ClassVar[str] = "reap"
    keep: float = 0.5
    method: str = "reap"
    refit: bool | None = None
    damp: float = 1e-3
    layer_keep: Mapping[str, float] = field(default_factory=dict)
    calib: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ReapError(f"reap: unknown method {self.method!r}; expected one of {list(METHODS)}")
        for what, fraction in [("keep", self.keep)] + [
            (f"keep of {k!r}", v) for k, v in self.layer_keep.items()
        ]:
            if not 0.0 < fraction <= 1.0:
                raise ReapError(f"reap: {what} must be in (0, 1], not {fraction!r}")
        if not self.damp > 0:
            raise ReapError(f"reap: damp must be positive, not {self.damp!r}")
        if self.calib is None and (self.method != "l1" or self.do_refit):
            raise ReapError(
                f"reap: method={self.method}{' with refit' if self.do_refit else ''} needs calibration data"
                " (--calib); only method=l1 with refit=false runs without"
            )

    @property
    def do_refit(self) -> bool:
        return self.method != "l1" if self.refit is None else self.refit

    def run(self, graph: Graph) -> Graph:
        sites = []
        for node in graph.nodes:
            site = find_site(graph, node)
            if isinstance(site, Site):
                sites.append(site)
            elif node.op in ("dense", "conv"):
                log.info("reap: layer %s is not pruned: %s", node.name, site)
        unknown = set(self.layer_keep) - {site.producer.name for site in sites}
        if unknown:
            log.warning("reap: keep is set for %s, which are not prunable layers", sorted(unknown))
        targets = self._targets(graph, sites)
        macs_before = graph_cost(graph).macs
        layers = {}
        for site in sites:
            fraction = self.layer_keep.get(site.producer.name, self.keep)
            keep = max(1, math.floor(fraction * site.units + 1e-9))
            before = node_cost(site.producer).macs + node_cost(site.consumer).macs
            units = site.units
            if keep < units:
                self._prune(graph, site, keep, targets.get(site.consumer.name))
            layers[site.producer.name] = {
                "units": units,
                "kept": keep,
                "consumer": site.consumer.name,
                "macs_before": before,
                "macs_after": node_cost(site.producer).macs + node_cost(site.consumer).macs,
            }
        graph.metadata.setdefault("compression", []).append(
            {
                "pass": self.name,
                "options": {"keep": self.keep, "method": self.method, "refit": self.do_refit},
                "macs_before": macs_before,
                "macs_after": graph_cost(graph).macs,
                "layers": layers,
            }
        )
        return graph

    def _targets(self, graph: Graph, sites: list[Site]) -> dict[str, np.ndarray]:
        """The original consumers' outputs on the calibration batch (the refit targets)."""
        if self.calib is None or not self.do_refit:
            return {}
        traced = run_float(graph, list(self.calib), trace=True)
        assert isinstance(traced, dict)
        return {s.consumer.name: traced[s.consumer.output.name] for s in sites}

    def _prune(self, graph: Graph, site: Site, keep: int, target: np.ndarray | None) -> None:
        consumer = site.consumer
        weight = (
            consumer.params["weight"].data.astype(np.float64).reshape(consumer.params["weight"].shape[0], -1)
        )
        bias = (
            consumer.params["bias"].data.astype(np.float64)
            if "bias" in consumer.params
            else np.zeros(len(weight))
        )
        original = np.concatenate([weight, bias[:, None]], axis=1)
        blocks = [site.columns(u) for u in range(site.units)]
        if self.method == "l1" and not self.do_refit:
            x, stats, gram = None, None, None
        else:
            assert self.calib is not None
            traced = run_float(graph, list(self.calib), trace=True)
            assert isinstance(traced, dict)
            x = traced[consumer.inputs[0].name]
            stats = linalg.moments(consumer, x, target)
            gram = linalg.add_damping(stats.gram, self.damp)
        if self.method == "l1":
            norms = np.abs(site.producer.params["weight"].data.reshape(site.units, -1)).sum(axis=1)
            kept, new = sorted(int(u) for u in np.argsort(-norms, kind="stable")[:keep]), original
        elif self.method == "reap":
            assert stats is not None and gram is not None
            kept, new = linalg.reap_select(_project(original, stats, self.damp), gram, blocks, keep)
            new = new if self.do_refit else original
        else:
            assert x is not None
            kept, new = linalg.unify_select(original, site.signals(x), blocks, original.shape[1] - 1, keep)
        if self.do_refit and self.method != "reap":
            assert stats is not None and gram is not None
            columns = np.concatenate([*(blocks[u] for u in kept), [original.shape[1] - 1]])
            new = linalg.refit(_project(original, stats, self.damp), gram, columns)
        remove_units(site, kept, new)
        log.info("reap: %s keeps %d of %d units", site.producer.name, keep, site.units)


def _project(weight: np.ndarray, stats: linalg.Moments, damp: float) -> np.ndarray:
    """The full-rank least-squares fit of the original outputs on the current inputs (``W* = Y Xᵀ G⁻¹``).

    The consumer's own weights where there is no target or too few calibration rows to fit one.
    """
    fitted = stats.fit(damp)
    return weight if fitted is None else fitted
