"""Exact ``ap_fixed`` arithmetic on numpy integer mantissas.

A fixed-point tensor is a numpy array of integer *mantissas* ``m`` plus a :class:`~fpgac.ir.types.Fixed`
format; the real value of an element is ``m * 2**-fmt.frac_bits``. Mantissas are the signed value of the
``W`` stored bits (``[-2**(W-1), 2**(W-1))`` for ``ap_fixed``, ``[0, 2**W)`` for ``ap_ufixed``), not the raw
bit pattern.

Every function here reproduces what the Vitis HLS C-simulation headers (``ap_fixed_base.h``, as shipped by
hls4ml) compute, bit for bit; ``tests/exact/test_fixed_vs_apfixed.py`` compiles those headers with g++ and
compares. The header semantics reduce to one rule, applied by :func:`quantize` (``fmt_t y = double``) and
:func:`cast` (``dst_t y = src``) alike: take the exact source value, round it onto the destination grid by
the destination's rounding mode, then handle an out-of-range result by its overflow mode. Sums and products
(:func:`add`, :func:`sub`, :func:`mul`) are always exact in the ``RType`` result formats the header defines.

Storage and the int64 bound
    A format whose mantissas fit in int64 (signed width <= 64, unsigned width <= 63, see
    :func:`fits_int64`) is stored as ``int64`` and computed with vectorized int64 operations; otherwise
    mantissas are numpy ``object`` arrays of Python ints, exact at any width. The int64 path never holds a
    value larger than the source mantissa plus one rounding increment: right shifts round *before* anything
    grows, and left shifts are checked against the destination range *before* shifting (``q << k > hi``
    iff ``q > hi >> k``), then done modulo 2**64 in ``uint64``: exact for every in-range result, and the
    right residue for ``AP_WRAP`` since ``2**W`` divides ``2**64``.

Not covered: division, shifts and bit slicing of ``ap_fixed`` (the IR does not need them), and the
``AP_WRAP_SM`` overflow mode and ``_AP_N`` saturation bits, which :class:`~fpgac.ir.types.Overflow` does not
offer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, overload

import numpy as np

from fpgac.ir.types import Fixed, Overflow, Rounding

_I64_MAX = np.iinfo(np.int64).max
_DOUBLE_MAN = 52
_DOUBLE_BIAS = 1023


# ----------------------------------------------------------------------------------------------------------
# storage


def fits_int64(fmt: Fixed) -> bool:
    """Whether every mantissa of ``fmt`` fits in int64 (an ``ap_ufixed<64,…>`` does not)."""
    return fmt.width <= (64 if fmt.signed else 63)


def mantissa_dtype(fmt: Fixed) -> np.dtype:
    """The numpy dtype that holds ``fmt``'s mantissas: int64 when they fit, else object (Python ints)."""
    return np.dtype(np.int64) if fits_int64(fmt) else np.dtype(object)


def as_mantissas(m: np.ndarray | int, fmt: Fixed) -> np.ndarray:
    """``m`` in ``fmt``'s canonical dtype (see :func:`mantissa_dtype`); values are not range-checked."""
    arr = np.asarray(m)
    dtype = mantissa_dtype(fmt)
    if arr.dtype == dtype:
        return arr
    if dtype.kind == "O":
        return _to_object(arr)
    if arr.dtype == object or arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    raise TypeError(f"mantissas of {fmt} must be integers, not {arr.dtype}")


_as_py_int = np.frompyfunc(int, 1, 1)


def _to_object(arr: np.ndarray) -> np.ndarray:
    """Object array of Python ints (``astype(object)`` turns int64 elements into Python ints).

    A caller's object array may hold numpy integer scalars, whose arithmetic would wrap at 64 bits inside
    an "exact" object computation; those are normalized to Python ints, one by one (object path only).
    """
    if arr.dtype == object:
        return np.asarray(_as_py_int(arr), dtype=object) if arr.size else arr
    if arr.dtype.kind not in "iub":
        raise TypeError(f"mantissas must be integers, not {arr.dtype}")
    return arr.astype(object)


# ----------------------------------------------------------------------------------------------------------
# integer helpers: exact on object arrays, bounded and UB-free on int64


def _is_obj(a: np.ndarray) -> bool:
    return np.asarray(a).dtype == object


def _shr(m: np.ndarray, s: np.ndarray | int) -> np.ndarray:
    """``floor(m / 2**s)`` for ``s >= 0``; int64 shifts are clamped at 63, where the result is the sign."""
    if _is_obj(m):
        return m >> s
    return m >> np.minimum(s, 63)


def _low_bits_nonzero(m: np.ndarray, k: np.ndarray | int) -> np.ndarray:
    """Whether any of bits ``0 .. k-1`` of ``m`` (infinitely sign-extended) is set, ``k >= 0``."""
    if _is_obj(m):
        return (m >> k) << k != m
    k = np.asarray(k)
    mask = np.right_shift(np.int64(_I64_MAX), 63 - np.minimum(k, 63))  # bits 0..k-1 (0..62 at most)
    # From k = 64 up the range covers bit 63 and the sign extension above it: any nonzero m has a set bit.
    return np.where(k >= 64, m != 0, (m & mask) != 0)


def _shl(m: np.ndarray, k: np.ndarray | int) -> np.ndarray:
    """``m * 2**k`` exactly on object arrays; modulo 2**64 on int64 (shifted as uint64, no signed UB)."""
    if _is_obj(m):
        return m << k
    k = np.asarray(k)
    shifted = np.left_shift(m.astype(np.uint64), np.minimum(k, 63).astype(np.uint64))
    return np.where(k >= 64, np.uint64(0), shifted).astype(np.int64)


def _ceil_shr(v: np.ndarray | int, k: np.ndarray | int, like: np.ndarray) -> np.ndarray:
    """``ceil(v / 2**k)`` for ``k >= 0``, computed in ``like``'s arithmetic."""
    v = np.full(np.shape(like), v, dtype=like.dtype)
    floor = _shr(v, k)
    return np.where(_low_bits_nonzero(v, k), floor + 1, floor)  # no bools mixed into object arithmetic


# ----------------------------------------------------------------------------------------------------------
# the one requantization rule


def _round_increment(
    rounding: Rounding, qb: np.ndarray, r: np.ndarray, neg: np.ndarray, lsb: np.ndarray
) -> np.ndarray:
    """Whether to add one LSB to the floored value: ``ap_fixed_base::quantization_adjust``.

    ``qb`` is the first dropped bit (the half), ``r`` the OR of all bits below it, ``neg`` the sign of the
    source and ``lsb`` the last kept bit. The header increments the *truncated* (floored, two's complement)
    value, so every mode is a rule on top of ``floor``:
    RND ``qb`` (ties up), RND_ZERO ``qb && (s || r)``, RND_MIN_INF ``qb && r``, RND_INF ``qb && (!s || r)``,
    RND_CONV ``qb && (lsb || r)`` (ties to even), TRN_ZERO ``s && (qb || r)`` (toward zero), TRN nothing.
    """
    if rounding is Rounding.TRN:
        return np.zeros(np.shape(qb), dtype=bool)
    if rounding is Rounding.RND:
        return qb
    if rounding is Rounding.RND_ZERO:
        return qb & (neg | r)
    if rounding is Rounding.RND_MIN_INF:
        return qb & r
    if rounding is Rounding.RND_INF:
        return qb & (~neg | r)
    if rounding is Rounding.RND_CONV:
        return qb & (lsb | r)
    if rounding is Rounding.TRN_ZERO:
        return neg & (qb | r)
    raise ValueError(f"unknown rounding mode {rounding!r}")


def _round_shift_right(m: np.ndarray, s: np.ndarray | int, rounding: Rounding) -> np.ndarray:
    """``m * 2**-s`` rounded to an integer by ``rounding`` (``s >= 0``; ``s == 0`` returns ``m``).

    The header reads ``qb`` and ``r`` from the source bits with the sign extended past the MSB (``qb =
    signbit`` once the shift exceeds the width, ``r`` from bit 0 up to the sign), which is exactly the
    infinitely sign-extended two's complement that ``_shr`` and ``_low_bits_nonzero`` see.
    """
    s = np.asarray(s)
    if not s.any():
        return m
    s1 = np.maximum(s - 1, 0)
    floor = _shr(m, s)
    if rounding is Rounding.TRN:
        return floor
    qb = (s > 0) & (_shr(m, s1) & 1 != 0)
    r = (s > 1) & _low_bits_nonzero(m, s1)
    inc = _round_increment(rounding, qb, r, m < 0, floor & 1 != 0)
    return np.where(inc, floor + 1, floor)


def _wrap(q: np.ndarray, fmt: Fixed) -> np.ndarray:
    """``q`` modulo ``2**W`` into ``fmt``'s mantissa range: the W-bit register simply drops high bits."""
    w = fmt.width
    if _is_obj(q):
        if fmt.signed:
            half = 1 << (w - 1)
            return ((q + half) & ((1 << w) - 1)) - half
        return q & ((1 << w) - 1)
    if fmt.signed:
        if w == 64:
            return q
        up = np.uint64(64 - w)
        return (q.astype(np.uint64) << up).astype(np.int64) >> np.int64(64 - w)
    return q & np.int64((1 << w) - 1)


def _sat_bounds(fmt: Fixed) -> tuple[int, int]:
    """The range a saturating ``fmt`` keeps: ``overflow_adjust`` writes these on overflow/underflow.

    SAT_SYM on a signed format sets the underflow result to ``min | 1`` and also treats a result of exactly
    ``min`` as underflow (``underflow |= neg_src && range(V, 0, W-2) == 0``); for W = 1 ``min | 1`` is
    ``min`` itself (bit pattern ``1``), so a 1-bit SAT_SYM keeps -1. Unsigned SAT_SYM is plain SAT.
    """
    lo, hi = fmt.min_mantissa, fmt.max_mantissa
    if fmt.overflow is Overflow.SAT_SYM and fmt.signed and fmt.width > 1:
        lo += 1
    return lo, hi


def _requantize(
    m: np.ndarray, s: np.ndarray | int, k: np.ndarray | int, dst: Fixed
) -> tuple[np.ndarray, np.ndarray]:
    """Round ``m * 2**(k - s)`` onto ``dst`` (one of ``s``, ``k`` is zero per element), then overflow.

    Returns ``(mantissas, overflowed)``; ``overflowed`` marks elements whose correctly rounded value lay
    outside what ``dst`` keeps (for SAT_SYM: outside ``[-max, max]``), i.e. that were saturated, zeroed or
    wrapped.
    """
    if not (fits_int64(dst) and m.dtype == np.int64):
        m = _to_object(m)
        if np.ndim(s):
            s, k = np.asarray(s).astype(object), np.asarray(k).astype(object)
        else:
            s, k = int(s), int(k)
    q = _round_shift_right(m, s, dst.rounding)
    lo, hi = kept_range(dst)
    if np.ndim(k) == 0 and int(k) == 0:
        over, under = q > hi, q < lo
    else:
        # Compare before shifting so no intermediate exceeds the source: q << k > hi  <=>  q > hi >> k.
        hi_k = _shr(np.full(np.shape(q), hi, dtype=q.dtype), k)
        over, under = q > hi_k, q < _ceil_shr(lo, k, q)
        q = _shl(q, k)
    bad = over | under
    if dst.overflow is Overflow.WRAP:
        out = _wrap(q, dst)
    elif dst.overflow is Overflow.SAT_ZERO:
        out = np.where(bad, 0, q)
    else:
        out = np.where(over, hi, np.where(under, lo, q))
    return as_mantissas(out, dst), np.asarray(bad, dtype=bool)


# ----------------------------------------------------------------------------------------------------------
# public API


@overload
def cast(m: np.ndarray, src: Fixed, dst: Fixed, *, return_overflow: Literal[False] = False) -> np.ndarray: ...
@overload
def cast(
    m: np.ndarray, src: Fixed, dst: Fixed, *, return_overflow: Literal[True]
) -> tuple[np.ndarray, np.ndarray]: ...
def cast(
    m: np.ndarray, src: Fixed, dst: Fixed, *, return_overflow: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``dst_t y = src_value;``: ``ap_fixed_base::operator=`` with ``dst``'s rounding and overflow.

    Args:
        m: mantissas in ``src``.
        src: their format (its own rounding/overflow modes play no part, as in the header, except that an
            identical ``src == dst`` is a bit copy).
        dst: the destination format.
        return_overflow: also return a boolean mask of the elements that were saturated, zeroed or wrapped.

    The result may be ``m`` itself where the cast changes nothing (callers never write into mantissas).
    """
    out, bad = _cast(as_mantissas(m, src), src, dst)
    if not return_overflow:
        return out
    return out, np.zeros(out.shape, dtype=bool) if bad is None else bad


def cast_count(m: np.ndarray, src: Fixed, dst: Fixed) -> tuple[np.ndarray, int]:
    """:func:`cast` and the number of elements saturated, zeroed or wrapped (no mask is made when none)."""
    out, bad = _cast(as_mantissas(m, src), src, dst)
    return out, 0 if bad is None else int(np.count_nonzero(bad))


def overflow_count(q: np.ndarray, dst: Fixed, extremes: tuple[int, int]) -> tuple[np.ndarray, int]:
    """``dst``'s overflow handling of int64 values ``q`` already rounded onto ``dst``'s grid (``extremes``:
    their min and max, known to the caller), and how many elements it changed: the end of a cast whose
    rounding the caller did itself (the float64 dense/conv path)."""
    out, bad = _overflow(q, dst, extremes)
    return out, 0 if bad is None else int(np.count_nonzero(bad))


def _cast(m: np.ndarray, src: Fixed, dst: Fixed) -> tuple[np.ndarray, np.ndarray | None]:
    """``cast`` with the overflow mask, or None where nothing overflowed."""
    if src == dst:
        # Same type: ap_fixed's copy constructor and copy assignment copy the bits (``Base::V = op.V``),
        # bypassing operator=. That differs from requantizing only for SAT_SYM, whose operator= would turn a
        # stored ``min`` (reachable through WRAP arithmetic or raw bits) into ``-max``.
        return m, None
    shift = src.frac_bits - dst.frac_bits
    # A shift that cannot overflow int64: ``m + 2**(shift-1)`` for a source below 63 bits, ``m << -shift``
    # while the result keeps within 63 bits.
    safe = shift == 0 or (shift > 0 and src.width <= 62) or (shift < 0 and src.width - shift <= 63)
    if m.dtype == np.int64 and fits_int64(dst) and dst.rounding in _SHIFT_ROUNDERS and safe:
        # Fast path (almost every cast in a network): a shift and a range check on int64; the result equals
        # _requantize's (tests/unit/test_fast_casts.py checks that bit for bit).
        q = _SHIFT_ROUNDERS[dst.rounding](m, min(shift, 63)) if shift > 0 else m << -shift if shift else m
        return _overflow(q, dst)
    return _requantize(m, max(shift, 0), max(-shift, 0), dst)


def kept_range(dst: Fixed) -> tuple[int, int]:
    """The mantissas that ``dst``'s overflow handling leaves as they are (SAT_SYM: without ``min``)."""
    return _sat_bounds(dst) if dst.overflow is not Overflow.WRAP else (dst.min_mantissa, dst.max_mantissa)


def _overflow(
    q: np.ndarray, dst: Fixed, extremes: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``dst``'s overflow handling of exact, rounded int64 values ``q`` (``extremes``: their min and max).

    Per element only when some value lies outside what ``dst`` keeps; the quantize pass sizes formats so
    that data like the calibration's does not, so usually this is two reductions and nothing else.
    """
    lo, hi = kept_range(dst)
    q = np.asarray(q)  # numpy arithmetic on a 0-d array returns a scalar
    if not q.size:
        return q, None
    lowest, highest = extremes if extremes is not None else (q.min(), q.max())
    if lo <= lowest and highest <= hi:
        return q, None
    bad = (q > hi) | (q < lo)
    if dst.overflow is Overflow.WRAP:
        return _wrap(q, dst), bad
    if dst.overflow is Overflow.SAT_ZERO:
        return np.where(bad, 0, q), bad
    return np.clip(q, lo, hi), bad


_SHIFT_ROUNDERS: dict[Rounding, Callable[[np.ndarray, int], np.ndarray]] = {
    Rounding.TRN: lambda m, s: m >> s,
    Rounding.RND: lambda m, s: (m + (1 << (s - 1))) >> s,
}

# Each mode's rounding of a float64 ``v`` to an integer; exact while ``|v| < 2**51`` (``v +- 0.5`` is
# then exactly representable). They match ``_round_increment``'s rules on the floored value.
_FLOAT_ROUNDERS: dict[Rounding, Callable[[np.ndarray], np.ndarray]] = {
    Rounding.TRN: np.floor,
    Rounding.TRN_ZERO: np.trunc,
    Rounding.RND: lambda v: np.floor(v + 0.5),
    Rounding.RND_MIN_INF: lambda v: np.ceil(v - 0.5),
    Rounding.RND_ZERO: lambda v: np.sign(v) * np.ceil(np.abs(v) - 0.5),
    Rounding.RND_INF: lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5),
    Rounding.RND_CONV: np.rint,
}
_SMALLEST_NORMAL = np.finfo(np.float64).tiny


def _quantize_float32(x: np.ndarray, fmt: Fixed) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``quantize`` of float32 data (the simulator's inputs) in a few float64 passes, or None.

    Every float32, subnormals included, is a normal double, and scaling it by ``2**frac`` is exact in
    float64 for ``|frac| <= 800``; rounding is then exact while ``|v| < 2**51``, which the data's extremes
    show (a NaN or an infinity fails that test and takes the bitwise path).
    """
    if not fits_int64(fmt) or abs(fmt.frac_bits) > 800 or not x.size:
        return None
    v = np.multiply(x, np.float64(2.0**fmt.frac_bits), dtype=np.float64)
    low, high = float(v.min()), float(v.max())
    if not (low > -(2.0**51) and high < 2.0**51):
        return None
    rounding = fmt.rounding
    if rounding is Rounding.RND:
        v += 0.5
        low, high = low + 0.5, high + 0.5
        rounding = Rounding.TRN
    if rounding is Rounding.TRN:
        if low < 0:  # astype truncates toward zero, which is the floor only for non-negative values
            np.floor(v, out=v)
    else:
        v = _FLOAT_ROUNDERS[rounding](v)
    extremes = _FLOAT_ROUNDERS[rounding](np.array([low, high])).astype(np.int64)  # the rounders are monotone
    return _overflow(v.astype(np.int64), fmt, (int(extremes[0]), int(extremes[1])))


def _quantize_fast(x: np.ndarray, fmt: Fixed) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``quantize`` in float64 arithmetic when that is provably exact, else None.

    Exact when every ``x`` is zero or a normal double (the header misreads subnormals), the scaled value
    ``v = x * 2**frac`` is exact (a power-of-two scaling that neither overflows nor goes subnormal) and
    ``|v| < 2**51``. That covers real data at the usual widths and is 10-20x faster than the bitwise path.
    """
    if not fits_int64(fmt) or abs(fmt.frac_bits) > 900:
        return None
    x = np.asarray(x, dtype=np.float64)
    magnitude = np.abs(x)
    with np.errstate(over="ignore", under="ignore"):  # such values fail the test below
        v = np.ldexp(x, fmt.frac_bits)
    scaled = np.abs(v)
    ok = ((magnitude >= _SMALLEST_NORMAL) & (scaled >= 2.0**-900) & (scaled < 2.0**51)) | (x == 0)
    if not ok.all():
        return None
    return _overflow(_FLOAT_ROUNDERS[fmt.rounding](v).astype(np.int64), fmt)


def _decompose_double(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(man, exp, zero)`` with value ``man * 2**(exp - 52)``, as ``ap_fixed_base(double)`` reads the bits.

    The header always sets the implicit bit, so a subnormal ``0.f * 2**-1022`` is read as ``1.f * 2**-1023``,
    an infinity as ``±2**1024`` and a NaN as ``±1.payload * 2**1024`` (with a warning); only ``±0`` is zero.
    Mirroring that keeps even these inputs bit-exact with C simulation.
    """
    raw = np.asarray(x, dtype=np.float64).view(np.uint64)  # same itemsize: a view works on any layout
    frac = (raw & np.uint64((1 << _DOUBLE_MAN) - 1)).astype(np.int64) | np.int64(1 << _DOUBLE_MAN)
    exp = ((raw >> np.uint64(_DOUBLE_MAN)) & np.uint64(0x7FF)).astype(np.int64) - _DOUBLE_BIAS
    man = np.where(raw >> np.uint64(63) != 0, -frac, frac)
    zero = (raw & np.uint64(_I64_MAX)) == 0
    return man, exp, zero


@overload
def quantize(x: np.ndarray, fmt: Fixed, *, return_overflow: Literal[False] = False) -> np.ndarray: ...
@overload
def quantize(
    x: np.ndarray, fmt: Fixed, *, return_overflow: Literal[True]
) -> tuple[np.ndarray, np.ndarray]: ...
def quantize(
    x: np.ndarray, fmt: Fixed, *, return_overflow: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``fmt_t y = (double)x;``: round the exact double onto ``fmt``'s grid, then handle overflow.

    The double's value is exact (53-bit mantissa), so this is :func:`cast` from a per-element format.
    Integer and float32 inputs are converted to float64 first (exact for float32 and for integers below
    ``2**53``), as C++ would when passing them to the ``double`` constructor. ``float`` arguments take the
    same path in the header: ``ap_fixed_base(float d)`` is ``*this = ap_fixed_base(double(d))``.
    NaN and infinities are not rejected: they are read as the header reads them (see
    ``_decompose_double``), e.g. ``+inf`` saturates to the maximum under ``AP_SAT``. Callers that must not
    see NaN should reject it before quantizing.
    """
    out, bad = _quantize(x, fmt)
    if not return_overflow:
        return out
    return out, np.zeros(out.shape, dtype=bool) if bad is None else bad


def quantize_count(x: np.ndarray, fmt: Fixed) -> tuple[np.ndarray, int]:
    """:func:`quantize` and the number of elements saturated, zeroed or wrapped (no mask when none)."""
    out, bad = _quantize(x, fmt)
    return out, 0 if bad is None else int(np.count_nonzero(bad))


QUANTIZE_CHUNK = 1 << 20  # elements that quantize handles at once


def _quantize(x: np.ndarray, fmt: Fixed) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"cannot quantize dtype {x.dtype}")
    if x.size <= QUANTIZE_CHUNK:
        return _quantize_array(x, fmt)
    # Elementwise, so chunk by chunk gives the same result: with the temporaries of one chunk, not of the
    # whole tensor (about ten float64 copies: 8 GB for VGG-19's biggest weight).
    flat = x.reshape(-1)
    out, bad = np.empty(flat.size, mantissa_dtype(fmt)), np.zeros(flat.size, bool)
    for start in range(0, flat.size, QUANTIZE_CHUNK):
        part = slice(start, start + QUANTIZE_CHUNK)
        out[part], part_bad = _quantize_array(flat[part], fmt)
        if part_bad is not None:
            bad[part] = part_bad
    return out.reshape(x.shape), bad.reshape(x.shape)


def _quantize_array(x: np.ndarray, fmt: Fixed) -> tuple[np.ndarray, np.ndarray | None]:
    fast = _quantize_float32(x, fmt) if x.dtype == np.float32 else None
    if fast is None:
        fast = _quantize_fast(x, fmt)
    return fast if fast is not None else _quantize_bits(x, fmt)


def _quantize_bits(x: np.ndarray, fmt: Fixed) -> tuple[np.ndarray, np.ndarray]:
    """``quantize`` from the double's bits, exactly as the header reads them (any input)."""
    man, exp, zero = _decompose_double(x)
    shift = (_DOUBLE_MAN - exp) - fmt.frac_bits  # source frac bits minus destination frac bits
    out, bad = _requantize(man, np.maximum(shift, 0), np.maximum(-shift, 0), fmt)
    out = np.where(zero, 0, out).astype(out.dtype)
    bad &= ~zero
    return out, bad


def _int_to_float(v: int, frac_bits: int) -> float:
    """Correctly rounded ``v * 2**-frac_bits`` (Python's int true division rounds half to even)."""
    try:
        return v / (1 << frac_bits) if frac_bits >= 0 else float(v << -frac_bits)
    except OverflowError:
        return math.copysign(math.inf, v)


_int_to_float_vec = np.frompyfunc(_int_to_float, 2, 1)


def to_float(m: np.ndarray, fmt: Fixed) -> np.ndarray:
    """The values as float64: exact when the mantissa has <= 53 significant bits, else rounded.

    Rounding is to nearest, ties to even, which is what ``ap_fixed_base::to_double`` implements (it
    ignores the FP environment). int64 mantissas go through ``int64 -> float64`` (rounds to nearest even)
    and an exact ``ldexp``; results in the subnormal range may be rounded twice, and the header does not
    handle that range either. Object mantissas are converted one by one with Python's correctly rounded
    division; magnitudes beyond float64 become ``±inf``.
    """
    m = as_mantissas(m, fmt)
    if m.dtype == object:
        return _int_to_float_vec(m, fmt.frac_bits).astype(np.float64)
    return np.ldexp(m.astype(np.float64), -fmt.frac_bits)


def _int_bits_for(a: Fixed, b: Fixed) -> int:
    """``AP_MAX(_AP_I + (_AP_S2 && !_AP_S), _AP_I2 + (_AP_S && !_AP_S2))``: an unsigned operand gains a
    sign bit when the other operand is signed."""
    return max(a.int_bits + (b.signed and not a.signed), b.int_bits + (a.signed and not b.signed))


def add_format(a: Fixed, b: Fixed) -> Fixed:
    """``RType::plus`` of ``ap_fixed_base``: the exact type of ``a + b`` (TRN/WRAP, as ``ap_fixed<W,I>``)."""
    i = _int_bits_for(a, b) + 1
    return Fixed(i + max(a.frac_bits, b.frac_bits), i, a.signed or b.signed)


def sub_format(a: Fixed, b: Fixed) -> Fixed:
    """``RType::minus``: like :func:`add_format` but always signed (``minus_s = true``)."""
    i = _int_bits_for(a, b) + 1
    return Fixed(i + max(a.frac_bits, b.frac_bits), i, True)


def mul_format(a: Fixed, b: Fixed) -> Fixed:
    """``RType::mult``: widths and integer bits add, signed if either operand is."""
    return Fixed(a.width + b.width, a.int_bits + b.int_bits, a.signed or b.signed)


def _operands(
    ma: np.ndarray, a: Fixed, mb: np.ndarray, b: Fixed, res: Fixed
) -> tuple[np.ndarray, np.ndarray]:
    """Both operands in one dtype: int64 only if the exact result fits (then every operand does too)."""
    ma, mb = as_mantissas(ma, a), as_mantissas(mb, b)
    if fits_int64(res) and ma.dtype == np.int64 and mb.dtype == np.int64:
        return ma, mb
    return _to_object(ma), _to_object(mb)


def _align(m: np.ndarray, from_frac: int, to_frac: int) -> np.ndarray:
    return m if from_frac == to_frac else _shl(m, to_frac - from_frac)


def _add_or_sub(
    ma: np.ndarray, a: Fixed, mb: np.ndarray, b: Fixed, dst: Fixed | None, res: Fixed, sign: int
) -> tuple[np.ndarray, Fixed]:
    """Both operands shifted onto the result's LSB, then added: exact, as ``ret.V = lhs.V + rhs.V`` is
    after the header converts both operands to the (wide enough) ``plus_base``/``minus_base`` type."""
    ma, mb = _operands(ma, a, mb, b, res)
    f = res.frac_bits
    out = _align(ma, a.frac_bits, f) + sign * _align(mb, b.frac_bits, f)
    return (out, res) if dst is None else (cast(out, res, dst), dst)


def add(
    ma: np.ndarray, a: Fixed, mb: np.ndarray, b: Fixed, dst: Fixed | None = None
) -> tuple[np.ndarray, Fixed]:
    """``a + b`` in :func:`add_format` (always exact: the header's plus type has room for the carry).

    With ``dst``, returns ``dst_t y = a + b;`` i.e. the exact sum cast into ``dst``; ``acc += x`` is the same
    with ``dst = acc``'s format (``operator+=`` is ``*this = operator+(op2)``). For an overflow mask, call
    :func:`cast` with ``return_overflow=True`` on the exact result instead.
    """
    return _add_or_sub(ma, a, mb, b, dst, add_format(a, b), 1)


def sub(
    ma: np.ndarray, a: Fixed, mb: np.ndarray, b: Fixed, dst: Fixed | None = None
) -> tuple[np.ndarray, Fixed]:
    """``a - b`` in :func:`sub_format` (exact), or cast into ``dst`` when given."""
    return _add_or_sub(ma, a, mb, b, dst, sub_format(a, b), -1)


def mul(
    ma: np.ndarray, a: Fixed, mb: np.ndarray, b: Fixed, dst: Fixed | None = None
) -> tuple[np.ndarray, Fixed]:
    """``a * b`` in :func:`mul_format` (exact: the product of W1- and W2-bit integers fits W1+W2 bits).

    With ``dst``, returns ``dst_t y = a * b;``.
    """
    res = mul_format(a, b)
    ma, mb = _operands(ma, a, mb, b, res)
    out = ma * mb
    return (out, res) if dst is None else (cast(out, res, dst), dst)
