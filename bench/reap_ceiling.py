"""How accurate can the digits CNN be at 0.1 of its MACs without training? An upper bound for REAP.

#17 asks for >= 90% at ``reap(macs=0.1)``; the pass reaches 81.8%. This script measures what any
selection of channels could reach with REAP's reconstruction, so the shortfall can be told apart from a
weak criterion or allocation:

1. The channel counts that fit: the CNN's MACs are ``576 c1 + 144 c1 c2 + 40 c2`` (c1, c2 the channels
   kept by conv1 and conv2; ``report.json``'s count, BatchNorm folded), 23,680 in all. ``keep=0.25``
   (2 and 4 channels, the issue's 85.6%) is 0.104 and does not fit under 0.1; the largest counts that
   do are 2 and 3, 1 and 9, 3 and 1.
2. Every channel subset at those counts (15,680 + 91,520 + 896), each reconstructed as REAP does: conv2
   refitted by least squares (bias column, ``damp`` 1e-3) to the original pre-activations on the pruned
   conv1's outputs, then the classifier refitted to the original logits on the pruned features. For each
   count: the held-out accuracy of the subset with the least calibration error (what an exhaustive,
   label-free search would choose) and the best held-out accuracy of any subset (an oracle that picks
   by the test labels: an upper bound for every selection criterion with this reconstruction).
3. The same architectures trained from scratch with labels (3 seeds, 60 epochs of Adam): what the
   pruned shapes can hold at all.

The numpy forward pass is checked against the float interpreter before anything is measured.
``python bench/reap_ceiling.py`` (seeded; about 15 minutes on one loaded core, most of it in the 91,520
subsets of 1 and 9 channels).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # tiny matrices: threads only add contention

import itertools  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the models the tests use

from fpgac.analysis.cost import graph_cost  # noqa: E402
from fpgac.build import load_model  # noqa: E402
from fpgac.interp.interpreter import run_float  # noqa: E402
from fpgac.ir import Graph  # noqa: E402
from fpgac.passes.reap import Reap  # noqa: E402
from tests.trained import Trained, export, train  # noqa: E402

BUDGET = 0.1
CALIB = (1000, 1297)  # the bench's calibration batch, and every training sample
DAMP = 1e-3
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Cnn:
    """The digits CNN's float weights (conv1, conv2 with BatchNorm folded; the classifier)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: np.ndarray

    def macs(self, c1: int, c2: int) -> int:
        """conv1 at 8x8, conv2 at 4x4 (3x3 kernels), the classifier on c2 channels of 2x2."""
        return 64 * 9 * c1 + 16 * 9 * c1 * c2 + (self.w3.shape[1] // len(self.w2)) * len(self.w3) * c2

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """conv1 block output, conv2 pre-activations (rows: sample, y, x; columns: channels), logits."""
        h1 = pool(relu(conv(x, self.w1, self.b1)))
        a2 = conv(h1, self.w2, self.b2)
        return h1, a2, flat(pool(relu(a2))) @ self.w3.T + self.b3


def im2col(x: np.ndarray) -> np.ndarray:
    """3x3 windows, padding 1: (N, C, H, W) -> (N, H, W, C * 9), channel then tap like the weights."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    taps = np.stack([padded[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=-1)
    return taps.transpose(0, 2, 3, 1, 4).reshape(n, h, w, c * 9)


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return (im2col(x) @ weight.reshape(len(weight), -1).T + bias).transpose(0, 3, 1, 2)


def pool(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


def ones(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def solve(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """Damped least squares as the reap pass does it (λ relative to the mean diagonal)."""
    return np.linalg.solve(gram + DAMP * np.mean(np.diag(gram)) * np.eye(len(gram)), cross)


def weights(trained: Trained, folder: Path) -> tuple[Cnn, Graph]:
    graph = load_model(export(trained, folder / "digits_cnn.onnx"))
    layers = [n for n in graph.nodes if n.op in ("conv", "dense")]
    arrays = [n.params[k].data.astype(np.float64) for n in layers for k in ("weight", "bias")]
    cnn = Cnn(*arrays)
    sample = trained.data.x_train[:64]
    assert np.allclose(cnn.forward(sample.astype(np.float64))[2], run_float(graph, [sample])[0], atol=1e-4)
    return cnn, graph


def counts(cnn: Cnn) -> list[tuple[int, int]]:
    """The largest (c1, c2) that fit the budget: no other fitting pair is at least as large in both."""
    total = cnn.macs(len(cnn.w1), len(cnn.w2))
    fit = [
        (c1, c2)
        for c1 in range(1, len(cnn.w1) + 1)
        for c2 in range(1, len(cnn.w2) + 1)
        if cnn.macs(c1, c2) <= BUDGET * total
    ]
    return [p for p in fit if not any(q != p and q[0] >= p[0] and q[1] >= p[1] for q in fit)]


def subsets(cnn: Cnn, data: Trained, calib: int, c1: int, c2: int) -> tuple[int, float, float]:
    """(subsets tried, held-out accuracy of the least-error subset, best held-out accuracy of any)."""
    x, test = data.data.x_train[:calib].astype(np.float64), data.data.x_test.astype(np.float64)
    h1, a2, logits = cnn.forward(x)
    h1_test = cnn.forward(test)[0]
    target = a2.transpose(0, 2, 3, 1).reshape(-1, len(cnn.w2))
    per_channel = cnn.w3.shape[1] // len(cnn.w2)
    least, best, tried = (np.inf, 0.0), 0.0, 0
    for first in itertools.combinations(range(len(cnn.w1)), c1):
        rows = ones(im2col(h1[:, list(first)]).reshape(-1, c1 * 9))
        refit = solve(rows.T @ rows, rows.T @ target)
        features = features_of(rows, refit, len(x))
        rows_test = ones(im2col(h1_test[:, list(first)]).reshape(-1, c1 * 9))
        features_test = features_of(rows_test, refit, len(test))
        gram, cross, energy = features.T @ features, features.T @ logits, float(np.sum(logits**2))
        for second in itertools.combinations(range(len(cnn.w2)), c2):
            columns = np.array([per_channel * c + k for c in second for k in range(per_channel)] + [-1])
            head = solve(gram[np.ix_(columns, columns)], cross[columns])
            error = float(np.sum((features[:, columns] @ head - logits) ** 2)) / energy
            accuracy = float(np.mean((features_test[:, columns] @ head).argmax(1) == data.data.y_test))
            least = min(least, (error, accuracy))
            best = max(best, accuracy)
            tried += 1
    return tried, least[1], best


def features_of(rows: np.ndarray, refit: np.ndarray, samples: int) -> np.ndarray:
    """Pooled ReLU of the refitted conv2, flattened channel-major like the classifier reads it, plus 1."""
    a2 = (rows @ refit).reshape(samples, 4, 4, -1).transpose(0, 3, 1, 2)
    return ones(flat(pool(relu(a2))))


def from_scratch(data: Trained, c1: int, c2: int, seed: int, epochs: int = 60) -> float:
    """The pruned shape trained with labels: Adam 1e-2, minibatches of 64, as tests/trained.py."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1),
        nn.BatchNorm2d(c1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.BatchNorm2d(c2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 4, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.from_numpy(data.data.x_train), torch.from_numpy(data.data.y_train)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(data.data.x_test)).argmax(1).numpy()
    return float(np.mean(predicted == data.data.y_test))


def main() -> None:
    torch.set_num_threads(1)
    data = train("digits_cnn")
    with tempfile.TemporaryDirectory() as tmp:
        cnn, graph = weights(data, Path(tmp))
    total = cnn.macs(len(cnn.w1), len(cnn.w2))
    assert total == graph_cost(graph).macs
    pruned = Reap(macs=BUDGET, allocation="output", calib=(data.data.x_train[:1000],)).run(graph.clone())
    reached = float(np.mean(run_float(pruned, [data.data.x_test])[0].argmax(1) == data.data.y_test))
    print(f"float {100 * data.accuracy:.1f}%; reap(macs={BUDGET}, allocation=output): {100 * reached:.1f}%")
    print(f"keep=0.25 (2 and 4 channels): {cnn.macs(2, 4) / total:.4f} of the MACs\n")
    print("| channels | MACs | calib | subsets | least error | oracle | trained from scratch |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for c1, c2 in counts(cnn):
        scratch = ", ".join(f"{100 * from_scratch(data, c1, c2, s):.1f}" for s in SEEDS)
        for calib in CALIB:
            tried, least, best = subsets(cnn, data, calib, c1, c2)
            print(
                f"| {c1} and {c2} | {cnn.macs(c1, c2) / total:.3f} | {calib} | {tried:,} | {100 * least:.1f}"
                f" | {100 * best:.1f} | {scratch} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
