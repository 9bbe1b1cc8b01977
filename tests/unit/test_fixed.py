"""Fast checks of ``fpgac.ir.fixed``: hand-worked values, a rational reference, int64 vs object paths.

The bit-exact proof against ``ap_fixed.h`` itself is ``tests/exact/test_fixed_vs_apfixed.py``; these tests
need no compiler and pin the semantics in readable numbers.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpgac.ir import fixed as fx
from fpgac.ir.types import Fixed, Overflow, Rounding

HALVES = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.25, 1.75]
ROUNDED = {
    Rounding.TRN: [-3, -2, -1, 0, 1, 2, -2, 1],
    Rounding.TRN_ZERO: [-2, -1, 0, 0, 1, 2, -1, 1],
    Rounding.RND: [-2, -1, 0, 1, 2, 3, -1, 2],
    Rounding.RND_ZERO: [-2, -1, 0, 0, 1, 2, -1, 2],
    Rounding.RND_MIN_INF: [-3, -2, -1, 0, 1, 2, -1, 2],
    Rounding.RND_INF: [-3, -2, -1, 1, 2, 3, -1, 2],
    Rounding.RND_CONV: [-2, -2, 0, 0, 2, 2, -1, 2],
}


@pytest.mark.parametrize("rounding", list(Rounding))
def test_rounding_modes_by_hand(rounding: Rounding) -> None:
    fmt = Fixed(8, 8, True, rounding)
    assert fx.quantize(np.array(HALVES), fmt).tolist() == ROUNDED[rounding]
    # The same through a cast: mantissas of ap_fixed<8,7> are the values times two.
    src = Fixed(8, 7)
    assert fx.cast(np.array([int(2 * v) for v in HALVES[:6]]), src, fmt).tolist() == ROUNDED[rounding][:6]


SIGNED_IN = [9, -9, 8, -8, 7, 20]
SIGNED_OUT = {
    Overflow.WRAP: ([-7, 7, -8, -8, 7, 4], [1, 1, 1, 0, 0, 1]),
    Overflow.SAT: ([7, -8, 7, -8, 7, 7], [1, 1, 1, 0, 0, 1]),
    Overflow.SAT_ZERO: ([0, 0, 0, -8, 7, 0], [1, 1, 1, 0, 0, 1]),
    Overflow.SAT_SYM: ([7, -7, 7, -7, 7, 7], [1, 1, 1, 1, 0, 1]),
}
UNSIGNED_IN = [16, -1, 15, 0, 17, -3]
UNSIGNED_OUT = {
    Overflow.WRAP: [0, 15, 15, 0, 1, 13],
    Overflow.SAT: [15, 0, 15, 0, 15, 0],
    Overflow.SAT_ZERO: [0, 0, 15, 0, 0, 0],
    Overflow.SAT_SYM: [15, 0, 15, 0, 15, 0],
}


@pytest.mark.parametrize("overflow", list(Overflow))
def test_overflow_modes_by_hand(overflow: Overflow) -> None:
    fmt = Fixed(4, 4, True, Rounding.TRN, overflow)
    got, bad = fx.quantize(np.array(SIGNED_IN, dtype=float), fmt, return_overflow=True)
    assert got.tolist() == SIGNED_OUT[overflow][0]
    assert bad.astype(int).tolist() == SIGNED_OUT[overflow][1]
    ufmt = Fixed(4, 4, False, Rounding.TRN, overflow)
    assert fx.quantize(np.array(UNSIGNED_IN, dtype=float), ufmt).tolist() == UNSIGNED_OUT[overflow]
    wide = Fixed(16, 16)
    assert fx.cast(np.array(UNSIGNED_IN), wide, ufmt).tolist() == UNSIGNED_OUT[overflow]


def test_one_bit_sat_sym_keeps_minus_one() -> None:
    """``overflow_adjust`` writes ``min | 1``, which for W = 1 is ``min`` itself."""
    fmt = Fixed(1, 1, True, Rounding.TRN, Overflow.SAT_SYM)
    assert fx.quantize(np.array([-1.0, -7.0, 0.0, 3.0]), fmt).tolist() == [-1, -1, 0, 0]


def test_same_type_cast_is_a_bit_copy() -> None:
    """``ap_fixed``'s copy constructor copies bits; operator= from another type applies SAT_SYM."""
    sym = Fixed(6, 2, True, Rounding.RND, Overflow.SAT_SYM)
    assert fx.cast(np.array([-32, 5]), sym, sym).tolist() == [-32, 5]
    assert fx.cast(np.array([-32, 5]), Fixed(6, 2), sym).tolist() == [-31, 5]


def test_result_formats_follow_rtype() -> None:
    s, u = Fixed(8, 4), Fixed(6, 2, False)
    assert fx.add_format(s, u) == Fixed(9, 5, True)  # the unsigned side gains a sign bit: max(4, 3) + 1
    assert fx.sub_format(u, u) == Fixed(7, 3, True)
    assert fx.add_format(u, u) == Fixed(7, 3, False)
    assert fx.mul_format(s, u) == Fixed(14, 6, True)
    assert fx.add_format(Fixed(4, -2), Fixed(3, 5)) == Fixed(12, 6)


def test_add_and_mul_are_exact_then_cast() -> None:
    a, b = Fixed(8, 4), Fixed(6, 2, False)  # lsb 1/16 for both
    m, fmt = fx.add(np.array([-128, 127]), a, np.array([63, 63]), b)
    assert fmt == Fixed(9, 5) and m.tolist() == [-65, 190]
    m, fmt = fx.mul(np.array([-128, 3]), a, np.array([63, 5]), b)
    assert fmt == Fixed(14, 6) and m.tolist() == [-8064, 15]
    dst = Fixed(4, 4, True, Rounding.RND, Overflow.SAT)
    m, fmt = fx.add(np.array([-128, 8]), a, np.array([0, 8]), b, dst)
    assert fmt == dst and m.tolist() == [-8, 1]
    m, _ = fx.sub(np.array([0]), b, np.array([63]), b)
    assert m.tolist() == [-63]


def test_int64_edges_at_64_bits() -> None:
    s64 = Fixed(64, 64, True, Rounding.RND, Overflow.SAT)
    got = fx.quantize(np.array([2.0**63, -(2.0**63), -(2.0**64), 2.0**62 + 0.5]), s64)
    assert got.dtype == np.int64
    assert got.tolist() == [2**63 - 1, -(2**63), -(2**63), 2**62]
    wrap = Fixed(64, 64)
    assert fx.quantize(np.array([2.0**63, 2.0**64 + 2.0**12]), wrap).tolist() == [-(2**63), 2**12]
    u64 = Fixed(64, 64, False, Rounding.TRN, Overflow.SAT)
    got = fx.quantize(np.array([2.0**64 - 2048, 2.0**64, -1.0]), u64)
    assert got.dtype == object and got.tolist() == [2**64 - 2048, 2**64 - 1, 0]
    u63 = Fixed(63, 63, False, Rounding.TRN, Overflow.WRAP)
    assert fx.quantize(np.array([2.0**63 + 2.0**20]), u63).tolist() == [2**20]
    # cast 64 -> 64 bits with rounding at the very bottom and saturation at the very top
    src, dst = Fixed(64, 0), Fixed(64, 1, True, Rounding.RND_CONV, Overflow.SAT)
    m = np.array([2**63 - 1, -(2**63), 3, -3, 1], dtype=np.int64)
    assert fx.cast(m, src, dst).tolist() == [2**62, -(2**62), 2, -2, 0]


def test_wider_than_64_bits_is_exact() -> None:
    fmt = Fixed(200, 120, True, Rounding.RND_CONV, Overflow.SAT)
    x = np.array([1e30, -1e30, 2.0**-80, 3.0 * 2.0**-81, 1e300])
    m = fx.quantize(x, fmt)
    assert m.dtype == object
    assert m.tolist()[:4] == [int(1e30) << 80, -(int(1e30) << 80), 1, 2]
    assert m[4] == fmt.max_mantissa
    assert fx.to_float(m[:2], fmt).tolist() == [1e30, -1e30]
    acc, acc_fmt = fx.mul(np.array([2**63 - 1]), Fixed(64, 1), np.array([2**63 - 1]), Fixed(64, 1))
    assert acc_fmt.width == 128 and acc.tolist() == [(2**63 - 1) ** 2]


def test_non_finite_inputs_follow_the_header() -> None:
    """``ap_fixed_base(double)`` reads inf as 2**1024 and NaN as 1.payload * 2**1024; it does not crash."""
    sat = Fixed(8, 4, True, Rounding.TRN, Overflow.SAT)
    assert fx.quantize(np.array([np.inf, -np.inf, np.nan]), sat).tolist() == [127, -128, 127]
    assert fx.quantize(np.array([np.inf, np.nan]), Fixed(8, 4)).tolist() == [0, 0]  # WRAP of 2**1024


def test_to_float_rounds_half_even_past_53_bits() -> None:
    fmt = Fixed(64, 64)
    m = np.array([2**53 + 1, 2**53 + 3, -(2**53) - 1], dtype=np.int64)
    assert fx.to_float(m, fmt).tolist() == [2.0**53, 2.0**53 + 4, -(2.0**53)]
    assert fx.to_float(np.array([3]), Fixed(8, 2)).tolist() == [3 / 64]


# ----------------------------------------------------------------------------------------------------------
# a rational reference, written from the mode definitions rather than the header's bit tricks


def _ref_round(t: Fraction, rounding: Rounding) -> int:
    fl, tie = math.floor(t), t - math.floor(t) == Fraction(1, 2)
    nearest = math.floor(t + Fraction(1, 2))  # ties up
    rules = {
        Rounding.TRN: fl,
        Rounding.TRN_ZERO: math.trunc(t),
        Rounding.RND: nearest,
        Rounding.RND_ZERO: (fl if t > 0 else fl + 1) if tie else nearest,
        Rounding.RND_MIN_INF: fl if tie else nearest,
        Rounding.RND_INF: (fl + 1 if t > 0 else fl) if tie else nearest,
        Rounding.RND_CONV: round(t),  # Fraction rounds half to even
    }
    return rules[rounding]


def _ref_overflow(q: int, fmt: Fixed) -> tuple[int, bool]:
    lo, hi = fmt.min_mantissa, fmt.max_mantissa
    if fmt.overflow is Overflow.SAT_SYM and fmt.signed and fmt.width > 1:
        lo += 1
    if fmt.overflow is Overflow.WRAP:
        wrapped = (q - fmt.min_mantissa) % (1 << fmt.width) + fmt.min_mantissa
        return wrapped, not fmt.min_mantissa <= q <= fmt.max_mantissa
    if lo <= q <= hi:
        return q, False
    if fmt.overflow is Overflow.SAT_ZERO:
        return 0, True
    return (hi if q > hi else lo), True


def _reference(value: Fraction, fmt: Fixed) -> tuple[int, bool]:
    return _ref_overflow(_ref_round(value * Fraction(2) ** fmt.frac_bits, fmt.rounding), fmt)


formats = st.integers(1, 100).flatmap(
    lambda w: st.builds(
        Fixed,
        st.just(w),
        st.integers(-12, w + 12),
        st.booleans(),
        st.sampled_from(list(Rounding)),
        st.sampled_from(list(Overflow)),
    )
)


@settings(max_examples=300, deadline=None)
@given(fmt=formats, xs=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), max_size=12))
def test_quantize_matches_rational_reference(fmt: Fixed, xs: list[float]) -> None:
    got, bad = fx.quantize(np.array(xs, dtype=np.float64), fmt, return_overflow=True)
    want = [_reference(Fraction(x), fmt) for x in xs]
    assert got.tolist() == [w[0] for w in want]
    assert bad.tolist() == [w[1] for w in want]


@settings(max_examples=300, deadline=None)
@given(src=formats, dst=formats, data=st.data())
def test_cast_matches_rational_reference(src: Fixed, dst: Fixed, data: st.DataObject) -> None:
    ms = data.draw(st.lists(st.integers(src.min_mantissa, src.max_mantissa), max_size=12))
    got, bad = fx.cast(fx.as_mantissas(np.array(ms, dtype=object), src), src, dst, return_overflow=True)
    want = [_reference(Fraction(m, 1) / Fraction(2) ** src.frac_bits, dst) for m in ms]
    if src == dst:  # ap_fixed's copy assignment copies the bits: a SAT_SYM min stays min
        want = [(m, False) for m in ms]
    assert got.tolist() == [w[0] for w in want]
    assert bad.tolist() == [w[1] for w in want]


@settings(max_examples=200, deadline=None)
@given(src=formats, dst=formats, data=st.data())
def test_int64_and_object_paths_agree(src: Fixed, dst: Fixed, data: st.DataObject) -> None:
    """The same requantization on int64 and on Python ints, wherever both can hold the mantissas."""
    if not (fx.fits_int64(src) and fx.fits_int64(dst)):
        return
    ms = data.draw(st.lists(st.integers(src.min_mantissa, src.max_mantissa), min_size=1, max_size=12))
    shift = src.frac_bits - dst.frac_bits
    s, k = max(shift, 0), max(-shift, 0)
    via_i64 = fx._requantize(np.array(ms, dtype=np.int64), s, k, dst)
    via_obj = fx._requantize(np.array(ms, dtype=object), s, k, dst)
    assert via_i64[0].dtype == via_obj[0].dtype == np.int64
    assert via_i64[0].tolist() == via_obj[0].tolist()
    assert via_i64[1].tolist() == via_obj[1].tolist()


@settings(max_examples=150, deadline=None)
@given(a=formats, b=formats, data=st.data())
def test_add_sub_mul_match_exact_rationals(a: Fixed, b: Fixed, data: st.DataObject) -> None:
    ma = data.draw(st.lists(st.integers(a.min_mantissa, a.max_mantissa), min_size=1, max_size=6))
    mb = data.draw(st.lists(st.integers(b.min_mantissa, b.max_mantissa), min_size=len(ma), max_size=len(ma)))
    va = [Fraction(m) / Fraction(2) ** a.frac_bits for m in ma]
    vb = [Fraction(m) / Fraction(2) ** b.frac_bits for m in mb]
    for func, op in (
        (fx.add, lambda x, y: x + y),
        (fx.sub, lambda x, y: x - y),
        (fx.mul, lambda x, y: x * y),
    ):
        got, fmt = func(fx.as_mantissas(np.array(ma, dtype=object), a), a, np.array(mb, dtype=object), b)
        exact = [op(x, y) * Fraction(2) ** fmt.frac_bits for x, y in zip(va, vb, strict=True)]
        assert [Fraction(g) for g in got.tolist()] == exact
        assert all(fmt.min_mantissa <= g <= fmt.max_mantissa for g in got.tolist())


# -- fast paths ------------------------------------------------------------------------------------------
# quantize and cast take float64 / add-and-shift shortcuts where those are exact. The g++ proof feeds
# adversarial batches that mostly take the bitwise path, so here the shortcuts are held to it directly.


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(1, 62),
    int_bits=st.integers(-8, 70),
    signed=st.booleans(),
    rounding=st.sampled_from(list(Rounding)),
    overflow=st.sampled_from(list(Overflow)),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_quantize_matches_bitwise(width, int_bits, signed, rounding, overflow, seed) -> None:
    from fpgac.ir.fixed import _quantize_bits, _quantize_fast

    fmt = Fixed(width, int_bits, signed, rounding, overflow)
    rng = np.random.default_rng(seed)
    lsb = 2.0**-fmt.frac_bits
    scale = 2.0 ** (int_bits + 1)
    span = min(width + 2, 60)
    values = np.concatenate(
        [
            rng.standard_normal(200) * scale,
            (rng.integers(-(2**span), 2**span, 200) + 0.5) * lsb,  # exact ties
            rng.integers(-(2**span), 2**span, 100) * lsb,  # exactly representable (and overflow)
            [0.0, -0.0],
        ]
    )
    fast = _quantize_fast(values, fmt)
    if fast is None:
        return
    slow = _quantize_bits(values, fmt)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


@settings(max_examples=300, deadline=None)
@given(
    src_width=st.integers(2, 62),
    src_int=st.integers(-4, 40),
    dst_width=st.integers(1, 62),
    drop=st.integers(1, 61),
    signed=st.booleans(),
    rounding=st.sampled_from([Rounding.TRN, Rounding.RND]),
    overflow=st.sampled_from(list(Overflow)),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_cast_matches_general(
    src_width, src_int, dst_width, drop, signed, rounding, overflow, seed
) -> None:
    from fpgac.ir.fixed import _requantize, cast

    src = Fixed(src_width, src_int, True)
    dst_frac = src.frac_bits - drop
    dst = Fixed(dst_width, dst_width - dst_frac, signed, rounding, overflow)
    m = np.random.default_rng(seed).integers(src.min_mantissa, src.max_mantissa + 1, 500, dtype=np.int64)
    m[:2] = [src.min_mantissa, src.max_mantissa]
    fast = cast(m, src, dst, return_overflow=True)
    general = _requantize(m, drop, 0, dst)
    assert np.array_equal(fast[0], general[0]) and np.array_equal(fast[1], general[1])
