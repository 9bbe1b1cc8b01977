"""The ``quant`` op's meaning: QONNX's integer quantizer, in float and as fixed-point formats.

QONNX's ``Quant`` (and ``BipolarQuant``, and a ``QuantizeLinear``/``DequantizeLinear`` pair) computes
``y = (clamp(R(x / scale + zero_point), lo, hi) - zero_point) * scale`` with ``lo``/``hi`` the integer range
of ``bits`` (signed or not, ``narrow`` dropping the most negative or the largest code) and ``R`` one of its
rounding modes; a 1-bit signed quantizer is a bipolar sign (``x >= 0 ? scale : -scale``), as qonnx's own
``int_quant`` computes it. This module states that once, for the float interpreter
(:func:`quant_float`), and plans its fixed-point form (:func:`fixed_plan`), which the quantize pass, the
bit-accurate kernel and the C++ emitter share.

Fixed point: a power-of-two scale ``2**-f`` with a zero point of 0 *is* a format, ``ap_fixed<b, b-f>``
(``ap_ufixed`` unsigned), and QONNX's rounding modes are ``ap_fixed`` modes on that grid: ROUND
(half to even) is ``RND_CONV``, FLOOR ``TRN``, DOWN ``TRN_ZERO``, HALF_UP ``RND_INF``, HALF_DOWN
``RND_ZERO``. CEIL has no mode: it is ``TRN`` after adding one output step less one input step, which
is exact on the input's grid. The clamp to ``[lo, hi]`` is explicit (narrow ranges are not a format's
range, except signed narrow, ``SAT_SYM``). Per-channel scales and zero points make one group per distinct
(exponent, zero point); the output format is the finest grid that holds every group. An integer zero point
shifts the clamp range, and an odd one under round-half-even sends ties to odd, computed exactly by adding
one step before the rounding and taking it off after (:func:`check_zero_point`). Non-power-of-two scales,
zero points under sign-dependent modes and the UP mode have no exact fixed-point form here:
:func:`fixed_plan` says so, naming the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpgac.ir.types import Fixed, Overflow, Rounding

# QONNX rounding modes (qonnx.custom_op.general.intquant.resolve_rounding_mode), normalized.
ROUNDINGS = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")
_AP_MODE = {
    "ROUND": Rounding.RND_CONV,
    "HALF_EVEN": Rounding.RND_CONV,
    "FLOOR": Rounding.TRN,
    "CEIL": Rounding.TRN,  # after adding one output step less one input step
    "DOWN": Rounding.TRN_ZERO,
    "HALF_UP": Rounding.RND_INF,
    "HALF_DOWN": Rounding.RND_ZERO,
}


def int_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """QONNX's ``min_int``/``max_int``; the bipolar 1-bit signed quantizer gives ``(-1, 1)``."""
    if signed and bits == 1:
        return -1, 1
    if signed:
        return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - int(narrow)


def _round(y: np.ndarray, mode: str) -> np.ndarray:
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(y)
    if mode == "CEIL":
        return np.ceil(y)
    if mode == "FLOOR":
        return np.floor(y)
    if mode == "UP":
        return np.sign(y) * np.ceil(np.abs(y))
    if mode == "DOWN":
        return np.fix(y)
    if mode == "HALF_UP":
        return np.sign(y) * np.floor(np.abs(y) + 0.5)
    if mode == "HALF_DOWN":
        return np.sign(y) * np.ceil(np.abs(y) - 0.5)
    raise ValueError(f"unknown rounding mode {mode!r} (QONNX has {', '.join(ROUNDINGS)})")


def quant_float(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, bits: int, signed: bool, narrow: bool, mode: str
) -> np.ndarray:
    """QONNX's ``int_quant`` in the input's float type (as qonnx executes it): clamp, round, rescale."""
    dtype = x.dtype
    scale, zero_point = scale.astype(dtype), zero_point.astype(dtype)
    y = x / scale + zero_point
    lo, hi = int_range(bits, signed, narrow)
    if signed and bits == 1:
        y = np.where(y >= 0, dtype.type(1), dtype.type(-1))
    else:
        y = _round(np.clip(y, dtype.type(lo), dtype.type(hi)), mode)
    return ((y - zero_point) * scale).astype(dtype)


@dataclass(frozen=True)
class Group:
    """The elements sharing one power-of-two scale ``2**-frac`` and one zero point: the format they are
    cast into (its rounding mode, ``bits`` wide), the clamp on its mantissas (QONNX's range less the zero
    point), whether CEIL's offset is added first, and whether ties round to odd (``odd``: an odd zero
    point under round-half-even, computed as one step added before the rounding and taken off after)."""

    frac: int
    fmt: Fixed
    lo: int
    hi: int
    ceil: bool
    bipolar: bool
    odd: bool = False


@dataclass(frozen=True)
class FixedPlan:
    """How a ``quant`` node computes in fixed point: its groups, which group each element is in (an array
    of the output's shape), and the output format, which holds every group's values exactly."""

    out: Fixed
    groups: tuple[Group, ...]
    group_of: np.ndarray


def exponents(scale: np.ndarray) -> np.ndarray | None:
    """``f`` with ``scale == 2**-f`` elementwise, or None if some scale is not a power of two."""
    scale = np.asarray(scale, dtype=np.float64)
    if scale.size == 0 or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        return None
    mantissa, exponent = np.frexp(scale)
    if not np.all(mantissa == 0.5):
        return None
    return (1 - exponent).astype(np.int64)


def zero_points(zero_point: np.ndarray) -> np.ndarray:
    """The zero points of a quantizer, elementwise (per tensor or per channel), as int64.

    Raises:
        ValueError: a zero point that is not an integer.
    """
    values = np.asarray(zero_point, dtype=np.float64)
    whole = np.isfinite(values) & (values == np.round(values))
    if not np.all(whole):
        raise ValueError(f"zero point {float(values[~whole].reshape(-1)[0])} is not an integer")
    return values.astype(np.int64)


def check_zero_point(zero: int, mode: str, bipolar: bool) -> None:
    """A zero point ``z`` is exact where rounding commutes with adding it, up to the ties: ``R(v + z) ==
    R(v) + z`` for FLOOR and CEIL and for round-half-even when ``z`` is even, so it only moves the clamp
    range to ``[lo - z, hi - z]`` (a uint8 QuantizeLinear's 128); an odd ``z`` under round-half-even
    sends ties to odd, ``R(v + z) == R(v + 1) - 1 + z`` (one step added before the rounding, taken off
    after). The other modes' ties depend on the sign of ``v + z``.

    Raises:
        ValueError: where it has no exact form (the message says why).
    """
    if zero == 0:
        return
    if bipolar:
        raise ValueError("a bipolar quantizer with a zero point has no fixed-point form")
    if mode not in ("ROUND", "HALF_EVEN", "FLOOR", "CEIL"):
        raise ValueError(
            f"a zero point with rounding mode {mode} has no fixed-point form (its ties depend on the sign)"
        )


def _int_width(lo: int, hi: int) -> tuple[int, bool]:
    """The bits and signedness of the narrowest integer type holding ``[lo, hi]``."""
    signed = lo < 0
    return max(hi.bit_length(), (-lo - 1).bit_length() if signed else 0, 1) + int(signed), signed


def fixed_plan(
    attrs: Mapping[str, Any], scale: np.ndarray, zero_point: np.ndarray, shape: tuple[int, ...]
) -> FixedPlan:
    """The fixed-point form of a quant node whose output has per-sample ``shape``.

    Raises:
        ValueError: the node has no exact fixed-point form (the message says why).
    """
    mode = attrs["rounding"]
    if mode not in _AP_MODE:
        raise ValueError(f"rounding mode {mode} has no exact fixed-point form")
    fracs = exponents(scale)
    if fracs is None:
        raise ValueError(
            "a scale that is not a power of two is not a fixed-point format; quantize with power-of-two "
            "scales (Brevitas: *FixedPoint quantizers, restrict_scaling_type=POWER_OF_TWO)"
        )
    bits, signed, narrow = attrs["bits"], attrs["signed"], attrs["narrow"]
    lo, hi = int_range(bits, signed, narrow)
    bipolar = signed and bits == 1
    zeros = zero_points(zero_point)
    for zero in np.unique(zeros):
        check_zero_point(int(zero), mode, bipolar)
    keys = np.stack([np.broadcast_to(fracs, shape), np.broadcast_to(zeros, shape)], axis=-1).reshape(-1, 2)
    distinct = sorted({(int(f), int(z)) for f, z in keys})
    groups = []
    for f, z in distinct:
        odd = bool(z % 2) and mode in ("ROUND", "HALF_EVEN")
        if bipolar:
            fmt = Fixed(2, 2 - f, True, _AP_MODE[mode], Overflow.SAT)
        elif z == 0:
            overflow = Overflow.SAT_SYM if signed and narrow else Overflow.SAT
            fmt = Fixed(bits, bits - f, signed, _AP_MODE[mode], overflow)
        else:  # y = (clamp(R(x / s)) on [lo - z, hi - z]) * s; an odd z rounds one step higher first
            width, g_signed = _int_width(lo - z, hi - z + int(odd))
            fmt = Fixed(width, width - f, g_signed, _AP_MODE[mode], Overflow.SAT)
        groups.append(Group(f, fmt, lo - z, hi - z, mode == "CEIL", bipolar, odd))
    index = {key: k for k, key in enumerate(distinct)}
    group_of = np.array([index[(int(f), int(z))] for f, z in keys], dtype=np.int64).reshape(shape)
    if len(groups) == 1 and not groups[0].odd:
        return FixedPlan(groups[0].fmt, tuple(groups), group_of)
    frac = max(g.frac for g in groups)
    m_lo = min(g.lo << (frac - g.frac) for g in groups)
    m_hi = max(g.hi << (frac - g.frac) for g in groups)
    width, out_signed = _int_width(m_lo, m_hi)
    overflow = Overflow.SAT_SYM if signed and narrow and not bipolar and not zeros.any() else Overflow.SAT
    out = Fixed(width, width - frac, out_signed, groups[0].fmt.rounding, overflow)
    return FixedPlan(out, tuple(groups), group_of)


def odd_offset(fx: Fixed, group: Group) -> int:
    """An odd-zero-point group's one output step as a mantissa on the input's grid (0 when the input's grid
    is no finer than the output's: then nothing is rounded and there are no ties)."""
    shift = fx.frac_bits - group.frac
    return 1 << shift if group.odd and shift > 0 else 0


def ceil_offset(fx: Fixed, group: Group) -> int:
    """CEIL's offset as a mantissa on the input's grid: one output step less one input step (0 when the
    input's grid is no finer than the output's, where nothing is rounded)."""
    shift = fx.frac_bits - group.frac
    return (1 << shift) - 1 if group.ceil and shift > 0 else 0


def grid_format(data: np.ndarray, max_width: int) -> Fixed | None:
    """The narrowest signed format that holds every value of ``data`` exactly (rounding to nearest even,
    saturating), or None if that takes more than ``max_width`` bits: a weight that a quantizer put on a
    fixed-point grid gets that grid as its format, not the build's precision."""
    values = np.asarray(data, dtype=np.float64).reshape(-1)
    values = values[values != 0]
    if values.size == 0 or not np.all(np.isfinite(values)):
        return None
    top = int(np.frexp(np.abs(values).max())[1])  # |values| < 2**top
    for frac in range(-top, max_width - top + 1):
        scaled = np.ldexp(values, frac)
        if np.all(scaled == np.round(scaled)):
            lo, hi = int(scaled.min()), int(scaled.max())
            width = max(hi.bit_length(), (-lo - 1).bit_length(), 0) + 1
            return (
                Fixed(width, width - frac, True, Rounding.RND_CONV, Overflow.SAT)
                if width <= max_width
                else None
            )
    return None
