"""Train the Quickstart's example model: a small CNN on scikit-learn's 8x8 digits.

Writes ``digits_cnn.onnx`` (TorchScript exporter, dynamic batch) and
``digits_batch.npy`` (64 held-out test images, NCHW float32 in [0, 1]) next to
this script. Needs the ``torch`` extra; the shipped files were made with
``python examples/train_digits_cnn.py`` (seeded, CPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).parent


class DigitsCNN(nn.Module):
    """Conv-BN-ReLU x2 with pooling, then a linear classifier: 1x8x8 -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.25, random_state=0)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(40):
        for idx in torch.randperm(len(xt)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"test accuracy {accuracy:.3f}")
    torch.onnx.export(
        model,
        (torch.from_numpy(x_test[:1]),),
        HERE / "digits_cnn.onnx",
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        opset_version=17,
        dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}},
    )
    np.save(HERE / "digits_batch.npy", x_test[:64])


if __name__ == "__main__":
    main()
