"""Tiny quantization-aware classifiers trained with Brevitas and exported to QONNX (``export_qonnx``).

What FPGA users bring: weights and activations quantized in training, power-of-two (fixed-point) scales,
4, 2 or 1 bits; ``w1a1`` is a binarized network as BNN-PYNQ's: binary weights and bipolar (sign)
activations, whose layers after the first compute by XNOR-popcount (:mod:`fpgac.ir.bipolar`). Trained
on scikit-learn's digits (pixels ``k / 16``, exactly on the 8-bit input grid, so the input quantizer
rounds nothing), seeded, a few seconds each on one core. Every layer ends in a quantizer (the logits
too), and layers have no float bias, so the QONNX model's values are all on fixed-point grids: what
fpgac computes is what qonnx computes.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from torch import nn

from tests.trained import Dataset, digits

if TYPE_CHECKING:
    from qonnx.core.modelwrapper import ModelWrapper

EPOCHS = 3  # enough to learn the digits; the tests check exactness, not accuracy
WEIGHT_BITS = {"w4a4": (4, 4), "w2a2": (2, 2), "w1a2": (1, 2), "w1a1": (1, 1)}  # weight, activation bits
FLOAT_SCALES = "w4a4_float"  # 4/4 with Brevitas' default float (non-power-of-two) scales
BATCHNORM = "w1a1_bn"  # w1a1 with a BatchNorm before each sign, as BNN-PYNQ's FC and CNV


def _float_layers(weight_bits: int, act_bits: int) -> dict[str, object]:
    """Brevitas' defaults: per-tensor float scales, learned, no power of two."""
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

    return {
        "weight": {"weight_quant": Int8WeightPerTensorFloat, "weight_bit_width": weight_bits, "bias": False},
        "relu": {"act_quant": Uint8ActPerTensorFloat, "bit_width": act_bits},
        "input": {"act_quant": Uint8ActPerTensorFloat, "bit_width": 8},
        "output": {"act_quant": Int8ActPerTensorFloat, "bit_width": 12},
    }


def _layers(weight_bits: int, act_bits: int, float_scales: bool = False) -> dict[str, object]:
    """Keyword arguments of the quantized layers: fixed-point weight quantizers (the constant
    binary quantizer for 1 bit), unsigned fixed-point ReLUs; or Brevitas' float-scaled defaults."""
    from brevitas.quant import (
        Int8ActPerTensorFixedPoint,
        Int8WeightPerTensorFixedPoint,
        SignedBinaryWeightPerTensorConst,
        Uint8ActPerTensorFixedPoint,
    )

    if float_scales:
        return _float_layers(weight_bits, act_bits)

    class BinaryWeightPowerOfTwo(SignedBinaryWeightPerTensorConst):  # type: ignore[misc,valid-type]
        scaling_const = 0.125  # Brevitas' default 0.1 is no fixed-point grid (see the README)

    if weight_bits == 1:
        weight = {"weight_quant": BinaryWeightPowerOfTwo, "bias": False}
    else:
        weight = {
            "weight_quant": Int8WeightPerTensorFixedPoint,
            "weight_bit_width": weight_bits,
            "bias": False,
        }
    return {
        "weight": weight,
        "relu": {"act_quant": Uint8ActPerTensorFixedPoint, "bit_width": act_bits},
        "input": {"act_quant": Uint8ActPerTensorFixedPoint, "bit_width": 8},
        "output": {"act_quant": Int8ActPerTensorFixedPoint, "bit_width": 12},
    }


def _activation(k: dict[str, object], act_bits: int, batchnorm: nn.Module | None = None) -> nn.Module:
    """A hidden layer's activation: the quantized ReLU, or at 1 bit the bipolar sign of BNN-PYNQ
    (``QuantIdentity`` with Brevitas' binary quantizer: +-1, a ``BipolarQuant`` in QONNX), after
    ``batchnorm`` where given."""
    import brevitas.nn as qnn
    from brevitas.quant.binary import SignedBinaryActPerTensorConst

    if act_bits == 1:
        sign = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        return sign if batchnorm is None else nn.Sequential(batchnorm, sign)
    return qnn.QuantReLU(**k["relu"])  # type: ignore[arg-type]


def mlp(weight_bits: int, act_bits: int, float_scales: bool = False, batchnorm: bool = False) -> nn.Module:
    import brevitas.nn as qnn

    k = _layers(weight_bits, act_bits, float_scales)
    return nn.Sequential(
        qnn.QuantIdentity(**k["input"]),  # type: ignore[arg-type]
        qnn.QuantLinear(64, 64, **k["weight"]),  # type: ignore[arg-type]
        _activation(k, act_bits, nn.BatchNorm1d(64) if batchnorm else None),
        qnn.QuantLinear(64, 10, **k["weight"]),  # type: ignore[arg-type]
        qnn.QuantIdentity(**k["output"]),  # type: ignore[arg-type]
    )


def cnn(weight_bits: int, act_bits: int, float_scales: bool = False, batchnorm: bool = False) -> nn.Module:
    import brevitas.nn as qnn

    k = _layers(weight_bits, act_bits, float_scales)
    return nn.Sequential(
        qnn.QuantIdentity(**k["input"]),  # type: ignore[arg-type]
        qnn.QuantConv2d(1, 8, 3, padding=1, **k["weight"]),  # type: ignore[arg-type]
        _activation(k, act_bits, nn.BatchNorm2d(8) if batchnorm else None),
        nn.MaxPool2d(2),
        qnn.QuantConv2d(8, 16, 3, padding=1, **k["weight"]),  # type: ignore[arg-type]
        _activation(k, act_bits, nn.BatchNorm2d(16) if batchnorm else None),
        nn.MaxPool2d(2),
        nn.Flatten(),
        qnn.QuantLinear(64, 10, **k["weight"]),  # type: ignore[arg-type]
        qnn.QuantIdentity(**k["output"]),  # type: ignore[arg-type]
    )


@functools.cache
def trained(family: str, variant: str) -> tuple[nn.Module, Dataset]:
    """``family`` (mlp or cnn) at ``variant`` (a key of WEIGHT_BITS, or FLOAT_SCALES), trained once per
    process."""
    data = digits(images=family == "cnn")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        bits = (1, 1) if variant == BATCHNORM else WEIGHT_BITS.get(variant, (4, 4))
        build = mlp if family == "mlp" else cnn
        model = build(*bits, float_scales=variant == FLOAT_SCALES, batchnorm=variant == BATCHNORM)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        generator = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(EPOCHS):
            for idx in torch.randperm(len(x), generator=generator).split(128):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
    return model, data


def export(model: nn.Module, example: np.ndarray, path: Path) -> Path:
    """``export_qonnx`` as a user calls it (a batch of 1), nothing cleaned up afterwards."""
    from brevitas.export import export_qonnx

    with torch.no_grad():
        export_qonnx(model, input_t=torch.from_numpy(example[:1]), export_path=str(path), dynamo=False)
    return path


def run_qonnx(path: Path, x: np.ndarray) -> np.ndarray:
    """qonnx's ``execute_onnx`` of the model on the batch ``x``, in one call (see :func:`_batched`)."""
    from qonnx.core.onnx_exec import execute_onnx

    wrapped = _batched(path, len(x))
    result = execute_onnx(wrapped, {wrapped.graph.input[0].name: x})
    return np.asarray(result[wrapped.graph.output[0].name])


def qonnx_context(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of qonnx's execution of the model on the batch ``x`` (see :func:`_batched`)."""
    from qonnx.core.onnx_exec import execute_onnx

    wrapped = _batched(path, len(x))
    context = execute_onnx(wrapped, {wrapped.graph.input[0].name: x}, return_full_exec_context=True)
    return {k: np.asarray(v) for k, v in context.items()}


def _batched(path: Path, batch: int) -> ModelWrapper:
    """The model for qonnx with the batch dim of a copy set to ``batch`` (the export fixes 1; the model
    is per-sample) and its shapes inferred by qonnx."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    model = onnx.load(path)
    weights = {t.name for t in model.graph.initializer}  # Brevitas lists them as inputs too
    for info in [*model.graph.input, *model.graph.output]:
        if info.name not in weights:
            info.type.tensor_type.shape.dim[0].dim_value = batch
    del model.graph.value_info[:]
    return ModelWrapper(model).transform(InferShapes())
