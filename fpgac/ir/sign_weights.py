"""Binary and ternary weights: layers whose products need no multiplier.

A weight tensor is *sign-valued* when every output unit's (first axis) weights are ``-s``, ``0`` or
``+s`` for one power of two ``s`` per unit: binary (``{-s, +s}``) or ternary (``{-s, 0, +s}``) weights,
as QKeras's ``binary``/``ternary`` quantizers, a 1-bit ``quantized_bits`` or QONNX's bipolar weights make
them. A product with such a weight is the input shifted by a constant and negated or dropped: an add or a
subtract in the accumulator, no DSP. This module is the one place that decides it, from the values; the
quantize pass (the weight's narrow exact format), the resource estimate (no DSP) and the Vitis kernels
(add/subtract, or XNOR-popcount on bipolar inputs: :mod:`fpgac.ir.bipolar`) ask it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpgac.ir.graph import Param
from fpgac.ir.types import Fixed, Overflow, Rounding


@dataclass(frozen=True)
class SignWeights:
    """A sign-valued weight tensor: ``ternary`` when some weights are 0, and the exponents of the
    smallest and largest per-unit magnitudes ``2**low`` .. ``2**high``."""

    ternary: bool
    low: int
    high: int

    def format(self) -> Fixed:
        """The narrowest format holding every weight exactly: a sign, and one bit per power of two
        between the smallest and largest magnitude."""
        return Fixed(2 + self.high - self.low, 2 + self.high, True, Rounding.RND_CONV, Overflow.SAT)


def sign_weights(data: np.ndarray) -> SignWeights | None:
    """The tensor's sign-weight kind, or None when some unit's weights are not ``-s, 0, +s`` for one
    power of two ``s`` (or all weights are 0: nothing to compute)."""
    if data.ndim < 1 or data.size == 0:
        return None
    first = np.abs(np.asarray(data[0], dtype=np.float64))  # most layers fail here, at the cost of one row
    if first.size and not np.all((first == 0) | (first == first.max())):
        return None
    rows = np.abs(np.asarray(data, dtype=np.float64).reshape(data.shape[0], -1))
    scale = rows.max(axis=1)
    if not np.all(np.isfinite(scale)) or not np.any(scale > 0):
        return None
    if not np.all((rows == 0) | (rows == scale[:, None])):
        return None
    magnitudes = scale[scale > 0]
    mantissa, exponent = np.frexp(magnitudes)  # magnitude = mantissa * 2**exponent, mantissa in [0.5, 1)
    if not np.all(mantissa == 0.5):
        return None
    exponents = exponent.astype(np.int64) - 1
    ternary = bool(np.any(rows == 0))
    return SignWeights(ternary, int(exponents.min()), int(exponents.max()))


def single_magnitude(param: Param) -> SignWeights | None:
    """The param's sign weights when they have one magnitude ``s`` and are stored in their 2-bit format
    (``s`` its LSB, so a weight's sign says it all, as the kernels' add/subtract and XNOR paths read it);
    None otherwise, compressed weights included (their storage is another kernel's)."""
    if param.encoding is not None:
        return None
    signs = sign_weights(param.data)
    if signs is None or signs.low != signs.high or param.format != signs.format():
        return None
    return signs
