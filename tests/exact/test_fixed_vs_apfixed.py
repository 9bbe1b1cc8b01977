"""``fpgac.ir.fixed`` against ``ap_fixed.h`` compiled by g++: zero mismatches, bit for bit.

Each batch of cases becomes one C++ translation unit (compiling the ap_fixed headers costs about a second,
each distinct instantiation a few milliseconds more), compiled once with g++ and cached by content hash in
the temp dir. Inputs go in and results come out as raw bit patterns in hex, so nothing is rounded on the way:
mantissas up to the 145-bit sums that 64-bit operands with far-apart binary points produce, and the float64
bits of ``to_double()``.

The headers are the ones hls4ml ships (``hls4ml/templates/vivado/ap_types``), found at run time; the test
skips only if hls4ml or g++ is missing.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpgac.backends.vitis.csim import CsimError, ap_types_dir
from fpgac.ir import fixed as fx
from fpgac.ir.types import Fixed, Overflow, Rounding

pytestmark = pytest.mark.slow

GXX = shutil.which("g++")
# NDEBUG: ap_fixed_base::operator= reads ``qbit = op.V[F2 - F - 1]`` even when that index is past the
# source's MSB (it then uses the sign bit instead), and ap_private's get_bit asserts on it. With assertions
# on, such a cast (rounding mode other than TRN, right shift > source width) aborts the C simulation; with
# NDEBUG the read is discarded and the result is the sign-extended one that fpgac.ir.fixed computes.
CXXFLAGS = ["-O1", "-std=c++14", "-w", "-DNDEBUG"]


def _ap_types_dir() -> Path | None:
    try:
        return ap_types_dir()
    except CsimError:
        return None


AP_TYPES = _ap_types_dir()
_MISSING = "hls4ml is not installed" if AP_TYPES is None else "g++ is not installed" if GXX is None else None
if _MISSING and os.environ.get("CI"):  # the oracle must never be skipped silently where it matters
    pytest.fail(f"{_MISSING}: the ap_fixed proof cannot run (install the 'test' extra)", pytrace=False)
if _MISSING:
    pytest.skip(f"{_MISSING}: no ap_fixed.h headers to compare against", allow_module_level=True)


# ----------------------------------------------------------------------------------------------------------
# cases


@dataclass(frozen=True)
class Quantize:
    """``dst y = (double)x`` for each x."""

    dst: Fixed
    values: tuple[float, ...]


@dataclass(frozen=True)
class Cast:
    """``dst y = src_value`` for each source mantissa."""

    src: Fixed
    dst: Fixed
    mantissas: tuple[int, ...]


@dataclass(frozen=True)
class Binary:
    """``auto r = a OP b; dst y = a OP b;`` for each pair of mantissas."""

    op: str  # "+", "-", "*"
    a: Fixed
    b: Fixed
    dst: Fixed
    pairs: tuple[tuple[int, int], ...]


Case = Quantize | Cast | Binary

_PRELUDE = r"""
#include <ap_fixed.h>
#include <cstdio>
#include <cstring>
typedef unsigned long long u64;
template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
static void put(const ap_fixed_base<W, I, S, Q, O, N>& x) {
  ap_int_base<W, false> u; u.V = x.V;
  printf("%s ", u.V.to_string(16, false).c_str());
}
template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
static void put_type(const ap_fixed_base<W, I, S, Q, O, N>&) { printf("T %d %d %d\n", W, I, (int)S); }
static void put_double(double d) { u64 b; memcpy(&b, &d, 8); printf("%llx ", b); }
static u64 get() { u64 b = 0; if (scanf("%llx", &b) != 1) { fprintf(stderr, "short input\n"); } return b; }
static double get_double() { u64 b = get(); double d; memcpy(&d, &b, 8); return d; }
"""


def _cpp_case(i: int, case: Case) -> str:
    """One function per case; it reads its own inputs from stdin and prints one line per element."""
    if isinstance(case, Quantize):
        body = f"{case.dst.ap_type()} y = get_double(); put(y); put_double(y.to_double());"
        n = len(case.values)
    elif isinstance(case, Cast):
        body = f"{case.src.ap_type()} x; x.setBits(get()); {case.dst.ap_type()} y = x; put(y);"
        body += " put_double(y.to_double());"
        n = len(case.mantissas)
    else:
        body = (
            f"{case.a.ap_type()} a; a.setBits(get()); {case.b.ap_type()} b; b.setBits(get());"
            f" auto r = a {case.op} b; {case.dst.ap_type()} y = a {case.op} b; put(r); put(y);"
            ' if (k == 0) { printf("\\n"); put_type(r); continue; }'
        )
        n = len(case.pairs)
    return f'static void case_{i}() {{\n  for (int k = 0; k < {n}; ++k) {{ {body} printf("\\n"); }}\n}}\n'


def _cpp_source(cases: list[Case]) -> str:
    funcs = "".join(_cpp_case(i, c) for i, c in enumerate(cases))
    calls = "".join(f"  case_{i}();\n" for i in range(len(cases)))
    return f"{_PRELUDE}\n{funcs}\nint main() {{\n{calls}  return 0;\n}}\n"


def _bits(m: int) -> str:
    return format(m & ((1 << 64) - 1), "x")


def _stdin(cases: list[Case]) -> str:
    words: list[str] = []
    for case in cases:
        if isinstance(case, Quantize):
            words += [format(struct.unpack("<Q", struct.pack("<d", v))[0], "x") for v in case.values]
        elif isinstance(case, Cast):
            words += [_bits(m) for m in case.mantissas]
        else:
            words += [_bits(x) for pair in case.pairs for x in pair]
    return "\n".join(words) + "\n"


def _compile(source: str) -> Path:
    """The binary for ``source``, compiled at most once per content (cached in the temp dir)."""
    key = hashlib.sha256("\0".join([source, *CXXFLAGS, str(AP_TYPES), GXX or ""]).encode()).hexdigest()[:24]
    cache = Path(tempfile.gettempdir()) / "fpgac-apfixed-cache"
    cache.mkdir(exist_ok=True)
    exe = cache / f"t{key}"
    if exe.exists():
        return exe
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src = Path(tmp) / "t.cpp"
        src.write_text(source)
        out = Path(tmp) / "t"
        proc = subprocess.run(
            [GXX, *CXXFLAGS, f"-I{AP_TYPES}", str(src), "-o", str(out)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise AssertionError(f"g++ failed:\n{proc.stderr[-4000:]}")
        os.replace(out, exe)  # atomic: a parallel run sees a whole binary or none
    return exe


def run_cpp(cases: list[Case]) -> list[list[str]]:
    """Compile and run the batch; one token list per printed line (``T w i s`` lines carry types)."""
    exe = _compile(_cpp_source(cases))
    proc = subprocess.run([str(exe)], input=_stdin(cases), capture_output=True, text=True, check=True)
    return [line.split() for line in proc.stdout.splitlines()]


# ----------------------------------------------------------------------------------------------------------
# comparison


def _signed(raw: str, fmt: Fixed) -> int:
    v = int(raw, 16)
    return v - (1 << fmt.width) if fmt.signed and v >> (fmt.width - 1) else v


def _float_bits(x: float) -> str:
    return format(struct.unpack("<Q", struct.pack("<d", x))[0], "x")


def _check_values(label: str, got: np.ndarray, fmt: Fixed, raws: list[str], inputs: list) -> list[str]:
    want = [_signed(r, fmt) for r in raws]
    return [
        f"{label}: input {x!r} -> ours {int(g)} != ap_fixed {w}"
        for x, g, w in zip(inputs, got.tolist(), want, strict=True)
        if int(g) != w
    ]


def _check_floats(label: str, m: np.ndarray, fmt: Fixed, raws: list[str]) -> list[str]:
    ours = [_float_bits(v) for v in fx.to_float(m, fmt).tolist()]
    return [
        f"{label}: to_double of mantissa {int(x)}: ours {o} != ap_fixed {r}"
        for x, o, r in zip(m.tolist(), ours, raws, strict=True)
        if o != r
    ]


def compare(cases: list[Case], lines: list[list[str]]) -> list[str]:
    """All mismatches between our functions and the C++ output, as readable lines."""
    errors: list[str] = []
    it = iter(lines)
    for case in cases:
        if isinstance(case, (Quantize, Cast)):
            rows = [next(it) for _ in (case.values if isinstance(case, Quantize) else case.mantissas)]
            if isinstance(case, Quantize):
                label, inputs = f"quantize to {case.dst}", list(case.values)
                got = fx.quantize(np.array(inputs, dtype=np.float64), case.dst)
            else:
                label, inputs = f"cast {case.src} -> {case.dst}", list(case.mantissas)
                got = fx.cast(fx.as_mantissas(np.array(inputs, dtype=object), case.src), case.src, case.dst)
            errors += _check_values(label, got, case.dst, [r[0] for r in rows], inputs)
            errors += _check_floats(label, got, case.dst, [r[1] for r in rows])
            continue
        errors += _compare_binary(case, it)
    return errors


_OPS = {"+": (fx.add, fx.add_format), "-": (fx.sub, fx.sub_format), "*": (fx.mul, fx.mul_format)}


def _compare_binary(case: Binary, it: Iterator[list[str]]) -> list[str]:
    func, rtype = _OPS[case.op]
    res = rtype(case.a, case.b)
    rows = [next(it)]
    _, w, i, s = next(it)  # the result type, printed after the first row
    rows += [next(it) for _ in case.pairs[1:]]
    if (int(w), int(i), bool(int(s))) != (res.width, res.int_bits, res.signed):
        return [f"{case.a} {case.op} {case.b}: ours {res} != ap_fixed <{w},{i},signed={s}>"]
    ma = fx.as_mantissas(np.array([p[0] for p in case.pairs], dtype=object), case.a)
    mb = fx.as_mantissas(np.array([p[1] for p in case.pairs], dtype=object), case.b)
    full, fmt = func(ma, case.a, mb, case.b)
    into, _ = func(ma, case.a, mb, case.b, case.dst)
    label = f"{case.a} {case.op} {case.b}"
    pairs = list(case.pairs)
    return _check_values(label, full, fmt, [r[0] for r in rows], pairs) + _check_values(
        f"{label} -> {case.dst}", into, case.dst, [r[1] for r in rows], pairs
    )


def assert_exact(cases: list[Case]) -> None:
    errors = compare(cases, run_cpp(cases))
    assert not errors, f"{len(errors)} mismatches, first ones:\n" + "\n".join(errors[:25])


# ----------------------------------------------------------------------------------------------------------
# adversarial inputs


ROUNDINGS = list(Rounding)
OVERFLOWS = list(Overflow)


def random_format(rng: random.Random) -> Fixed:
    """W in 1..64 (biased to the ends), I in -8..W+8, any sign and modes."""
    w = rng.choice([1, 2, 3, 7, 8, 16, 31, 32, 33, 52, 53, 54, 62, 63, 64, rng.randint(1, 64)])
    return Fixed(
        w,
        rng.randint(-8, w + 8),
        rng.random() < 0.6,
        rng.choice(ROUNDINGS),
        rng.choice(OVERFLOWS),
    )


def near_format(
    rng: random.Random, src: Fixed, signed: bool, rounding: Rounding, overflow: Overflow
) -> Fixed:
    """A destination a few bits off ``src`` on either end, where rounding and overflow both happen."""
    w = max(1, min(64, src.width + rng.randint(-6, 3)))
    frac = src.frac_bits + rng.randint(-5, 3)
    return Fixed(w, w - frac, signed, rounding, overflow)


def edge_mantissas(rng: random.Random, fmt: Fixed, shift: int, n: int) -> list[int]:
    """Extremes, neighbours of the rounding boundary ``2**shift`` (ties, just above/below), random bits."""
    lo, hi = fmt.min_mantissa, fmt.max_mantissa
    picks = {lo, hi, 0, min(hi, 1), max(lo, -1), lo + 1 if lo < hi else lo, hi - 1 if hi > lo else hi}
    if shift > 0:
        half = 1 << (shift - 1)
        for q in (0, 1, 2, -1, -2, 3, hi >> shift, lo >> shift, (hi >> shift) - 1, (lo >> shift) + 1):
            for d in (-1, 0, 1):
                picks.add((q << shift) + half + d)
            picks.add(q << shift)
    picks = {m for m in picks if lo <= m <= hi}
    while len(picks) < min(n, hi - lo + 1):
        picks.add(rng.randint(lo, hi))
    return sorted(picks)


def edge_doubles(rng: random.Random, fmt: Fixed, n: int) -> list[float]:
    """Ties at the LSB, the range edges, tiny, huge, non-finite and random doubles for ``fmt``."""
    f = fmt.frac_bits
    vals = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 5e-324, -5e-324, 1e300, -1e300]
    for k in (0, 1, 2, 3, -1, -2, -3, 5, -7):
        vals.append(np.ldexp(2 * k + 1, -f - 1))  # exact ties
        vals.append(np.ldexp(4 * k + 1, -f - 2))  # just above a multiple
    for m in (fmt.max_mantissa, fmt.min_mantissa, fmt.max_mantissa + 1, fmt.min_mantissa - 1):
        for d in (-0.5, 0.0, 0.5, 0.25):
            vals.append(float(np.ldexp(float(m) + d, -f)))
    while len(vals) < n:
        e = rng.randint(-f - 6, fmt.int_bits + 4)
        vals.append(float(np.ldexp(rng.uniform(-1, 1), e)))
    return [float(v) for v in vals]


def edge_pairs(rng: random.Random, a: Fixed, b: Fixed, n: int) -> list[tuple[int, int]]:
    ea, eb = edge_mantissas(rng, a, 0, 8), edge_mantissas(rng, b, 0, 8)
    pairs = {(x, y) for x in ea[:4] + ea[-4:] for y in eb[:3] + eb[-3:]}
    while len(pairs) < min(n, (a.max_mantissa - a.min_mantissa + 1) * (b.max_mantissa - b.min_mantissa + 1)):
        pairs.add((rng.randint(a.min_mantissa, a.max_mantissa), rng.randint(b.min_mantissa, b.max_mantissa)))
    return sorted(pairs)


def mode_cases(
    rng: random.Random, pool: list[Fixed], signed: bool, rounding: Rounding, overflow: Overflow
) -> list[Case]:
    """Four cases whose destinations have the given sign and modes: quantize, two casts, one binary op.

    Operands come from a shared ``pool``: every distinct ap_fixed type costs g++ about 0.1 s to instantiate,
    so sharing source types is what lets hundreds of cases compile in seconds.
    """
    src = rng.choice(pool)
    dst = near_format(rng, src, signed, rounding, overflow)
    other = rng.choice(pool)
    a, b = rng.choice(pool), rng.choice(pool)
    op = rng.choice("+-*")
    res = {"+": fx.add_format, "-": fx.sub_format, "*": fx.mul_format}[op](a, b)
    into = near_format(rng, Fixed(min(res.width, 64), res.int_bits), signed, rounding, overflow)
    return [
        Quantize(dst, tuple(edge_doubles(rng, dst, 40))),
        Cast(src, dst, tuple(edge_mantissas(rng, src, src.frac_bits - dst.frac_bits, 30))),
        Cast(other, dst, tuple(edge_mantissas(rng, other, other.frac_bits - dst.frac_bits, 20))),
        Binary(op, a, b, into, tuple(edge_pairs(rng, a, b, 30))),
    ]


_widths = st.one_of(st.sampled_from([1, 2, 8, 16, 31, 32, 33, 52, 53, 54, 62, 63, 64]), st.integers(1, 64))
fixed_formats = _widths.flatmap(
    lambda w: st.builds(
        Fixed,
        st.just(w),
        st.integers(-8, w + 8),
        st.booleans(),
        st.sampled_from(ROUNDINGS),
        st.sampled_from(OVERFLOWS),
    )
)
mode_combos = st.tuples(st.booleans(), st.sampled_from(ROUNDINGS), st.sampled_from(OVERFLOWS))


@st.composite
def batches(draw: st.DrawFn) -> list[Case]:
    """A batch: a pool of source formats, some destination mode combinations, and a seed for the values."""
    pool = draw(st.lists(fixed_formats, min_size=2, max_size=6))
    combos = draw(st.lists(mode_combos, min_size=1, max_size=10))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    return [c for s, r, o in combos for c in mode_cases(rng, pool, s, r, o)]


# ----------------------------------------------------------------------------------------------------------
# tests


def _run_batches(batches: list[list[Case]]) -> None:
    """Compile the batches in parallel (g++ is single-threaded), then compare each."""
    with ThreadPoolExecutor(max_workers=max(1, min(len(batches), os.cpu_count() or 1))) as pool:
        outputs = list(pool.map(run_cpp, batches))
    errors = [e for cases, lines in zip(batches, outputs, strict=True) for e in compare(cases, lines)]
    assert not errors, f"{len(errors)} mismatches, first ones:\n" + "\n".join(errors[:25])


def _halves(cases: list[Case]) -> list[list[Case]]:
    return [cases[: len(cases) // 2], cases[len(cases) // 2 :]]


def test_every_mode_combination_sweep() -> None:
    """Seeded sweep: each (rounding, overflow, signedness) of the destination, on every kind of operation."""
    rng = random.Random(20260522)
    pool = [random_format(rng) for _ in range(12)]
    combos = [(s, r, o) for r in ROUNDINGS for o in OVERFLOWS for s in (True, False)]
    _run_batches(_halves([c for s, r, o in combos for c in mode_cases(rng, pool, s, r, o)]))


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases=batches())
def test_random_batches(cases: list[Case]) -> None:
    """Hypothesis draws whole batches (one g++ run each, split over two cores) of formats, modes, values."""
    _run_batches(_halves(cases))


def subtle_cases() -> list[Case]:
    """Corners named in fixed.py, pinned so that a regression names its case."""
    Q, OV = Rounding, Overflow  # short aliases keep the table readable
    top = (1 << 64) - 1
    return [
        # SAT_SYM keeps -max: exactly min counts as underflow; non-finite and subnormal doubles.
        Quantize(Fixed(8, 3, True, Q.RND, OV.SAT_SYM), (-4.0, -3.99, -4.5, 3.99, math.inf, math.nan, 5e-324)),
        # A 1-bit SAT_SYM has no symmetric range: min | 1 == min.
        Quantize(Fixed(1, 1, True, Q.RND, OV.SAT_SYM), (-1.0, -5.0, 0.4, 0.5)),
        # I > W (the LSB is 2**6) and I < 0 (all bits fractional).
        Quantize(Fixed(4, 10, True, Q.TRN, OV.SAT), (-0.5, 100.0, -1e6)),
        Quantize(Fixed(4, -3, False, Q.RND_CONV, OV.WRAP), (0.0625, 0.015625, 0.046875)),
        # Wider than 64 bits: the object path, and to_double rounding a > 53-bit mantissa.
        Quantize(
            Fixed(100, 40, True, Q.RND_CONV, OV.SAT), (1e12, -1e13, 1.5e-10, 2.0**39, -(2.0**39), 1e300)
        ),
        Quantize(Fixed(80, -5, False, Q.RND, OV.WRAP), (1e-3, 2.0**-6, 1e-30, -(2.0**-40))),
        Cast(Fixed(8, 8, False), Fixed(4, 4, True, Q.RND, OV.SAT), (255, 8, 7, 0)),
        # Same type: a bit copy, so SAT_SYM keeps a stored min; another source type goes through operator=.
        Cast(Fixed(6, 2, True, Q.RND, OV.SAT_SYM), Fixed(6, 2, True, Q.RND, OV.SAT_SYM), (-32, -31, 31)),
        Cast(Fixed(6, 2, True, Q.RND, OV.WRAP), Fixed(6, 2, True, Q.RND, OV.SAT_SYM), (-32, -31, 31)),
        Cast(Fixed(64, 10, True), Fixed(3, 1, False, Q.RND_INF, OV.SAT), (-(1 << 63), -1, 1)),
        # A right shift past the source's MSB (needs NDEBUG, see CXXFLAGS).
        Cast(Fixed(8, 2, True), Fixed(2, 70, True, Q.RND, OV.WRAP), (-128, 127, -1)),
        Cast(Fixed(64, 1, False), Fixed(63, 1, True, Q.RND_ZERO, OV.SAT_ZERO), (top, 1, 0)),
        # Mixed-sign results wider than 128 bits.
        Binary("*", Fixed(64, 3, True), Fixed(64, 70, False), Fixed(64, 60), ((-(1 << 63) + 1, top),)),
        Binary("+", Fixed(64, 72, True), Fixed(64, -8, False), Fixed(64, 8), ((-(1 << 63), top),)),
        Binary(
            "-",
            Fixed(5, 2, False),
            Fixed(7, 7, False),
            Fixed(6, 6, False, Q.RND, OV.SAT),
            ((31, 127), (0, 1)),
        ),
    ]


def test_known_header_subtleties() -> None:
    assert_exact(subtle_cases())
