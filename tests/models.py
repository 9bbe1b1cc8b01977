"""Small torch models of the kinds users export to ONNX, and a helper that exports them.

Shared by the numerics tests (vs onnxruntime) and later tests (passes, sim vs
csim), so every suite sees the same models. Each builder is seeded and puts the
model in ``eval()`` mode with randomized BatchNorm statistics and affine
params: with PyTorch's defaults (mean 0, var 1, weight 1, bias 0) BatchNorm is
almost the identity, and a frontend that dropped it or folded it wrongly would
still pass.

Models are sized so that a batch runs in milliseconds; the per-sample input
shape is in :data:`MODELS`.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

EXPORTERS = ("torchscript", "dynamo")
EXPORT_BATCH = 2  # not 1: the dynamo exporter specializes a dimension of size 1


def randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm non-trivial running stats and affine params, so folding is really tested."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            c = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(c, generator=generator) * 0.3)


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


# -- the models ----------------------------------------------------------------------------


class MLP(nn.Module):
    """Dense stack with Dropout (a no-op in eval that exporters must drop)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(16, 32),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(32, 24),
            nn.ReLU(),
            nn.Linear(24, 10, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """LeNet-like: Conv2d+BN+ReLU+MaxPool twice, ``torch.flatten(x, 1)``, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 12, 3, stride=1),
            nn.BatchNorm2d(12),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        )
        self.fc = nn.Linear(12 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class CNNView(CNN):
    """Same as :class:`CNN` but flattened the old way, ``x.view(x.size(0), -1)`` (a Shape subgraph)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.fc(x.view(x.size(0), -1))


class DepthwiseSeparable(nn.Module):
    """MobileNet-v1/v2 block: conv-BN-ReLU6, depthwise 3x3-BN-ReLU6, pointwise 1x1-BN (linear bottleneck)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.dw2 = nn.Sequential(
            nn.Conv2d(16, 16, 3, 2, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6()
        )
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw2(self.pw(self.dw(self.stem(x))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class BasicBlock(nn.Module):
    """ResNet basic block; a strided block gets a 1x1 conv + BN projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(cin, cout, 3, stride),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNetGAP(nn.Module):
    """Residual net ending in ``AdaptiveAvgPool2d(1)`` + flatten (GlobalAveragePool in ONNX)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.blocks = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 16, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class ResNet1M(ResNetGAP):
    """A ResNet-18-style net of 1.23M parameters (four stages, 32..256 channels) on 16x16 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 32)
        widths = (32, 32, 64, 128, 256)
        self.blocks = nn.Sequential(
            *(BasicBlock(a, b, 1 if a == b else 2) for a, b in itertools.pairwise(widths))
        )
        self.fc = nn.Linear(256, 10)


class ResNetMean(ResNetGAP):
    """The same net pooled with ``x.mean((2, 3))`` (ReduceMean in ONNX)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


class TwoBranchConcat(nn.Module):
    """Inception-like: two branches (Sigmoid, Tanh) concatenated, LeakyReLU, Softmax head."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 6, 1), nn.BatchNorm2d(6), nn.Sigmoid())
        self.b = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh())
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(10 * 4 * 4, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(torch.cat([self.a(x), self.b(x)], dim=1)))
        return torch.softmax(self.fc(torch.flatten(x, 1)), dim=1)


class Conv1dNet(nn.Module):
    """1-d signal classifier: Conv1d+BN1d+ReLU+MaxPool1d, a dilated Conv1d, AvgPool1d, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(4, 8, 5, padding=2),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(8, 8, 3, dilation=2),
            nn.ReLU(),
            nn.AvgPool1d(2),
        )
        self.fc = nn.Linear(8 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.net(x), 1))


class Activations(nn.Module):
    """ELU, SELU, per-channel and shared PReLU, Hardsigmoid between convs."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.c3 = nn.Conv2d(6, 6, 3, padding=1)
        self.elu = nn.ELU(0.7)
        self.selu = nn.SELU()
        self.prelu_c = nn.PReLU(6)
        self.prelu_1 = nn.PReLU()
        self.hsig = nn.Hardsigmoid()
        self.fc = nn.Linear(6 * 8 * 8, 4)
        with torch.no_grad():  # slopes other than PReLU's default 0.25, per channel distinct
            self.prelu_c.weight.copy_(torch.linspace(-0.3, 0.6, 6))
            self.prelu_1.weight.fill_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu_c(self.elu(self.c1(x)))
        x = self.prelu_1(self.selu(self.c2(x)))
        x = self.hsig(self.c3(x) * 2.0)
        return self.fc(torch.flatten(x, 1))


class AvgPoolCeil(nn.Module):
    """AvgPool with ceil_mode and count_include_pad=False, which change the border windows.

    On the 16x16 map ``p1`` gives 9 (floor mode would give 8); on 9x9 ``p2`` gives 5, where a
    ceil without PyTorch's "last window starts inside the input" rule would give 6.
    """

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3)
        self.p1 = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.p2 = nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.p3 = nn.AvgPool2d(3, stride=1, padding=1)  # count_include_pad=True (PyTorch default)
        self.p4 = nn.AvgPool2d(2, ceil_mode=True)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.p4(self.p3(self.p2(self.p1(torch.relu(self.c1(x))))))
        return self.fc(torch.flatten(x, 1))


class ZeroPadNet(nn.Module):
    """Asymmetric ``ZeroPad2d`` as in 'same' padding ported from TensorFlow, before a conv and a pool.

    The dynamo exporter folds the first pad into the conv's pads; the one before
    the max pool must stay a Pad node (zeros are not the pool's -inf padding).
    """

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 2, 0, 1))  # left, right, top, bottom
        self.conv = nn.Conv2d(3, 5, 3, stride=2)
        self.pad2 = nn.ZeroPad2d((0, 1, 1, 0))
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(5 * 2 * 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.pad2(self.conv(self.pad(x))))
        return self.fc(torch.flatten(x, 1))


class GroupedConv(nn.Module):
    """ResNeXt-style grouped convolutions (groups neither 1 nor the channel count)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, padding=1, groups=2)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, groups=4)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c2(torch.relu(self.bn(self.c1(x))))
        return self.fc(x.mean((2, 3)))


class SqueezeExciteLinear(nn.Module):
    """SE block as in SENet: ``x * sigmoid(fc(relu(fc(gap(x)))))`` with Linear layers and a view."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = conv_bn_relu(3, 8)
        self.fc1 = nn.Linear(8, 4)
        self.fc2 = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        x = x * s.view(s.size(0), 8, 1, 1)
        return self.head(x.mean((2, 3)))


class SqueezeExciteConv(nn.Module):
    """SE block as in MobileNet-v3/EfficientNet: pooled with keepdim, 1x1 convs, broadcast Mul."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = conv_bn_relu(3, 8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.se1 = nn.Conv2d(8, 4, 1)
        self.se2 = nn.Conv2d(4, 8, 1)
        self.head = nn.Linear(8 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = x * torch.sigmoid(self.se2(torch.relu(self.se1(self.pool(x)))))
        return self.head(torch.flatten(x, 1))


class BatchNormInputCNN(nn.Module):
    """BatchNorm2d straight on the input: no conv before it to fold into."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(self.bn(x))), 1))


class BatchNormInputMLP(nn.Module):
    """BatchNorm1d on tabular input, then again between Linear layers (after a ReLU, not a Linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm1d(12), nn.Linear(12, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NormalizeInput(nn.Module):
    """Input normalization written in forward, ``(x - mean) / std``: constant Sub and Div."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.conv = conv_bn_relu(3, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv((x - self.mean) / self.std)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@dataclass(frozen=True)
class ModelSpec:
    """A model builder and the per-sample shape of its input (no batch dimension)."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(MLP, (16,)),
    "cnn": ModelSpec(CNN, (3, 16, 16)),
    "cnn_view": ModelSpec(CNNView, (3, 16, 16)),
    "depthwise_separable": ModelSpec(DepthwiseSeparable, (3, 16, 16)),
    "resnet_gap": ModelSpec(ResNetGAP, (3, 12, 12)),
    "resnet_mean": ModelSpec(ResNetMean, (3, 12, 12)),
    "resnet_1m": ModelSpec(ResNet1M, (3, 16, 16)),
    "two_branch_concat": ModelSpec(TwoBranchConcat, (3, 8, 8)),
    "conv1d": ModelSpec(Conv1dNet, (4, 32)),
    "activations": ModelSpec(Activations, (3, 8, 8)),
    "avgpool_ceil": ModelSpec(AvgPoolCeil, (3, 18, 18)),
    "zeropad": ModelSpec(ZeroPadNet, (3, 8, 8)),
    "grouped_conv": ModelSpec(GroupedConv, (4, 9, 9)),
    "squeeze_excite_linear": ModelSpec(SqueezeExciteLinear, (3, 8, 8)),
    "squeeze_excite_conv": ModelSpec(SqueezeExciteConv, (3, 8, 8)),
    "bn_input_cnn": ModelSpec(BatchNormInputCNN, (3, 8, 8)),
    "bn_input_mlp": ModelSpec(BatchNormInputMLP, (12,)),
    "normalize_input": ModelSpec(NormalizeInput, (3, 8, 8)),
}


def build_model(name: str) -> nn.Module:
    """The model ``name`` in eval mode, with weights and BatchNorm stats fixed by a seed from its name."""
    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)
    model = MODELS[name].build()
    randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    return model.eval()


def random_input(name: str, batch: int, seed: int = 0) -> np.ndarray:
    """A seeded float32 batch for model ``name`` (standard normal, batch first)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return rng.standard_normal((batch, *MODELS[name].input_shape)).astype(np.float32)


def export_model(model: nn.Module, example: torch.Tensor, path: Path, exporter: str) -> Path:
    """Export ``model`` to ``path`` with a dynamic batch dimension, as a user would.

    ``torchscript`` is the legacy exporter (``dynamo=False``, opset 17);
    ``dynamo`` is the ``torch.export``-based one at its default opset. Both name
    the input ``x`` and the output ``y``.
    """
    if exporter == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter is deprecated and says so
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                opset_version=17,
            )
    elif exporter == "dynamo":
        # The dynamo exporter prints progress to stdout; keep test logs readable.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                input_names=["x"],
                output_names=["y"],
                dynamic_shapes={"x": {0: torch.export.Dim("N")}},
                verbose=False,
            )
    else:
        raise ValueError(f"unknown exporter {exporter!r}, expected one of {EXPORTERS}")
    return path


def export_named(name: str, exporter: str, folder: Path) -> Path:
    """Build model ``name`` and export it to ``folder / f"{name}_{exporter}.onnx"``."""
    model = build_model(name)
    example = torch.from_numpy(random_input(name, EXPORT_BATCH, seed=1))
    return export_model(model, example, folder / f"{name}_{exporter}.onnx", exporter)
