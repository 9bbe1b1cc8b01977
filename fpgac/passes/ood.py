"""The on-chip unknown-data (out-of-distribution) monitor: a side branch scoring how much of an
intermediate layer's input lies where the training data put it.

The method (Uematsu et al., IBIS 2021; ECML-PKDD 2024, arXiv 2410.21656): a layer whose weights are
low-rank passes on only the part of its input inside its row space, and inputs like the training data put
most of their energy there while unknown inputs do not. With no retraining and a few words of memory:

* ``score=projection``: for the monitored layer's weight ``W`` (dense ``m x n``; conv ``C_out x C_in*kh*kw``)
  with SVD ``W = U S V^T``, keep the top-k right singular vectors ``V_k`` (default ``k = ceil(srank(W))``,
  the stable rank ``||W||_F^2 / ||W||_2^2``); score ``s = sum_p ||V_k^T h_p||^2 / sum_p ||h_p||^2`` over the
  layer's input patches ``h_p`` (dense: the input rows; conv: its zero-padded windows with its own stride and
  padding). ``layer=auto`` takes the hidden layer (never the first, nor the output layer) of lowest stable
  rank, as the paper does, and warns when that rank is above the number of classes (or a quarter of
  ``min(m, n)``, if smaller): a classifier's features need about one direction per class, so a weight
  keeping more still holds what the task did not shape (its random initialisation, which weight decay
  removes): it is not low-rank.
* ``score=residual`` (weights that are not low-rank; dense layers): the calibration batch's features at the
  layer's input, their mean ``mu`` and top-k principal directions ``E_k`` (those holding 95% of the
  variance); the same ratio on ``h - mu`` (the complement of ViM's residual). ``layer=auto`` takes the
  hidden dense layer whose score best separates the calibration batch from synthetic outliers made from it
  (uniform noise over the input range, pixel-shuffled calibration inputs).

Both bases leave out the *dataset bias*, the direction of the calibration features' mean ``mu`` (their
mean patch, for conv): ReLU features share a large common component, the weights' row space holds most of
it, and unknown inputs, whose own information the low-rank weights drop, keep mostly that component, so a
score counting it rates them as known (the paper's "excessive attention to dataset bias"). So ``V_k`` are the
top right singular vectors of ``W (I - m m^T)``, ``m = mu / ||mu||``, and ``E_k`` those of the centred
features times ``(I - m m^T)`` (for the residual, the unknown inputs' deviation along ``mu``, a change of
the common component's size, then counts as unexplained). The bases stay fixed matrices: the hardware and
its exactness are unchanged.

Where the monitored layer is a weight-SVD low-rank split (``lowrank`` with ``method=svd``, no levels), the
projection reuses the split's first factor ``A`` (r x n), whose output ``z = A h`` the classifier computes
anyway: the basis is then the top-k directions of ``W = B A`` inside ``A``'s row space and without the bias
direction, and num is ``||Q z||^2`` with ``Q A = V_k`` (k x r): k r words and MACs per patch, not k n
(:mod:`fpgac.passes.ood_layers`).

The threshold tau is the calibration batch's score quantile at ``tpr`` (rounded down into
:data:`~fpgac.passes.ood_formats.TAU_FORMAT`). In hardware, ``num`` and ``den`` are exact integers and the
flag is ``num < tau * den``, no divider: three graph outputs ``ood_flag`` (1 = unknown input), ``ood_num``
and ``ood_den`` are appended; the classifier's nodes are not touched, so its outputs stay bit-identical.

The pass runs on the quantized graph (the build puts the implied ``quantize`` before it), so tau is set on
the hardware's own scores, computed by the bit-accurate simulator; on a float graph the later quantize pass
formats the monitor by the same rules (:mod:`fpgac.passes.ood_formats`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from fpgac.errors import FpgacError
from fpgac.interp.float_kernels import patches
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import fixed
from fpgac.ir.graph import Graph, Node, Param, Value
from fpgac.ir.types import Fixed
from fpgac.passes.ood_formats import TAU_FORMAT, energy_format, flag_format
from fpgac.passes.ood_layers import Layer, monitorable_layers, pointwise, reused_basis
from fpgac.passes.quantize import _quantized, constant_format

log = logging.getLogger(__name__)

SCORES = ("projection", "residual")
OUTPUTS = ("ood_flag", "ood_num", "ood_den")
RESIDUAL_VARIANCE = 0.95  # the share of the features' variance the principal directions keep
SEPARATION_WARNING = 0.6  # below this AUROC on synthetic outliers, the projection score is not worth having


class OodError(FpgacError):
    """The ood pass cannot run as asked."""


def stable_rank(weight: np.ndarray) -> float:
    """``||W||_F^2 / ||W||_2^2`` of a weight as a matrix (rows: output units)."""
    w = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
    top = float(np.linalg.norm(w, 2)) ** 2
    return float(np.sum(w * w)) / top if top > 0 else 0.0


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Probability that an in-distribution score is higher than an outlier's (ties count half)."""
    scores = np.concatenate([inside, outside]).astype(np.float64)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    ranks[order] = np.arange(1, scores.size + 1)
    _, tie, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = np.bincount(tie, ranks)[tie] / counts[tie]
    n_in, n_out = inside.size, outside.size
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


def layer_patches(h: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """The patches a layer reads from its batch of inputs ``h``, as rows: (N * patches, taps)."""
    p = patches(h.astype(np.float64), attrs, 0.0)
    return p.reshape(-1, p.shape[-1])


def without_bias(rows: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``rows (I - m m^T)`` with ``m = mean / ||mean||``: the rows with the dataset-bias direction removed."""
    norm = float(np.linalg.norm(mean))
    if norm == 0:
        return rows
    m = mean / norm
    return rows - np.outer(rows @ m, m)


def principal_directions(features: np.ndarray, mean: np.ndarray, k: int | None) -> np.ndarray:
    """The top directions (rows) of ``features`` (N, n) less their ``mean``, without the mean's direction:
    ``k``, or as many as hold 95% of that variance."""
    _, s, vt = np.linalg.svd(without_bias(features - mean, mean), full_matrices=False)
    if k is None:
        share = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-300)
        k = int(np.searchsorted(share, RESIDUAL_VARIANCE) + 1)
    return vt[: min(k, vt.shape[0])]


def ratio_scores(
    h: np.ndarray, basis: np.ndarray, attrs: dict[str, Any], mean: np.ndarray | None
) -> np.ndarray:
    """Float scores ``sum_p ||basis h_p||^2 / sum_p ||h_p||^2`` of a batch of layer inputs ``h`` (less
    ``mean``, when given)."""
    p = patches(h.astype(np.float64) - (0.0 if mean is None else mean), attrs, 0.0)
    num = np.square(p @ basis.T).sum(axis=(1, 2))
    den = np.square(p).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.inf)


def synthetic_outliers(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise over the calibration inputs' range, and the calibration inputs with their elements
    shuffled (each sample its own permutation): unknown data made from the known without any download."""
    flat = x.reshape(x.shape[0], -1)
    noise = rng.uniform(float(flat.min()), float(flat.max()), size=flat.shape)
    shuffled = np.array([row[rng.permutation(row.size)] for row in flat])
    return np.concatenate([noise, shuffled]).reshape(-1, *x.shape[1:]).astype(np.float32)


@dataclass(frozen=True)
class Ood:
    """Append an OOD monitor: ``ood(layer=auto|NAME, k=auto|K, score=projection|residual, tpr=0.95)``.

    ``calib`` is the calibration batch (required: the threshold and, for ``residual``, the PCA come from
    it). See the module docstring for the scores, the layer choice and the hardware.
    """

    name: ClassVar[str] = "ood"
    layer: str = "auto"
    k: int | str = "auto"
    score: str = "projection"
    tpr: float = 0.95
    calib: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise OodError(f"ood: unknown score {self.score!r}; expected one of {list(SCORES)}")
        if not 0.0 < self.tpr < 1.0:
            raise OodError(f"ood: tpr must be in (0, 1), not {self.tpr!r}")
        if self.k != "auto" and (not isinstance(self.k, int) or self.k < 1):
            raise OodError(f"ood: k must be auto or a positive integer, not {self.k!r}")

    def run(self, graph: Graph) -> Graph:
        if self.calib is None:
            raise OodError("ood: needs calibration data (--calib): the threshold is set on it")
        if "ood" in graph.metadata:
            raise OodError("ood: the graph already has a monitor")
        if len(graph.inputs) != 1:
            raise OodError("ood: monitors single-input models only")
        layers = monitorable_layers(graph)
        # The first layer is never monitored; auto skips the output layer too (unless it is the only other
        # one): its stable rank is bounded by the number of classes, so it would win the comparison by
        # shape, not by what it learned, and its input is also the penultimate features MSP/energy read.
        hidden = layers[1:]
        auto = layers[1:-1] or hidden
        if not hidden:
            raise OodError("ood: no hidden dense or conv layer to monitor (the first layer never is)")
        sranks = {n.name: stable_rank(n.weight) for n in layers}
        x = np.asarray(self.calib[0], dtype=np.float32)
        facts: dict[str, Any] = {"score": self.score, "srank": {k: round(v, 3) for k, v in sranks.items()}}
        # The calibration batch, then synthetic outliers made from it: the features every choice reads.
        outliers = synthetic_outliers(x, np.random.default_rng(0))
        traced = run_float(graph, np.concatenate([x, outliers]), trace=True)
        if self.score == "projection":
            layer, basis, mean, reuse = self._projection(graph, hidden, auto, sranks, traced, len(x), facts)
        else:
            layer, basis, mean = self._residual(hidden, auto, traced, len(x), facts)
            reuse = None
        num, den, flag = _insert(graph, layer, basis, mean, reuse)
        facts |= _threshold(graph, num, den, flag, x, self.tpr)
        facts |= _memory(graph, layer, basis, mean, num.producer)
        graph.metadata["ood"] = facts
        k, tau = basis.shape[0], facts["tau"]
        log.info("ood: monitoring the input of %r (%s, k=%d), tau %.5f", layer.name, self.score, k, tau)
        return graph

    def _named(self, candidates: list[Layer]) -> Layer:
        node = next((n for n in candidates if n.name == self.layer), None)
        if node is None:
            known = ", ".join(n.name for n in candidates)
            raise OodError(
                f"ood: layer {self.layer!r} is not a hidden dense/conv layer here; candidates: {known}"
            )
        return node

    def _projection(
        self,
        graph: Graph,
        hidden: list[Layer],
        auto: list[Layer],
        sranks: dict[str, float],
        traced: dict[str, np.ndarray],
        n_calib: int,
        facts: dict[str, Any],
    ) -> tuple[Layer, np.ndarray, None, np.ndarray | None]:
        """The layer, its basis on the layer's input and, for a split layer, the same basis on its first
        factor's output (``Q`` with ``Q A = V``), which the hardware computes instead."""
        if self.layer == "auto":
            node = min(auto, key=lambda n: sranks[n.name])
            facts["chosen_by"] = "lowest stable rank among the hidden layers"
        else:
            node = self._named(hidden)
            facts["chosen_by"] = "named"
        w = node.weight
        srank = sranks[node.name]
        k = math.ceil(srank) if self.k == "auto" else int(self.k)
        h = traced[node.source.name]
        mean = layer_patches(h[:n_calib], node.window).mean(axis=0)
        reuse = None
        if node.factor is not None:
            basis, reuse = reused_basis(node, mean, k)
        else:
            _, _, vt = np.linalg.svd(without_bias(w, mean), full_matrices=False)
            basis = vt[: min(k, vt.shape[0])]
        classes = graph.outputs[0].type.size
        bound = min(float(classes), min(w.shape) / 4)
        if srank > bound:
            facts["warning"] = (
                f"layer {node.name!r} has stable rank {srank:.1f} > min(classes {classes}, min(m, n)/4 "
                f"= {min(w.shape) / 4:g}): weights are not low-rank: the projection score is unreliable; "
                "try score=residual"
            )
            log.warning("ood: %s", facts["warning"])
        # The premise can fail with low-rank weights too: where unknown data's features lie as much or *more*
        # in the row space than the training data's (a CNN's smooth feature maps), the score is useless or
        # inverted. Synthetic outliers show it without any unknown data.
        scores = ratio_scores(h, basis, node.window, None)
        separation = round(auroc(scores[:n_calib], scores[n_calib:]), 4)
        facts["separation"] = {node.name: separation}
        if separation < SEPARATION_WARNING:
            inverted = (
                f"the projection score at {node.name!r} hardly separates synthetic outliers from the "
                f"calibration data (AUROC {separation:.3f}; 0.5 is chance): try score=residual"
            )
            facts["warning"] = f"{facts['warning']}; {inverted}" if "warning" in facts else inverted
            log.warning("ood: %s", inverted)
        return node, basis, None, reuse

    def _residual(
        self,
        hidden: list[Layer],
        auto: list[Layer],
        traced: dict[str, np.ndarray],
        n_calib: int,
        facts: dict[str, Any],
    ) -> tuple[Layer, np.ndarray, np.ndarray]:
        dense = [n for n in auto if n.op == "dense"]
        if self.layer != "auto":
            node = self._named(hidden)
            if node.op != "dense":
                raise OodError(f"ood: score=residual monitors dense layers; {node.name!r} is a {node.op}")
            dense = [node]
        if not dense:
            raise OodError("ood: score=residual monitors dense layers; this model has no hidden one")
        k = None if self.k == "auto" else int(self.k)
        separation, bases, means = {}, {}, {}
        for node in dense:
            h = traced[node.source.name].astype(np.float64)
            means[node.name] = h[:n_calib].mean(axis=0)
            bases[node.name] = principal_directions(h[:n_calib], means[node.name], k)
            scores = ratio_scores(h, bases[node.name], node.window, means[node.name])
            separation[node.name] = round(auroc(scores[:n_calib], scores[n_calib:]), 4)
        best = max(dense, key=lambda n: separation[n.name])
        facts["separation"] = separation
        facts["chosen_by"] = (
            "best separation of the calibration batch from synthetic outliers"
            if self.layer == "auto"
            else "named"
        )
        return best, bases[best.name], means[best.name]


def _fixed_format(value: Value) -> Fixed | None:
    fmt = value.type.format
    return fmt if isinstance(fmt, Fixed) else None


def _insert(
    graph: Graph, layer: Layer, basis: np.ndarray, mean: np.ndarray | None, reuse: np.ndarray | None
) -> tuple[Value, Value, Value]:
    """The monitor's nodes after every other node, formatted here when the graph is already quantized.
    With ``reuse`` (a split layer's ``Q``), num projects the first factor's output, position by position."""
    h = layer.source
    fx = _fixed_format(h)
    if mean is not None:
        shift = Param(-np.asarray(mean, dtype=np.float64))
        scale = Param(np.ones((), dtype=np.float64))
        center = graph.add("affine", [h], name="ood_center", params={"scale": scale, "shift": shift})
        if fx is not None:
            fs = Fixed(2, 2, True)
            fm = constant_format(shift.data, fx.width)
            center.params["scale"], center.params["shift"] = Param(scale.data, fs), _quantized(shift.data, fm)
            exact = fixed.add_format(fixed.mul_format(fx, fs), fm)  # x * 1 - mu, nothing rounded
            center.output.type = center.output.type.with_format(exact)
        h = center.output
    window, projected = layer.window, h
    if reuse is not None:
        assert layer.factor is not None
        basis, window, projected = reuse, pointwise(layer.window), layer.factor.output
    basis_param = Param(np.asarray(basis, dtype=np.float64))
    if fx is not None:  # the basis at the precision the quantize pass gave the weights
        bits = int(graph.metadata.get("quantize", {}).get("precision", fx.width))
        basis_param = _quantized(basis_param.data, constant_format(basis_param.data, bits))
    num = graph.add("patch_energy", [projected], name="ood_num", attrs=window, params={"basis": basis_param},
                    output_names=["ood_num"])  # fmt: skip
    den = graph.add("patch_energy", [h], name="ood_den", attrs=layer.window, output_names=["ood_den"])
    flag = graph.add("ood_flag", [num.output, den.output], name="ood_flag", attrs={"tau": 0.0},
                     output_names=["ood_flag"])  # fmt: skip
    if _fixed_format(h) is not None:
        for energy in (num, den):
            fmt = _fixed_format(energy.inputs[0])
            assert fmt is not None
            energy.output.type = energy.output.type.with_format(energy_format(energy, fmt))
        flag.output.type = flag.output.type.with_format(flag_format(flag))
    graph.set_outputs([*graph.outputs, flag.output, num.output, den.output])
    return num.output, den.output, flag.output


def _exact_scores(graph: Graph, x: np.ndarray, num: Value, den: Value) -> list[Fraction | None]:
    """Each calibration sample's score ``num / den`` as the hardware computes it (None where den = 0)."""
    outputs = list(graph.outputs)
    if _fixed_format(num) is None:
        values = run_float(graph, x)
        n, d = values[outputs.index(num)][:, 0], values[outputs.index(den)][:, 0]
        return [Fraction(float(a)) / Fraction(float(b)) if b > 0 else None for a, b in zip(n, d, strict=True)]
    result = run_fixed(graph, x)
    fn, fd = _fixed_format(num), _fixed_format(den)
    assert fn is not None and fd is not None
    n, d = result.mantissas[outputs.index(num)][:, 0], result.mantissas[outputs.index(den)][:, 0]
    scale = Fraction(2) ** (fd.frac_bits - fn.frac_bits)
    return [Fraction(int(a), int(b)) * scale if b > 0 else None for a, b in zip(n, d, strict=True)]


def _threshold(
    graph: Graph, num: Value, den: Value, flag: Value, x: np.ndarray, tpr: float
) -> dict[str, Any]:
    """Set tau at the calibration batch's ``tpr`` quantile of the exact scores, rounded down onto its grid
    (a sample is flagged when its score is strictly below tau, so at most ``1 - tpr`` of the batch is)."""
    scores = _exact_scores(graph, x, num, den)
    known = sorted(s for s in scores if s is not None)
    if not known:
        raise OodError("ood: every calibration sample has zero energy at the monitored layer")
    q = known[min(math.floor((1 - tpr) * len(scores)), len(known) - 1)]
    node = flag.producer
    assert node is not None
    tau = float(q)
    if _fixed_format(flag) is not None:
        tau = math.floor(q * 2**TAU_FORMAT.frac_bits) / 2**TAU_FORMAT.frac_bits
        tau = min(tau, TAU_FORMAT.max_mantissa * TAU_FORMAT.lsb)
        node.attrs["tau"] = tau
        flag_format(node)
    else:
        node.attrs["tau"] = tau
    kept = sum(1 for s in scores if s is None or s >= Fraction(tau))
    return {"tau": tau, "tau_format": str(TAU_FORMAT), "tpr": tpr, "calib_tpr": round(kept / len(scores), 4)}


def _memory(
    graph: Graph, layer: Layer, basis: np.ndarray, mean: np.ndarray | None, num: Node | None
) -> dict[str, Any]:
    """What the monitor stores and computes, next to a Mahalanobis detector at the same layer (a mean per
    class and a tied covariance over the n features: ``C n + n^2`` words). A split layer's monitor stores
    ``Q`` (k x r) and projects the first factor's r outputs instead of the n inputs: it saves k (n - r)
    words, and as many MACs per patch."""
    assert num is not None
    k, taps = basis.shape
    stored = num.params["basis"].data.shape[1]  # taps, or the first factor's rank when it is reused
    grid = patches(np.zeros((1, *layer.source.shape), np.float32), layer.window, 0.0).shape[1]
    words = k * stored + (taps if mean is not None else 0) + 1
    fb = num.params["basis"].format
    bits = words * (fb.width if isinstance(fb, Fixed) else 32)
    classes = graph.outputs[0].type.size
    reused = {}
    if stored != taps:
        assert layer.factor is not None
        reused = {
            "reused_factor": layer.factor.name,
            "words_saved": int(k * (taps - stored)),
            "macs_saved": int(grid * k * (taps - stored)),
        }
    return {
        "layer": layer.name,
        "k": int(k),
        "patches": int(grid),
        "taps": int(taps),
        "basis_format": str(fb),
        "words": int(words),
        "bits": int(bits),
        "extra_macs": int(grid * (k * stored + k + taps) + 1),
        "mahalanobis_words": int(classes * taps + taps * taps),
        "outputs": list(OUTPUTS),
        **reused,
    }
