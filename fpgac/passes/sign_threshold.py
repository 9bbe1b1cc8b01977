"""Fold a BatchNorm (``affine``) before a bipolar sign into the integer threshold of the layer before it.

In a binarized network (Brevitas w1a1 exported to QONNX, BNN-PYNQ) each hidden layer is ``dense|conv ->
affine (BatchNorm) -> 1-bit signed quant``. Quantized as it stands the affine is a fixed-point multiply
per element (DSPs), and its rounding can flip a sign that the exact BatchNorm keeps. FINN's streamlining
instead compares the accumulator with a per-channel threshold, and so does this pass: the layer's
accumulator ``x`` lies on the integer grid ``k * g`` (``g`` the input's LSB times the weight's), so

* ``a > 0``: ``a * x + b >= 0`` iff ``k >= ceil(-b / (a * g))``;
* ``a < 0``: iff ``k <= floor(-b / (a * g))``, i.e. ``-k >= -floor(...)``: the channel's weights and
  bias are negated (a binary weight stays binary);
* ``a == 0``: the sign is the constant ``b >= 0``;

with the sign's tie (``sign(0) = +1``, qonnx's ``x >= 0``) on the ``>=`` side, as the quant computes it.
The threshold ``t`` becomes the layer's bias (``x - t*g``) and the quant's own ``>= 0`` is the comparison:
no new op and no multiplier, the accumulator stays exact. ``t`` is computed in exact rational arithmetic
from the affine's stored values and clamped just outside the accumulator's reachable range (so a
threshold no sum reaches needs no extra bits). The result is the real-number semantics of BatchNorm +
sign on the exact accumulator: closer to qonnx than a rounded affine, and different from qonnx's float32
execution only where float32's rounding of the BatchNorm lands on the other side of 0.

Folded only where exact and invisible outside: each intermediate value has one use and is no graph
output, the affine varies only along the output channels, the layer's input and weight have fixed-point
formats (QONNX quantizers' grids) and any bias lies on the accumulator's grid.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import numpy as np

from fpgac.ir import Fixed, Graph, Node, Param, Value
from fpgac.ir.ops import OPS
from fpgac.ir.quant import fixed_plan
from fpgac.passes.fold_affine import per_channel

log = logging.getLogger(__name__)

# A bound on float32 BatchNorm's relative error in ``a * x + b`` (qonnx runs it in onnxruntime: ``a`` and
# ``b`` from float32 gamma, beta, mean, var, then a float32 product and sum): a few units of float32's
# roundoff 2**-24, generously.
FLOAT32_ERROR = Fraction(8, 2**24)


@dataclass(frozen=True)
class SignThreshold:
    """Replace ``dense|conv -> affine -> bipolar sign`` by the layer with a threshold bias and the sign."""

    name: ClassVar[str] = "sign_threshold"

    def run(self, graph: Graph) -> Graph:
        for node in graph.nodes:
            if node.op == "affine" and _fold(graph, node):
                log.info("sign_threshold: %s folded into a threshold on the accumulator", node.name)
        return graph


def threshold(a: Fraction, b: Fraction, lo: int, hi: int) -> tuple[bool, int]:
    """``(negate, t)`` with ``a * k + b >= 0`` iff ``(-k if negate else k) >= t`` for every integer
    ``k`` in ``[lo, hi]`` (``negate`` iff ``a < 0``). ``t`` is clamped to ``[lo, hi + 1]`` (``[-hi, -lo +
    1]`` negated): a threshold no code reaches needs no more bits than the accumulator."""
    if a == 0:
        return False, lo if b >= 0 else hi + 1
    if a > 0:
        return False, min(max(math.ceil(-b / a), lo), hi + 1)
    return True, min(max(-math.floor(-b / a), -hi), -lo + 1)


def near_zero(a: Fraction, b: Fraction, lo: int, hi: int) -> bool:
    """Whether an integer ``k`` in ``[lo, hi]`` next to the real threshold ``-b / a`` has ``|a * k + b|``
    within float32 error of 0: :data:`FLOAT32_ERROR` times ``|a * k| + |b|``, where float32 BatchNorm
    may give the other sign. The bound covers the float32 product and sum (tested); a runtime that folds
    ``gamma / sqrt(var + eps)`` and ``beta - mean * a`` in another order than the frontend gets an ``a``
    and ``b`` a few roundings away, which the factor 8 covers unless ``b`` cancels (``|mean * a|`` much
    larger than ``|b|``)."""
    if a == 0:
        return False  # 0 * x + b is b in float too
    root = -b / a
    candidates = {k for k in (math.floor(root), math.ceil(root)) if lo <= k <= hi}
    return any(abs(a * k + b) <= FLOAT32_ERROR * (abs(a * k) + abs(b)) for k in candidates)


def _fold(graph: Graph, affine: Node) -> bool:
    source = affine.inputs[0]
    layer = source.producer
    users = affine.output.consumers
    if layer is None or layer.op not in ("dense", "conv") or len(users) != 1 or not _bipolar_sign(users[0]):
        return False
    if len(source.uses) != 1 or source in graph.outputs or affine.output in graph.outputs:
        return False
    step = _accumulator_frac_bits(layer)
    if step is None:
        return False
    rank = len(source.shape)
    axis = 0 if layer.op == "conv" else rank - 1
    channels = source.shape[axis]
    params = per_channel(affine.params["scale"].data, affine.params["shift"].data, rank, axis, channels)
    if params is None or not all(np.all(np.isfinite(p)) for p in params):
        return False  # NaN or Inf: the quantize pass refuses them, naming the node
    bias_codes = _bias_codes(layer, step, channels)
    if bias_codes is None:
        return False
    reach = _weight_reach(layer)
    weight = layer.params["weight"].data.astype(np.float64)
    flips, codes, near = np.ones(channels), [], 0
    for c in range(channels):
        a, b = Fraction(float(params[0][c])) * Fraction(2) ** -step, Fraction(float(params[1][c]))
        lo, hi = bias_codes[c] - reach[c], bias_codes[c] + reach[c]
        # a * k + b >= 0 with k the accumulator's code (a scaled to the grid): a threshold on k.
        negate, t = threshold(a, b, lo, hi)
        flips[c] = -1.0 if negate else 1.0
        codes.append((-bias_codes[c] if negate else bias_codes[c]) - t)
        near += near_zero(a, b, lo, hi)
    if not _negatable(layer, flips):
        return False
    if near:
        log.warning(
            "%s (%s): %d of %d channels have a reachable accumulator value within float32 error of the "
            "BatchNorm's zero; there float QONNX execution may give the other sign (this design: exact)",
            layer.name,
            affine.name,
            near,
            channels,
        )
    layer.params["weight"] = Param(
        (weight * flips.reshape((-1,) + (1,) * (weight.ndim - 1))).astype(layer.params["weight"].data.dtype),
        layer.params["weight"].format,
    )
    layer.params["bias"] = _bias_param(codes, step)
    graph.bypass(affine, source)
    return True


def _bipolar_sign(node: Node) -> bool:
    return node.op == "quant" and node.attrs["bits"] == 1 and bool(node.attrs["signed"])


def _input_grid(value: Value) -> Fixed | None:
    """The fixed-point format every element of ``value`` lies in: a QONNX quantizer's output format,
    reached through ops that only select; None for anything else (a float value: the quantize pass
    picks its grid later, from calibration)."""
    node = value.producer
    if node is None:
        return None
    if node.op == "quant":
        try:
            scale, zero = node.params["scale"].data, node.params["zero_point"].data
            return fixed_plan(node.attrs, scale, zero, node.output.shape).out
        except ValueError:  # no fixed-point form: the quantize pass refuses it
            return None
    if OPS[node.op].selects and len(node.inputs) == 1:
        return _input_grid(node.inputs[0])
    return None


def _accumulator_frac_bits(layer: Node) -> int | None:
    """The fraction bits of the exact accumulator's grid, or None when the input or weight has no
    fixed-point format."""
    fx, fw = _input_grid(layer.inputs[0]), layer.params["weight"].format
    if not (isinstance(fx, Fixed) and isinstance(fw, Fixed)):
        return None
    return fx.frac_bits + fw.frac_bits


def _bias_codes(layer: Node, frac_bits: int, channels: int) -> list[int] | None:
    """The layer's bias as integers on the accumulator's grid (zeros without one); None if off it."""
    if "bias" not in layer.params:
        return [0] * channels
    scaled = [Fraction(float(v)) * 2**frac_bits for v in layer.params["bias"].data.reshape(-1)]
    if any(v.denominator != 1 for v in scaled):
        return None
    return [int(v) for v in scaled]


def _weight_reach(layer: Node) -> list[int]:
    """Per output channel, the largest ``|sum|`` of weight times input in accumulator codes."""
    fx, fw = _input_grid(layer.inputs[0]), layer.params["weight"].format
    assert isinstance(fx, Fixed) and isinstance(fw, Fixed)
    weight = layer.params["weight"].data
    codes = np.rint(weight.astype(np.float64) * 2.0**fw.frac_bits).astype(np.int64)
    rows = np.abs(codes.reshape(codes.shape[0], -1)).sum(axis=1)
    return [int(r) * max(-fx.min_mantissa, fx.max_mantissa) for r in rows]


def _negatable(layer: Node, flips: np.ndarray) -> bool:
    """Whether the channels to negate have weights whose negation their format still holds."""
    fw = layer.params["weight"].format
    assert isinstance(fw, Fixed)
    codes = np.rint(layer.params["weight"].data.astype(np.float64) * 2.0**fw.frac_bits)
    negated = codes[flips < 0]
    return bool(negated.size == 0 or (-negated).max() <= fw.max_mantissa)


def _bias_param(codes: list[int], frac_bits: int) -> Param:
    """The threshold bias ``codes * 2**-frac_bits`` in the narrowest signed format on that grid."""
    width = max(max(abs(c) for c in codes).bit_length() + 1, 2)
    data = np.array([math.ldexp(c, -frac_bits) for c in codes], np.float64)
    return Param(data, Fixed(width, width - frac_bits, True))
