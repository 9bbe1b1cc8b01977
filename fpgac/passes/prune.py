"""Unstructured magnitude pruning: the smallest weights of dense and conv layers become zeros.

Three ways to pick the threshold: ``sparsity=S`` with one global magnitude threshold across layers
(``scope=global``) or the same fraction in every layer (``scope=layer``); or ``threshold=q``, which zeroes
weights below ``q`` times each layer's weight standard deviation, as Deep Compression does. ``layer_sparsity``
(Python API) overrides the fraction per layer, like the paper's hand-tuned per-layer rates. With calibration
data, ``criterion=activation`` ranks dense weights by ``|w| * ||x||`` (the input's norm over the batch,
Wanda) instead of ``|w|``. On LeNet-300-100 one global magnitude threshold served best (README, "Deep
compression").

With calibration data, ``reconstruct=true`` refits the surviving weights (and the bias) of every output row
of a dense layer by least squares, so the pruned layer reproduces the float layer's outputs on the inputs it
actually sees (those of the already pruned layers before it) -- a training-free stand-in for retraining, the
unstructured cousin of REAP's refit; a conv layer's rows are its output channels and its inputs the
im2col patches (grouped convs are pruned but not refitted). The fit is anchored at the trained weights
(:func:`~fpgac.passes.linalg.anchored_fit`): what the calibration batch cannot determine stays as trained.

A pruned tensor is the same tensor with zeros, plus an :class:`~fpgac.ir.encoding.Encoding` with
``gap_bits``: it is stored sparse (relative indices with fillers), and the parallel-style HLS emits no
multiplier for its zeros.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from fpgac.errors import FpgacError
from fpgac.ir.encoding import Encoding
from fpgac.ir.graph import Graph, Node
from fpgac.passes.compression import compressible, layer_inputs, record, refittable
from fpgac.passes.linalg import anchored_fit

log = logging.getLogger(__name__)


class PruneError(FpgacError):
    """Options that do not describe a pruning."""


@dataclass(frozen=True)
class Prune:
    """Magnitude pruning of dense/conv weights (see the module docstring for the options)."""

    name: ClassVar[str] = "prune"
    sparsity: float | None = None
    scope: str = "global"
    threshold: float | None = None
    reconstruct: bool = False
    gap_bits: int = 5
    ridge: float = 1e-3
    criterion: str = "magnitude"
    layer_sparsity: Mapping[str, float] = field(default_factory=dict)
    calib: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.sparsity is None) == (self.threshold is None) and not self.layer_sparsity:
            raise PruneError("prune: give exactly one of sparsity=S or threshold=q")
        if self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise PruneError(f"prune: sparsity {self.sparsity} is out of range [0, 1)")
        for layer, fraction in self.layer_sparsity.items():
            if not 0.0 <= fraction <= 1.0:
                raise PruneError(f"prune: sparsity {fraction} of layer {layer!r} is out of range [0, 1]")
        if self.threshold is not None and self.threshold < 0:
            raise PruneError(f"prune: threshold {self.threshold} must be >= 0")
        if self.scope not in ("global", "layer"):
            raise PruneError(f"prune: scope must be 'global' or 'layer', not {self.scope!r}")
        if not 1 <= self.gap_bits <= 16:
            raise PruneError(f"prune: gap_bits {self.gap_bits} is out of range (1..16)")
        if self.criterion not in ("magnitude", "activation"):
            raise PruneError(f"prune: criterion must be 'magnitude' or 'activation', not {self.criterion!r}")
        if (self.reconstruct or self.criterion == "activation") and self.calib is None:
            raise PruneError("prune: reconstruct=true and criterion=activation need calibration data")

    def run(self, graph: Graph) -> Graph:
        nodes = compressible(graph, self.name)
        unknown = set(self.layer_sparsity) - {n.name for n in nodes}
        if unknown:
            raise PruneError(f"prune: layer_sparsity names layers without weights: {sorted(unknown)}")
        scores = {n.name: self._scores(graph, n) for n in nodes}
        limits = self._thresholds(nodes, scores)
        reference = graph.clone() if self.reconstruct else None
        facts = {}
        for node in nodes:
            weight = node.params["weight"]
            if weight.encoding is not None and weight.encoding.shared:
                raise PruneError(f"prune failed on node {node.name!r}: its weights are shared; prune first")
            keep = scores[node.name] > limits[node.name]
            if self.reconstruct and refittable(node) and reference is not None:
                keep = self._prune_and_refit(graph, reference, node, int(keep.sum()))
            else:
                weight.data = np.where(keep, weight.data, 0).astype(weight.data.dtype)
            enc = weight.encoding or Encoding()
            weight.encoding = replace(enc, gap_bits=self.gap_bits)
            facts[node.name] = {
                "sparsity": round(1.0 - float(keep.mean()), 6),
                "kept": int(keep.sum()),
                "threshold": float(limits[node.name]),
                "refit": bool(self.reconstruct and refittable(node)),
            }
        options: dict[str, object] = {
            "sparsity": self.sparsity,
            "scope": self.scope,
            "threshold": self.threshold,
            "reconstruct": self.reconstruct,
            "gap_bits": self.gap_bits,
            "criterion": self.criterion,
        }
        if self.layer_sparsity:
            options["layer_sparsity"] = dict(self.layer_sparsity)
        record(graph, self.name, options, facts)
        return graph

    def _prune_and_refit(self, graph: Graph, reference: Graph, node: Node, count: int) -> np.ndarray:
        """Keep the ``count`` best-scored weights of a dense layer, then refit them.

        (Pruning in several steps with a refit between them, so later steps rank refitted weights, was
        measured on LeNet-300-100 and did not help: it is not offered.)"""
        weight = node.params["weight"]
        score = self._scores(graph, node).reshape(-1)
        keep = np.zeros(weight.data.size, dtype=bool)
        if count > 0:
            keep[np.argsort(-score, kind="stable")[:count]] = True
        keep = keep.reshape(weight.shape)
        self._refit(graph, reference, node, keep)
        return keep

    def _scores(self, graph: Graph, node: Node) -> np.ndarray:
        """What pruning ranks: ``|w|``, or with ``criterion=activation`` ``|w| * ||x_in||`` over the
        calibration batch (Wanda, Sun et al. 2023: a weight on an input that is always zero is useless
        however large). Grouped convs and the threshold rule use magnitudes."""
        w = np.abs(node.params["weight"].data.astype(np.float64))
        if self.criterion == "activation" and refittable(node) and self.threshold is None:
            assert self.calib is not None
            x = layer_inputs(graph, self.calib, node)
            norms = np.sqrt((x**2).sum(axis=0))
            return (w.reshape(w.shape[0], -1) * norms[None, :]).reshape(w.shape)
        return w

    def _thresholds(self, nodes: list[Node], scores: dict[str, np.ndarray]) -> dict[str, float]:
        """Score at or below which each layer's weights are zeroed."""
        mags = {name: s.reshape(-1) for name, s in scores.items()}
        limits: dict[str, float] = {}
        if self.threshold is not None:
            for n in nodes:
                limits[n.name] = self.threshold * float(n.params["weight"].data.std())
        elif self.sparsity is not None and self.scope == "global":
            everything = np.concatenate(list(mags.values())) if mags else np.zeros(0)
            limit = _quantile(everything, self.sparsity)
            limits = dict.fromkeys(mags, limit)
        elif self.sparsity is not None:
            limits = {name: _quantile(m, self.sparsity) for name, m in mags.items()}
        for name, fraction in self.layer_sparsity.items():
            limits[name] = _quantile(mags[name], fraction)
        for name in mags:
            limits.setdefault(name, -1.0)  # not named anywhere: keep everything
        return limits

    def _refit(self, graph: Graph, reference: Graph, node: Node, keep: np.ndarray) -> None:
        """Least-squares refit of each row's kept weights (and the bias) to the float layer's outputs,
        anchored at their trained values (:func:`~fpgac.passes.linalg.anchored_fit`)."""
        assert self.calib is not None
        x_ref = layer_inputs(reference, self.calib, reference.node(node.name))
        x = layer_inputs(graph, self.calib, node)
        weight = node.params["weight"]
        w = weight.data.astype(np.float64).reshape(weight.shape[0], -1)
        keep = keep.reshape(w.shape)
        target = x_ref @ w.T  # the float layer's outputs without bias, on the float network's inputs
        has_bias = "bias" in node.params
        bias = node.params["bias"].data.astype(np.float64) if has_bias else np.zeros(w.shape[0])
        new_w = np.zeros_like(w)
        new_b = bias.copy()
        ones = np.ones((x.shape[0], 1))
        for o in range(w.shape[0]):
            cols = np.flatnonzero(keep[o])
            a = np.hstack([x[:, cols], ones]) if has_bias else x[:, cols]
            t = target[:, o] + (bias[o] if has_bias else 0.0)
            prior = np.append(w[o, cols], bias[o]) if has_bias else w[o, cols]
            sol = anchored_fit(a, t, prior, self.ridge)
            new_w[o, cols] = sol[: len(cols)]
            if has_bias:
                new_b[o] = sol[-1]
        new_w[~keep] = 0.0
        weight.data = new_w.reshape(weight.shape).astype(weight.data.dtype)
        if has_bias:
            node.params["bias"].data = new_b.astype(node.params["bias"].data.dtype)


def _quantile(values: np.ndarray, fraction: float) -> float:
    """The magnitude below which ``fraction`` of ``values`` lie (-1: prune nothing)."""
    if fraction <= 0 or not values.size:
        return -1.0
    k = min(round(fraction * values.size), values.size)
    if k == 0:
        return -1.0
    return float(np.partition(values, k - 1)[k - 1])
