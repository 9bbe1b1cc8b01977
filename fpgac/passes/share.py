"""Per-layer k-means weight sharing: every weight becomes one of K shared values, stored as an index.

K is ``clusters`` or ``2**bits`` (``layer_bits`` overrides per layer, as the paper's 8 bits for conv and 5
for fc). Centroids start evenly spaced between the smallest and largest weight (the initialisation Deep
Compression found best: large weights are rare but matter) and move by Lloyd iterations in one dimension.
In a pruned tensor the zeros are not clustered: index 0 is reserved for them, so ``bits=B`` gives
``2**B - 1`` centroids plus the zero.

With calibration data, ``refit=true`` then solves for the centroids by least squares on the layer's outputs
(a dense layer's output is linear in its centroids: ``y = sum_k c_k * (x @ M_k.T)`` with ``M_k`` the mask
of cluster k), a training-free stand-in for the paper's centroid fine-tuning; conv layers the same way over
their im2col patches (grouped convs are not refitted).

The result is an :class:`~fpgac.ir.encoding.Encoding` with ``codebook`` and ``indices``; ``data`` becomes
``codebook[indices]``. The codebook stays float here: the implied ``quantize`` pass rounds it into the
weight's fixed-point format and rewrites ``data`` from it, so the codebook ROM in hardware holds exactly
the quantized centroids and every weight decodes to one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from fpgac.errors import FpgacError
from fpgac.ir.encoding import Encoding
from fpgac.ir.graph import Graph, Node
from fpgac.passes.compression import compressible, layer_inputs, record, refittable

MAX_CLUSTERS = 1 << 16


class ShareError(FpgacError):
    """Options that do not describe a weight sharing."""


@dataclass(frozen=True)
class Share:
    """k-means weight sharing of dense/conv weights (see the module docstring for the options)."""

    name: ClassVar[str] = "share"
    bits: int | None = None
    clusters: int | None = None
    refit: bool = False
    iterations: int = 50
    refit_samples: int = 1000
    layer_bits: Mapping[str, int] = field(default_factory=dict)
    calib: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.bits is None) == (self.clusters is None):
            raise ShareError("share: give exactly one of bits=B or clusters=K")
        for what, bits in [("bits", self.bits), *self.layer_bits.items()]:
            if bits is not None and not 1 <= bits <= 16:
                raise ShareError(f"share: {what} {bits} is out of range (1..16)")
        if self.clusters is not None and not 1 <= self.clusters <= MAX_CLUSTERS:
            raise ShareError(f"share: clusters {self.clusters} is out of range (1..{MAX_CLUSTERS})")
        if self.refit and self.calib is None:
            raise ShareError("share: refit=true needs calibration data (--calib)")

    def run(self, graph: Graph) -> Graph:
        nodes = compressible(graph, self.name)
        unknown = set(self.layer_bits) - {n.name for n in nodes}
        if unknown:
            raise ShareError(f"share: layer_bits names layers without weights: {sorted(unknown)}")
        reference = graph.clone() if self.refit else None
        facts = {}
        for node in nodes:
            weight = node.params["weight"]
            enc = weight.encoding or Encoding()
            if enc.shared:
                raise ShareError(f"share failed on node {node.name!r}: its weights are already shared")
            sparse = enc.sparse
            total = self._clusters(node.name)
            if total - int(sparse) < 1:
                raise ShareError(
                    f"share failed on node {node.name!r}: a pruned layer needs 2 codebook entries at least "
                    "(the zero and one centroid)"
                )
            data = weight.data.astype(np.float64)
            kept = data != 0 if sparse else np.ones(data.shape, bool)
            centroids = kmeans_1d(data[kept], total - int(sparse), self.iterations)
            indices = np.zeros(data.shape, dtype=np.int64)
            indices[kept] = nearest(data[kept], centroids) + int(sparse)
            codebook = np.concatenate([[0.0], centroids]) if sparse else centroids
            refitted = False
            if self.refit and reference is not None and refittable(node):
                codebook = self._refit(graph, reference, node, indices, codebook, sparse)
                refitted = True
            dtype = np.uint8 if len(codebook) <= 256 else np.uint16
            weight.data = codebook[indices].astype(weight.data.dtype)
            weight.encoding = replace(enc, codebook=codebook, indices=indices.astype(dtype))
            facts[node.name] = {
                "clusters": len(codebook),
                "index_bits": weight.encoding.index_bits,
                "used": int(np.unique(indices).size),
                "refit": refitted,
            }
        options: dict[str, object] = {"bits": self.bits, "clusters": self.clusters, "refit": self.refit}
        if self.layer_bits:
            options["layer_bits"] = dict(self.layer_bits)
        record(graph, self.name, options, facts)
        return graph

    def _clusters(self, layer: str) -> int:
        if layer in self.layer_bits:
            return 1 << self.layer_bits[layer]
        return self.clusters if self.clusters is not None else 1 << int(self.bits or 0)

    def _refit(
        self,
        graph: Graph,
        reference: Graph,
        node: Node,
        indices: np.ndarray,
        codebook: np.ndarray,
        sparse: bool,
    ) -> np.ndarray:
        """Centroids minimising the squared error of the layer's outputs against the float layer's."""
        assert self.calib is not None
        calib = [a[: self.refit_samples] for a in self.calib]
        x_ref = layer_inputs(reference, calib, reference.node(node.name))
        x = layer_inputs(graph, calib, node)
        w_ref = reference.node(node.name).params["weight"].data.astype(np.float64)
        target = x_ref @ w_ref.reshape(w_ref.shape[0], -1).T
        flat = indices.reshape(indices.shape[0], -1)
        first = int(sparse)  # the zero of a sparse tensor stays zero
        ks = range(first, len(codebook))
        features = np.stack([(x @ (flat == k).T.astype(np.float64)).reshape(-1) for k in ks], axis=1)
        used = features.any(axis=0)
        solution = codebook.copy()
        if used.any():
            a = features[:, used]
            gram = a.T @ a
            reg = 1e-9 * (np.trace(gram) / len(gram) + 1e-12)
            fit = np.linalg.solve(gram + reg * np.eye(len(gram)), a.T @ target.reshape(-1))
            solution[np.asarray(ks)[used]] = fit
        return solution


def kmeans_1d(values: np.ndarray, k: int, iterations: int) -> np.ndarray:
    """Lloyd's k-means in one dimension from a linear initialisation.

    A pruned layer's weights are bimodal (the small ones are gone), so linear initialisation leaves
    centroids in the empty middle; an empty cluster is moved onto the value worst served by its centroid
    (the usual k-means repair), so all K codebook entries carry weights.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if k <= 0:
        return np.zeros(0)
    if not values.size:
        return np.zeros(k)
    distinct = np.unique(values)
    if distinct.size <= k:
        return np.concatenate([distinct, np.full(k - distinct.size, distinct[-1])])
    lo, hi = float(values.min()), float(values.max())
    centroids = np.linspace(lo, hi, k) if k > 1 else np.array([values.mean()])
    for _ in range(iterations):
        labels = nearest(values, centroids)
        counts = np.bincount(labels, minlength=k)
        sums = np.bincount(labels, weights=values, minlength=k)
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            error = np.abs(values - moved[labels])
            worst = np.argsort(-error, kind="stable")[: empty.size]
            moved[empty] = values[worst]
        if np.allclose(moved, centroids, rtol=0, atol=1e-12):
            break
        centroids = moved
    return centroids


def nearest(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of each value (centroids need not be sorted)."""
    order = np.argsort(centroids, kind="stable")
    ordered = centroids[order]
    mids = (ordered[1:] + ordered[:-1]) / 2
    return order[np.searchsorted(mids, values)]
