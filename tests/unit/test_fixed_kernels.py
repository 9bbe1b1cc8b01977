"""Every fixed-point kernel of the simulator against an independent, slow, exact reference.

``fpgac/interp/fixed_kernels.py`` is the contract the generated HLS C++ implements, so its kernels must
do exactly what its docstring says. The reference here shares no code with them: it works on
``fractions.Fraction`` values element by element (exact products, exact sums), applies exactly one final
rounding by the destination's rounding mode and then its overflow mode, both written from the mode
definitions (RND: half up, RND_CONV: half to even, TRN: floor, TRN_ZERO: toward zero, RND_ZERO: half
toward zero, RND_INF: half away from zero, RND_MIN_INF: half down; SAT, SAT_ZERO, SAT_SYM, WRAP).
It also counts the elements whose final cast overflowed, which ``BitsimResult.overflows`` must match.

Graphs come from two places: the quantize pass on a float graph with a calibration batch (the formats
users get), and hand-set adversarial formats (narrow widths, negative and oversized integer bits,
unsigned inputs, every rounding and overflow mode, too-narrow WRAP accumulators) that the pass would
never choose but that a hand-written quantized IR may carry.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Sequence
from fractions import Fraction as Q

import numpy as np
import pytest

from fpgac.interp.fixed_kernels import FIXED_OPS, FixedKernelError
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Graph, Param, TensorType, fixed, infer_shapes, verify
from fpgac.ir.graph import Node
from fpgac.ir.types import Fixed, Overflow, Rounding
from fpgac.passes.ood_formats import FLAG_FORMAT, energy_format, flag_format
from fpgac.passes.quantize import Quantize

HALF = Q(1, 2)

# ----------------------------------------------------------------------------------------------------------
# the reference: a scalar ap_fixed model written from the mode definitions


def lo_hi(fmt: Fixed) -> tuple[int, int]:
    """Mantissa range of ``fmt``, written out here rather than read from ``Fixed``."""
    if fmt.signed:
        return -(2 ** (fmt.width - 1)), 2 ** (fmt.width - 1) - 1
    return 0, 2**fmt.width - 1


def ref_round(s: Q, mode: Rounding) -> int:
    """``s`` rounded to an integer by ``mode``."""
    fl = math.floor(s)
    rem = s - fl
    if mode is Rounding.TRN:
        return fl
    if mode is Rounding.TRN_ZERO:
        return fl if s >= 0 or rem == 0 else fl + 1
    if rem != HALF:
        return fl + 1 if rem > HALF else fl
    tie = {
        Rounding.RND: fl + 1,
        Rounding.RND_ZERO: fl + 1 if s < 0 else fl,
        Rounding.RND_INF: fl + 1 if s > 0 else fl,
        Rounding.RND_MIN_INF: fl,
        Rounding.RND_CONV: fl if fl % 2 == 0 else fl + 1,
    }
    return tie[mode]


def ref_cast(v: Q, fmt: Fixed) -> tuple[int, bool]:
    """``fmt_t y = v;`` for an exact ``v``: one rounding, then overflow. Returns (mantissa, overflowed)."""
    q = ref_round(v * Q(2) ** fmt.frac_bits, fmt.rounding)
    lo, hi = lo_hi(fmt)
    if fmt.overflow is Overflow.SAT_SYM and fmt.signed:
        lo = -hi
    if lo <= q <= hi:
        return q, False
    if fmt.overflow is Overflow.WRAP:
        q %= 2**fmt.width
        if fmt.signed and q >= 2 ** (fmt.width - 1):
            q -= 2**fmt.width
        return q, True
    if fmt.overflow is Overflow.SAT_ZERO:
        return 0, True
    return (hi if q > hi else lo), True


def value(m: int, fmt: Fixed) -> Q:
    return Q(int(m)) * Q(2) ** -fmt.frac_bits


def vals(m: np.ndarray, fmt: Fixed) -> np.ndarray:
    """Exact values (object array of Fractions) of mantissas."""
    out = np.empty(np.shape(m), dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = value(m[idx], fmt)
    return out


def cast_all(v: np.ndarray, fmt: Fixed) -> tuple[np.ndarray, int]:
    """Elementwise :func:`ref_cast`; returns mantissas and the number of overflowed elements."""
    out = np.empty(v.shape, dtype=object)
    bad = 0
    for idx in np.ndindex(v.shape):
        out[idx], over = ref_cast(v[idx], fmt)
        bad += over
    return out, bad


def wrap_all(v: np.ndarray, acc: Fixed) -> np.ndarray:
    """Values after a WRAP accumulator: the sum must be on the acc grid (exact), then modulo 2**W."""
    out = np.empty(v.shape, dtype=object)
    for idx in np.ndindex(v.shape):
        scaled = v[idx] * Q(2) ** acc.frac_bits
        assert scaled.denominator == 1, "reference: the accumulator cannot hold this sum exactly"
        out[idx] = value(ref_cast(v[idx], acc)[0], acc)
    return out


def pvals(node: Node, key: str) -> np.ndarray:
    """A param's values as the hardware stores them: its data cast into its format by the reference."""
    param = node.params[key]
    data = np.asarray(param.data, dtype=np.float64)
    out = np.empty(data.shape, dtype=object)
    for idx in np.ndindex(data.shape):
        out[idx] = value(ref_cast(Q(float(data[idx])), param.format)[0], param.format)
    return out


def out_fmt(node: Node) -> Fixed:
    fmt = node.output.type.format
    assert isinstance(fmt, Fixed)
    return fmt


# ----------------------------------------------------------------------------------------------------------
# reference kernels: (node, input mantissas, input formats) -> (output mantissas, overflow count)

Ref = Callable[[Node, Sequence[np.ndarray], Sequence[Fixed]], tuple[np.ndarray, int]]


def ref_dense(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = vals(xs[0], fmts[0])
    w = pvals(node, "weight")
    b = pvals(node, "bias") if "bias" in node.params else None
    out = np.empty((*x.shape[:-1], w.shape[0]), dtype=object)
    for idx in np.ndindex(out.shape):
        *lead, o = idx
        total = sum((x[(*lead, i)] * w[o, i] for i in range(w.shape[1])), Q(0))
        out[idx] = total + (b[o] if b is not None else 0)
    return cast_all(wrap_all(out, node.attrs["acc"]), out_fmt(node))


def conv_sums(node: Node, x: np.ndarray) -> np.ndarray:
    """Exact grouped N-d cross-correlation plus bias, by the definition (zero padding)."""
    w = pvals(node, "weight")
    b = pvals(node, "bias") if "bias" in node.params else None
    a = node.attrs
    n, _, *size = x.shape
    o_ch, cg, *kernel = w.shape
    nd = len(kernel)
    per_group = o_ch // a["groups"]
    out = np.empty((n, *node.output.shape), dtype=object)
    for s, o, *pos in np.ndindex(out.shape):
        g = o // per_group
        total = b[o] if b is not None else Q(0)
        for c in range(cg):
            for k in itertools.product(*(range(kk) for kk in kernel)):
                coord = [
                    pos[i] * a["strides"][i] - a["pads"][i] + k[i] * a["dilations"][i] for i in range(nd)
                ]
                if all(0 <= coord[i] < size[i] for i in range(nd)):
                    total += w[(o, c, *k)] * x[(s, g * cg + c, *coord)]
        out[(s, o, *pos)] = total
    return out


def ref_conv(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    return cast_all(wrap_all(conv_sums(node, vals(xs[0], fmts[0])), node.attrs["acc"]), out_fmt(node))


def window_cells(node: Node, size: list[int], pos: tuple[int, ...], dilations: list[int]) -> tuple:
    """(input cells of the window, number of cells that count towards a mean)."""
    a = node.attrs
    nd = len(size)
    cells, count = [], 1
    for i in range(nd):
        start = pos[i] * a["strides"][i] - a["pads"][i]
        axis = [start + k * dilations[i] for k in range(a["kernel"][i])]
        cells.append([c for c in axis if 0 <= c < size[i]])
        if a.get("count_include_pad"):  # padded cells count, cells past the end padding never do
            count *= sum(1 for c in axis if -a["pads"][i] <= c < size[i] + a["pads"][nd + i])
        else:
            count *= len(cells[-1])
    return list(itertools.product(*cells)), count


def ref_max_pool(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = vals(xs[0], fmts[0])
    n, _, *size = x.shape
    out = np.empty((n, *node.output.shape), dtype=object)
    for s, ch, *pos in np.ndindex(out.shape):
        cells, _ = window_cells(node, size, tuple(pos), node.attrs["dilations"])
        out[(s, ch, *pos)] = max(x[(s, ch, *cell)] for cell in cells)
    return cast_all(out, out_fmt(node))


def ref_avg_pool(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = vals(xs[0], fmts[0])
    recip = pvals(node, "recip")
    acc = node.attrs["acc"]
    n, _, *size = x.shape
    out = np.empty((n, *node.output.shape), dtype=object)
    for s, ch, *pos in np.ndindex(out.shape):
        cells, count = window_cells(node, size, tuple(pos), [1] * len(size))
        total = sum((x[(s, ch, *cell)] for cell in cells), Q(0))
        wrapped = value(ref_cast(total, acc)[0], acc)
        out[(s, ch, *pos)] = wrapped * recip[count]
    return cast_all(out, out_fmt(node))


def ref_reduce(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = vals(xs[0], fmts[0])
    axes = tuple(a + 1 for a in node.attrs["axes"])
    keep = node.attrs["keepdims"]
    if node.attrs["mode"] == "max":
        return cast_all(np.asarray(x.max(axis=axes, keepdims=keep), dtype=object), out_fmt(node))
    total = np.asarray(x.sum(axis=axes, keepdims=keep), dtype=object)
    return cast_all(wrap_all(total, node.attrs["acc"]) * pvals(node, "recip")[0], out_fmt(node))


def trailing(xs: list[np.ndarray]) -> list[np.ndarray]:
    """Per-sample shapes broadcast at their trailing axes; the batch axis stays first."""
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[0], *([1] * (rank - x.ndim)), *x.shape[1:]) for x in xs]


def ref_affine(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = vals(xs[0], fmts[0])
    return cast_all(x * pvals(node, "scale") + pvals(node, "shift"), out_fmt(node))


def ref_add(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    parts = trailing([vals(m, f) for m, f in zip(xs, fmts, strict=True)])
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return cast_all(np.asarray(total, dtype=object), out_fmt(node))


def ref_sub(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    a, b = trailing([vals(m, f) for m, f in zip(xs, fmts, strict=True)])
    return cast_all(np.asarray(a - b, dtype=object), out_fmt(node))


def ref_mul(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    a, b = trailing([vals(m, f) for m, f in zip(xs, fmts, strict=True)])
    return cast_all(np.asarray(a * b, dtype=object), out_fmt(node))


def elementwise(fn: Callable[[Q], Q]) -> Ref:
    def ref(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
        x = vals(xs[0], fmts[0])
        out = np.empty(x.shape, dtype=object)
        for idx in np.ndindex(x.shape):
            out[idx] = fn(x[idx])
        return cast_all(out, out_fmt(node))

    return ref


def ref_leaky_relu(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    alpha = pvals(node, "alpha").reshape(())[()]
    return elementwise(lambda v: v * alpha if v < 0 else v)(node, xs, fmts)


def ref_prelu(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = vals(xs[0], fmts[0])
    slope = np.broadcast_to(pvals(node, "slope"), x.shape[1:])
    out = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(x.shape):
        out[idx] = x[idx] * slope[idx[1:]] if x[idx] < 0 else x[idx]
    return cast_all(out, out_fmt(node))


def ref_clip(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """The exact value clamped to the bounds, then one cast. A bound is the output format's value nearest
    it: rounded by the output's rounding mode and saturated to its range (never wrapped or zeroed). For
    bounds inside the output range this equals ``out_t(clamp(x, min, max))``, rounding being monotone."""
    fmt = out_fmt(node)
    lo_m, hi_m = lo_hi(fmt)

    def nearest(bound: float) -> Q:
        return value(min(max(ref_round(Q(bound) * Q(2) ** fmt.frac_bits, fmt.rounding), lo_m), hi_m), fmt)

    lo = None if node.attrs["min"] is None else nearest(node.attrs["min"])
    hi = None if node.attrs["max"] is None else nearest(node.attrs["max"])

    def fn(v: Q) -> Q:
        if lo is not None:
            v = max(v, lo)
        if hi is not None:
            v = min(v, hi)
        return v

    return elementwise(fn)(node, xs, fmts)


def table_value(node: Node, v: Q, table: np.ndarray) -> Q:
    """``table[clamp(floor(v / 2**shift) + offset, 0, size - 1)]`` by the definition."""
    idx = math.floor(v / Q(2) ** node.attrs["table_shift"]) + node.attrs["table_offset"]
    return table[min(max(idx, 0), table.shape[0] - 1)]


def ref_table(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    table = pvals(node, "table")
    return elementwise(lambda v: table_value(node, v, table))(node, xs, fmts)


def ref_elu(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    gamma = pvals(node, "gamma").reshape(())[()] if "gamma" in node.params else Q(1)
    table = pvals(node, "table")
    return elementwise(lambda v: table_value(node, v, table) if v < 0 else v * gamma)(node, xs, fmts)


def ref_hard_sigmoid(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    alpha, beta = pvals(node, "alpha").reshape(())[()], pvals(node, "beta").reshape(())[()]
    return elementwise(lambda v: min(max(v * alpha + beta, Q(0)), Q(1)))(node, xs, fmts)


def ref_softmax(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """``e = table[x - max]``, ``s = sum(e)`` wrapped into ``acc``, ``p = floor(e * 2**F / s)``, cast."""
    x = vals(xs[0], fmts[0])
    axis = node.attrs["axis"] + 1
    acc, fmt = node.attrs["acc"], out_fmt(node)
    d = x - x.max(axis=axis, keepdims=True)
    e = np.empty(d.shape, dtype=object)
    table = pvals(node, "table")
    for idx in np.ndindex(d.shape):
        e[idx] = table_value(node, d[idx], table)
    s = wrap_all(np.asarray(e.sum(axis=axis, keepdims=True), dtype=object), acc)
    p = np.empty(e.shape, dtype=object)
    for idx in np.ndindex(e.shape):
        sidx = tuple(0 if i == axis else j for i, j in enumerate(idx))
        p[idx] = Q(math.floor(e[idx] / s[sidx] * 2**fmt.frac_bits), 2**fmt.frac_bits)
    return cast_all(p, fmt)


def ref_lrn(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """``s`` = the window's squares summed exactly (wrapped into ``acc``), ``y = x * table[s]``, cast."""
    x = vals(xs[0], fmts[0])
    size, channels = node.attrs["size"], x.shape[1]
    before = (size - 1) // 2
    table = pvals(node, "table")
    y = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(x.shape):
        c = idx[1]
        window = range(max(c - before, 0), min(c - before + size, channels))
        s = wrap_all(
            np.array([sum((x[(idx[0], k, *idx[2:])] ** 2 for k in window), Q(0))]), node.attrs["acc"]
        )
        y[idx] = x[idx] * table_value(node, s[0], table)
    return cast_all(y, out_fmt(node))


def ref_reshape(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = vals(xs[0], fmts[0])
    return cast_all(x.reshape(x.shape[0], *node.attrs["shape"]), out_fmt(node))


def ref_transpose(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = vals(xs[0], fmts[0])
    return cast_all(x.transpose(0, *(p + 1 for p in node.attrs["perm"])), out_fmt(node))


def ref_concat(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    joined = np.concatenate([vals(m, f) for m, f in zip(xs, fmts, strict=True)], axis=node.attrs["axis"] + 1)
    return cast_all(joined, out_fmt(node))


def ref_quant(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """QONNX's quantizer on exact values (zero point 0): x / scale clamped to the integer range, rounded
    by the mode, times the scale; 1-bit signed is the bipolar sign. Exact in the output format, and the
    clamp is the op's meaning, so nothing counts as an overflow."""
    a = node.attrs
    x = vals(xs[0], fmts[0])
    scale = np.broadcast_to(node.params["scale"].data, x.shape[1:])
    bits, signed, narrow = a["bits"], a["signed"], a["narrow"]
    lo = -(2 ** (bits - 1)) + narrow if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
    round_fn = {
        "ROUND": lambda q: round(q),  # Fraction rounds half to even
        "HALF_EVEN": lambda q: round(q),
        "FLOOR": math.floor,
        "CEIL": math.ceil,
        "DOWN": math.trunc,
        "HALF_UP": lambda q: math.floor(q + Q(1, 2)) if q >= 0 else -math.floor(-q + Q(1, 2)),
        "HALF_DOWN": lambda q: math.ceil(q - Q(1, 2)) if q >= 0 else -math.ceil(-q - Q(1, 2)),
    }[a["rounding"]]
    out = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(x.shape):
        s = Q(float(scale[idx[1:]]))
        if signed and bits == 1:
            out[idx] = s if x[idx] >= 0 else -s
        else:
            out[idx] = round_fn(min(max(x[idx] / s, Q(lo)), Q(hi))) * s
    m, _ = cast_all(out, out_fmt(node))
    return m, 0


def ref_pad(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """Pad cells hold the pad value cast into the output format (not counted as overflows)."""
    y, bad = cast_all(vals(xs[0], fmts[0]), out_fmt(node))
    pads, rank = node.attrs["pads"], y.ndim - 1
    widths = [(0, 0)] + [(pads[i], pads[rank + i]) for i in range(rank)]
    if node.attrs["mode"] == "constant":
        fill = ref_cast(Q(float(node.attrs["value"])), out_fmt(node))[0]
        return np.pad(y, widths, mode="constant", constant_values=fill), bad
    return np.pad(y, widths, mode=node.attrs["mode"]), bad


def patch_vectors(node: Node, x: np.ndarray) -> list[list[list[Q]]]:
    """Per sample, its patches by the definition: a conv's windows (zero outside the input), taps in a
    weight row's order; without a kernel, the rows of the last axis."""
    a = node.attrs
    kernel = a["kernel"]
    if not kernel:
        return [[list(row) for row in sample.reshape(-1, sample.shape[-1])] for sample in x]
    n, channels, *size = x.shape
    nd = len(kernel)
    grid = [
        (size[i] + a["pads"][i] + a["pads"][nd + i] - a["dilations"][i] * (kernel[i] - 1) - 1)
        // a["strides"][i]
        + 1
        for i in range(nd)
    ]
    out = []
    for s in range(n):
        patches = []
        for pos in itertools.product(*(range(g) for g in grid)):
            taps = []
            for c in range(channels):
                for k in itertools.product(*(range(kk) for kk in kernel)):
                    coord = [
                        pos[i] * a["strides"][i] - a["pads"][i] + k[i] * a["dilations"][i] for i in range(nd)
                    ]
                    inside = all(0 <= coord[i] < size[i] for i in range(nd))
                    taps.append(x[(s, c, *coord)] if inside else Q(0))
            patches.append(taps)
        out.append(patches)
    return out


def ref_patch_energy(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """sum over patches of ||basis h_p||^2 (each projection through the WRAP accumulator), or ||h_p||^2."""
    totals = np.empty((xs[0].shape[0], 1), dtype=object)
    basis = pvals(node, "basis") if "basis" in node.params else None
    for s, patches in enumerate(patch_vectors(node, vals(xs[0], fmts[0]))):
        total = Q(0)
        for h in patches:
            if basis is None:
                total += sum((t * t for t in h), Q(0))
                continue
            sums = np.array(
                [sum((w * t for w, t in zip(row, h, strict=True)), Q(0)) for row in basis], dtype=object
            )
            total += sum((p * p for p in wrap_all(sums, node.attrs["acc"])), Q(0))
        totals[s, 0] = total
    return cast_all(totals, out_fmt(node))


def ref_ood_flag(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    num, den = vals(xs[0], fmts[0]), vals(xs[1], fmts[1])
    tau = pvals(node, "tau")[()]
    flags = np.vectorize(lambda a, b: Q(int(a < tau * b)), otypes=[object])(num, den)
    return cast_all(flags, out_fmt(node))


REFS: dict[str, Ref] = {
    "dense": ref_dense,
    "conv": ref_conv,
    "max_pool": ref_max_pool,
    "avg_pool": ref_avg_pool,
    "reduce": ref_reduce,
    "affine": ref_affine,
    "add": ref_add,
    "sub": ref_sub,
    "mul": ref_mul,
    "relu": elementwise(lambda v: max(v, Q(0))),
    "leaky_relu": ref_leaky_relu,
    "prelu": ref_prelu,
    "clip": ref_clip,
    "quant": ref_quant,
    "sigmoid": ref_table,
    "tanh": ref_table,
    "hard_sigmoid": ref_hard_sigmoid,
    "elu": ref_elu,
    "selu": ref_elu,
    "softmax": ref_softmax,
    "lrn": ref_lrn,
    "reshape": ref_reshape,
    "transpose": ref_transpose,
    "concat": ref_concat,
    "pad": ref_pad,
    "patch_energy": ref_patch_energy,
    "ood_flag": ref_ood_flag,
}


def test_every_kernel_has_a_reference() -> None:
    """A kernel added to FIXED_OPS without a reference here would go untested."""
    assert set(REFS) == set(FIXED_OPS)


# ----------------------------------------------------------------------------------------------------------
# the reference model itself, on hand-computed cases (a wrong reference would agree with a wrong kernel)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # inputs:                 2.5 -2.5  3.5 -3.5  2.25 -2.75
        (Rounding.RND, [3, -2, 4, -3, 2, -3]),
        (Rounding.RND_CONV, [2, -2, 4, -4, 2, -3]),
        (Rounding.TRN, [2, -3, 3, -4, 2, -3]),
        (Rounding.TRN_ZERO, [2, -2, 3, -3, 2, -2]),
        (Rounding.RND_ZERO, [2, -2, 3, -3, 2, -3]),
        (Rounding.RND_INF, [3, -3, 4, -4, 2, -3]),
        (Rounding.RND_MIN_INF, [2, -3, 3, -4, 2, -3]),
    ],
)
def test_reference_rounding_modes(mode: Rounding, expected: list[int]) -> None:
    xs = [Q(5, 2), Q(-5, 2), Q(7, 2), Q(-7, 2), Q(9, 4), Q(-11, 4)]
    assert [ref_round(x, mode) for x in xs] == expected


def test_reference_overflow_modes() -> None:
    fmt = Fixed(4, 4, True)  # integers -8..7
    assert ref_cast(Q(9), fmt) == (-7, True)  # WRAP: 9 - 16
    assert ref_cast(Q(-9), fmt) == (7, True)
    assert ref_cast(Q(9), Fixed(4, 4, True, overflow=Overflow.SAT)) == (7, True)
    assert ref_cast(Q(-9), Fixed(4, 4, True, overflow=Overflow.SAT)) == (-8, True)
    assert ref_cast(Q(-8), Fixed(4, 4, True, overflow=Overflow.SAT_SYM)) == (-7, True)
    assert ref_cast(Q(-9), Fixed(4, 4, True, overflow=Overflow.SAT_ZERO)) == (0, True)
    assert ref_cast(Q(-1), Fixed(4, 4, False, overflow=Overflow.SAT)) == (0, True)
    assert ref_cast(Q(-1), Fixed(4, 4, False)) == (15, True)
    # rounding happens before the range check: 7.5 rounds up to 8 and only then overflows
    assert ref_cast(Q(15, 2), Fixed(4, 4, True, Rounding.RND, Overflow.SAT)) == (7, True)
    assert ref_cast(Q(15, 2), Fixed(4, 4, True, Rounding.TRN, Overflow.SAT)) == (7, False)


# ----------------------------------------------------------------------------------------------------------
# running graphs and comparing node by node


def feed(m: np.ndarray, fmt: Fixed) -> np.ndarray:
    """float32 inputs whose quantization into ``fmt`` gives exactly the mantissas ``m``."""
    x = np.ldexp(np.asarray(m, dtype=np.float64), -fmt.frac_bits).astype(np.float32)
    assert np.array_equal(np.ldexp(x.astype(np.float64), fmt.frac_bits), m), "not exact in float32"
    return x


def rand_mantissas(fmt: Fixed, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Uniform over the whole mantissa range, with the extremes and zero planted."""
    lo, hi = lo_hi(fmt)
    m = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    flat = m.reshape(-1)
    for i, v in enumerate((lo, hi, 0, lo + 1, hi - 1)):
        if i < flat.size:
            flat[rng.integers(flat.size)] = v
    return m


def check_graph(graph: Graph, inputs: Sequence[np.ndarray]) -> dict[str, int]:
    """Run the simulator with a trace and check every node's mantissas and overflow count.

    Each node's reference reads the simulator's (already checked) input mantissas, so a mismatch is
    reported at the node that caused it. Returns the overflow counts, for tests that need them nonzero.
    """
    verify(graph)
    res = run_fixed(graph, list(inputs), trace=True)
    for value_, x in zip(graph.inputs, inputs, strict=True):
        fmt = value_.type.format
        expected, bad = cast_all(np.vectorize(lambda f: Q(float(f)), otypes=[object])(x), fmt)
        assert res.trace[value_.name].tolist() == expected.tolist(), f"input {value_.name}"
        assert res.overflows[value_.name] == bad
    for node in graph.nodes:
        xs = [res.trace[v.name] for v in node.inputs]
        fmts = [v.type.format for v in node.inputs]
        expected, bad = REFS[node.op](node, xs, fmts)
        got = res.trace[node.output.name]
        assert got.shape == expected.shape, f"{node.name}: shape {got.shape} != {expected.shape}"
        diff = [
            (idx, int(got[idx]), int(expected[idx]))
            for idx in np.ndindex(got.shape)
            if int(got[idx]) != int(expected[idx])
        ]
        assert not diff, (
            f"{node.name} ({node.op}) {out_fmt(node)}: (index, sim, ref) {diff[:5]} of {len(diff)}"
        )
        assert res.overflows[node.name] == bad, f"{node.name} ({node.op}): overflow count"
    return res.overflows


def one_node(
    op: str,
    in_fmts: Sequence[Fixed],
    in_shapes: Sequence[tuple[int, ...]],
    out: Fixed,
    attrs: dict | None = None,
    params: dict[str, Param] | None = None,
) -> Graph:
    """A quantized graph of one node with hand-set formats."""
    graph = Graph("k")
    xs = [
        graph.add_input(f"x{i}", TensorType(s, f))
        for i, (f, s) in enumerate(zip(in_fmts, in_shapes, strict=True))
    ]
    attrs, params = dict(attrs or {}), dict(params or {})
    shape = infer_shapes(op, [tuple(s) for s in in_shapes], attrs, params)
    node = graph.add(op, xs, [TensorType(shape, out)], name="n", attrs=attrs, params=params)
    graph.set_outputs([node.output])
    return graph


def hand_param(fmt: Fixed, shape: tuple[int, ...], rng: np.random.Generator) -> Param:
    """A param whose float data is exactly representable in ``fmt`` (extremes included)."""
    m = rand_mantissas(fmt, shape, rng)
    return Param(np.ldexp(m.astype(np.float64), -fmt.frac_bits), fmt)


def run_hand(graph: Graph, rng: np.random.Generator, batch: int = 3) -> dict[str, int]:
    inputs = []
    for v in graph.inputs:
        inputs.append(feed(rand_mantissas(v.type.format, (batch, *v.shape), rng), v.type.format))
    return check_graph(graph, inputs)


def quantized(graph: Graph, calib: Sequence[np.ndarray], precision: int = 10, **kw: object) -> Graph:
    out = Quantize(precision=precision, calib=tuple(calib), **kw).run(graph)
    verify(out)
    return out


# ----------------------------------------------------------------------------------------------------------
# adversarial formats

ALL_MODES = [(r, o) for r in Rounding for o in Overflow]
# Input formats: narrow, negative integer bits, more integer bits than width, unsigned.
IN_FMTS = [
    Fixed(8, 3, True),
    Fixed(6, -2, True),
    Fixed(7, 10, True),
    Fixed(6, 2, False),
    Fixed(9, 0, False),
    Fixed(5, 1, True),
]


def narrow_out(fx: Fixed, rounding: Rounding, overflow: Overflow, signed: bool, k: int) -> Fixed:
    """An output format that drops 2 fraction bits (ties occur) and 1-2 integer bits (overflow occurs)."""
    frac = fx.frac_bits - 2
    int_bits = fx.int_bits - 1 - (k % 2) + (signed and not fx.signed)
    return Fixed(max(int_bits + frac, 2), int_bits, signed, rounding, overflow)


def mode_cases() -> list[tuple[Fixed, Fixed]]:
    cases = []
    for k, (rounding, overflow) in enumerate(ALL_MODES):
        fx = IN_FMTS[k % len(IN_FMTS)]
        cases.append((fx, narrow_out(fx, rounding, overflow, signed=k % 3 != 0, k=k)))
    return cases


MODE_CASES = mode_cases()
CASE_IDS = [f"{fx}->{fo}" for fx, fo in MODE_CASES]


@pytest.mark.parametrize(("fx", "fo"), MODE_CASES, ids=CASE_IDS)
def test_moves_and_comparisons_all_modes(fx: Fixed, fo: Fixed) -> None:
    """relu, reshape, transpose, pad, max_pool, reduce max and clip: one cast by every mode."""
    rng = np.random.default_rng(zlib.crc32(f"{fx}{fo}".encode()))
    pool = {"kernel": [2, 2], "strides": [1, 2], "pads": [1, 0, 1, 1], "dilations": [1, 1], "ceil_mode": True}
    cases = [
        ("relu", (2, 3, 4), {}),
        ("reshape", (2, 3, 4), {"shape": [4, 6]}),
        ("transpose", (2, 3, 4), {"perm": [2, 0, 1]}),
        ("pad", (2, 3, 4), {"pads": [0, 1, 2, 1, 0, 1], "mode": "constant", "value": 0.75}),
        ("pad", (2, 3, 4), {"pads": [0, 1, 2, 0, 1, 1], "mode": "reflect", "value": 0.0}),
        ("pad", (2, 3, 4), {"pads": [1, 0, 2, 0, 1, 1], "mode": "edge", "value": 0.0}),
        ("max_pool", (2, 4, 5), pool),
        ("reduce", (2, 3, 4), {"mode": "max", "axes": [0, 2], "keepdims": False}),
        ("clip", (2, 3, 4), {"min": 0.0, "max": 6.0}),
        ("clip", (2, 3, 4), {"min": -0.3, "max": None}),
        ("clip", (2, 3, 4), {"min": None, "max": 0.7}),
    ]
    for op, shape, attrs in cases:
        run_hand(one_node(op, [fx], [shape], fo, attrs), rng)


@pytest.mark.parametrize(("fx", "fo"), MODE_CASES, ids=CASE_IDS)
def test_arithmetic_all_modes(fx: Fixed, fo: Fixed) -> None:
    """affine, add (3 inputs, broadcasting), sub, mul, leaky_relu, prelu, hard_sigmoid: exact, one cast."""
    rng = np.random.default_rng(zlib.crc32(f"{fo}{fx}".encode()))
    fp = Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
    other = Fixed(5, fx.int_bits - 1, not fx.signed)
    run_hand(
        one_node(
            "affine",
            [fx],
            [(3, 4)],
            fo,
            params={"scale": hand_param(fp, (3, 1), rng), "shift": hand_param(fp, (4,), rng)},
        ),
        rng,
    )
    run_hand(one_node("add", [fx, other, fx], [(3, 4), (4,), (1, 4)], fo), rng)
    run_hand(one_node("sub", [other, fx], [(2, 3), (3,)], fo), rng)
    run_hand(one_node("mul", [fx, other], [(3, 1), (3, 4)], fo), rng)
    run_hand(
        one_node("leaky_relu", [fx], [(3, 4)], fo, {"alpha": 0.1}, {"alpha": hand_param(fp, (), rng)}), rng
    )
    run_hand(one_node("prelu", [fx], [(3, 2, 2)], fo, params={"slope": hand_param(fp, (3, 1, 1), rng)}), rng)
    hs = {"alpha": hand_param(fp, (), rng), "beta": Param(np.float64(0.5), fp)}
    run_hand(one_node("hard_sigmoid", [fx], [(3, 4)], fo, {"alpha": 0.2, "beta": 0.5}, hs), rng)


def test_concat_of_different_formats() -> None:
    """Each input is cast into the output format on its own; overflows of all parts add up."""
    rng = np.random.default_rng(3)
    fmts = [Fixed(8, 3, True), Fixed(6, 4, False), Fixed(7, -1, True)]
    for rounding, overflow in ALL_MODES:
        graph = one_node(
            "concat", fmts, [(2, 3), (1, 3), (4, 3)], Fixed(6, 2, True, rounding, overflow), {"axis": 0}
        )
        run_hand(graph, rng)


def test_overflows_are_really_exercised() -> None:
    """The all-modes cases must overflow somewhere (a test whose casts never overflow proves nothing)."""
    rng = np.random.default_rng(5)
    fx = Fixed(8, 3, True)
    for overflow in Overflow:
        counts = run_hand(
            one_node("relu", [fx], [(4, 8)], Fixed(6, 1, False, Rounding.RND, overflow)), rng, batch=8
        )
        assert counts["n"] > 0


# ----------------------------------------------------------------------------------------------------------
# dense and conv: accumulators


def worst_case_acc(w_m: np.ndarray, b_m: np.ndarray | None, fx: Fixed, shift_b: int) -> tuple[int, int]:
    """Exact (min, max) of the accumulator mantissa sum over every input in ``fx`` (rows of ``w_m``)."""
    lo, hi = lo_hi(fx)
    w = w_m.reshape(w_m.shape[0], -1).astype(object)
    top = (np.where(w > 0, w * hi, w * lo)).sum(axis=1)
    bottom = (np.where(w > 0, w * lo, w * hi)).sum(axis=1)
    if b_m is not None:
        top = top + b_m.astype(object) * 2**shift_b
        bottom = bottom + b_m.astype(object) * 2**shift_b
    return int(min(bottom)), int(max(top))


def tight_acc(lo: int, hi: int, frac: int) -> Fixed:
    """The narrowest signed WRAP accumulator holding mantissas ``lo..hi``."""
    width = 1
    while not (-(2 ** (width - 1)) <= lo and hi <= 2 ** (width - 1) - 1):
        width += 1
    return Fixed(width, width - frac, True, Rounding.TRN, Overflow.WRAP)


def adversarial_dense_inputs(w_m: np.ndarray, fx: Fixed) -> np.ndarray:
    """For each output row: the input maximising it, and the one minimising it (sign of each weight)."""
    lo, hi = lo_hi(fx)
    rows = []
    for row in w_m:
        rows.append(np.where(row > 0, hi, lo))
        rows.append(np.where(row > 0, lo, hi))
    return np.array(rows, dtype=np.int64)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fx", [Fixed(6, 2, True), Fixed(5, 7, False), Fixed(7, -1, True)], ids=str)
def test_dense_exact_accumulator_and_too_narrow_wrap(bias: bool, fx: Fixed) -> None:
    """With exactly enough accumulator bits nothing wraps; one bit fewer wraps exactly modulo 2**W."""
    rng = np.random.default_rng(11)
    fw, fb = (
        Fixed(5, 1, True, Rounding.RND_CONV, Overflow.SAT),
        Fixed(7, 4, True, Rounding.RND_CONV, Overflow.SAT),
    )
    params = {"weight": hand_param(fw, (4, 6), rng)}
    frac = fx.frac_bits + fw.frac_bits
    b_m = None
    if bias:
        params["bias"] = hand_param(fb, (4,), rng)
        frac = max(frac, fb.frac_bits)
        b_m = np.ldexp(params["bias"].data, fb.frac_bits).astype(np.int64)
    w_m = np.ldexp(params["weight"].data, fw.frac_bits).astype(np.int64)
    lo, hi = worst_case_acc(w_m * 2 ** (frac - fx.frac_bits - fw.frac_bits), b_m, fx, frac - fb.frac_bits)
    acc = tight_acc(lo, hi, frac)
    x = adversarial_dense_inputs(w_m, fx)
    for width_delta, fo in [
        (0, Fixed(8, 3, True, Rounding.RND, Overflow.SAT)),
        (-1, Fixed(6, 2, True, Rounding.RND_CONV, Overflow.WRAP)),
    ]:
        a = Fixed(acc.width + width_delta, acc.int_bits + width_delta, True, Rounding.TRN, Overflow.WRAP)
        graph = one_node("dense", [fx], [(6,)], fo, {"acc": a}, params)
        check_graph(graph, [feed(x, fx)])
        run_hand(graph, rng, batch=6)
    # the reference really wraps with the narrow accumulator (the adversarial sums do not fit)
    assert lo < -(2 ** (acc.width - 2)) or hi > 2 ** (acc.width - 2) - 1


def test_dense_on_batched_rank3_input() -> None:
    rng = np.random.default_rng(12)
    fx, fw = Fixed(8, 2, True), Fixed(6, 0, True, Rounding.RND_CONV, Overflow.SAT)
    graph = one_node(
        "dense",
        [fx],
        [(2, 5)],
        Fixed(9, 4, True, Rounding.RND_INF, Overflow.SAT_SYM),
        {"acc": Fixed(20, 8)},
        {"weight": hand_param(fw, (3, 5), rng)},
    )
    run_hand(graph, rng)


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("rounding", [Rounding.TRN, Rounding.RND])
@pytest.mark.parametrize("op", ["dense", "conv"])
def test_output_rounding_folded_into_float64_gemm(op: str, rounding: Rounding, overflow: Overflow) -> None:
    """The float64 path rounds onto the output grid itself (fixed_kernels._Gemm): against the reference
    for every overflow mode, outputs narrow enough to overflow, dropping 0 to 9 fraction bits."""
    from fpgac.interp import fixed_kernels

    rng = np.random.default_rng(31)
    fx, fw = Fixed(7, 2, True), Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
    shape, w_shape = ((2, 3, 3), (2, 2, 2, 2)) if op == "conv" else ((7,), (4, 7))
    attrs = (
        {"strides": [1, 1], "pads": [1, 0, 0, 1], "dilations": [1, 1], "groups": 1} if op == "conv" else {}
    )
    params = {"weight": hand_param(fw, w_shape, rng), "bias": hand_param(Fixed(8, 3, True), w_shape[:1], rng)}
    acc = Fixed(24, 14, True, Rounding.TRN, Overflow.WRAP)
    overflows = 0
    for width, int_bits, signed in [(10, 10, True), (6, 2, True), (9, 4, False), (4, -1, True)]:
        fo = Fixed(width, int_bits, signed, rounding, overflow)
        graph = one_node(op, [fx], [shape], fo, {**attrs, "acc": acc}, params)
        overflows += run_hand(graph, rng, batch=4)["n"]
        gemm = fixed_kernels._GEMMS[graph.nodes[0]][1]
        assert gemm is not None and gemm.rounded
    assert overflows


CONV_CASES = [
    # (input shape, weight shape, strides, pads, dilations, groups)
    ((2, 9), (3, 2, 3), [1], [0, 0], [1], 1),
    ((4, 10), (4, 2, 3), [2], [1, 2], [2], 2),
    ((2, 5, 6), (3, 2, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((2, 7, 6), (4, 2, 2, 3), [2, 1], [0, 1, 1, 0], [2, 1], 1),
    ((3, 5, 5), (3, 1, 3, 3), [1, 2], [1, 1, 1, 1], [1, 1], 3),  # depthwise
    ((4, 6, 5), (6, 2, 2, 2), [1, 1], [0, 0, 1, 1], [1, 2], 2),  # grouped, 3 outputs per group
    ((2, 4, 4), (2, 2, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),  # 1x1
    ((2, 4, 3, 5), (2, 2, 2, 2, 3), [2, 1, 1], [1, 0, 1, 0, 1, 1], [1, 2, 1], 1),  # 3-d
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv_hand_formats(case: tuple, bias: bool) -> None:
    """Exact accumulators, then a too-narrow WRAP one, against the direct convolution definition."""
    x_shape, w_shape, strides, pads, dilations, groups = case
    rng = np.random.default_rng(len(x_shape) * 7 + w_shape[0])
    fx = Fixed(6, 2, True) if bias else Fixed(5, 3, False)
    fw = Fixed(5, 0, True, Rounding.RND_CONV, Overflow.SAT)
    params = {"weight": hand_param(fw, w_shape, rng)}
    if bias:
        params["bias"] = hand_param(Fixed(6, 3, True, Rounding.RND_CONV, Overflow.SAT), (w_shape[0],), rng)
    attrs = {"strides": strides, "pads": pads, "dilations": dilations, "groups": groups}
    frac = max(fx.frac_bits + fw.frac_bits, 3)
    for acc, fo in [
        (Fixed(frac + 12, 12), Fixed(7, 3, True, Rounding.RND, Overflow.SAT)),
        (Fixed(frac + 2, 2), Fixed(6, 2, True, Rounding.TRN_ZERO, Overflow.WRAP)),
        (Fixed(frac + 3, 3), Fixed(6, 1, False, Rounding.RND_MIN_INF, Overflow.SAT_ZERO)),
    ]:
        run_hand(one_node("conv", [fx], [x_shape], fo, {**attrs, "acc": acc}, params), rng, batch=2)


@pytest.mark.parametrize("unroll", [0, 10**9], ids=["im2col", "unrolled"])
def test_conv_float64_paths(unroll: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both float64 conv paths (im2col, and the conv unrolled into matrices, one band of input rows per
    output row: fpgac.interp.banded) on every conv case, with outputs rounded in the GEMM and
    overflowing, against the direct definition; and on an empty batch."""
    from fpgac.interp import fixed_kernels

    monkeypatch.setattr(fixed_kernels, "UNROLL_WORK", unroll)
    rng = np.random.default_rng(5)
    fx, fw = Fixed(7, 2, True), Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
    acc = Fixed(24, 14, True, Rounding.TRN, Overflow.WRAP)
    for x_shape, w_shape, strides, pads, dilations, groups in CONV_CASES:
        params = {"weight": hand_param(fw, w_shape, rng), "bias": hand_param(fx, w_shape[:1], rng)}
        attrs = {"strides": strides, "pads": pads, "dilations": dilations, "groups": groups, "acc": acc}
        for fo in (
            Fixed(16, 8, True, Rounding.RND, Overflow.SAT),
            Fixed(5, 1, True, Rounding.TRN, Overflow.WRAP),
        ):
            graph = one_node("conv", [fx], [x_shape], fo, attrs, params)
            run_hand(graph, rng, batch=3)
            unrolled = fixed_kernels._UNROLLED[graph.nodes[0]][1]
            assert (unrolled is not None) == bool(unroll)
            empty = run_fixed(graph, [np.zeros((0, *x_shape), np.float32)]).outputs[0]  # an empty .npy
            assert empty.shape == (0, *graph.outputs[0].shape)


def test_conv_adversarial_exact_accumulator() -> None:
    """The worst-case input of each output channel (every tap at min or max by the weight's sign) fits an
    accumulator of exactly the worst-case width and wraps one bit narrower, exactly as modular arithmetic
    says."""
    rng = np.random.default_rng(21)
    fx, fw = Fixed(6, 3, True), Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
    w = hand_param(fw, (2, 2, 3, 3), rng)
    w_m = np.ldexp(w.data, fw.frac_bits).astype(np.int64)
    frac = fx.frac_bits + fw.frac_bits
    lo, hi = worst_case_acc(w_m, None, fx, 0)
    acc = tight_acc(lo, hi, frac)
    xlo, xhi = lo_hi(fx)
    # a 3x3 input and no padding: one output position per channel sees every input cell
    x = np.stack(
        [np.where(w_m[o] > 0, xhi, xlo) for o in range(2)]
        + [np.where(w_m[o] > 0, xlo, xhi) for o in range(2)]
    )
    attrs = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1}
    fo = Fixed(16, 8, True, Rounding.RND, Overflow.SAT)
    for delta in (0, -1):
        a = Fixed(acc.width + delta, acc.int_bits + delta, True, Rounding.TRN, Overflow.WRAP)
        graph = one_node("conv", [fx], [(2, 3, 3)], fo, {**attrs, "acc": a}, {"weight": w})
        res = run_fixed(graph, [feed(x, fx)], trace=True)
        got = res.trace["n"].reshape(4, 2)  # one output position per channel
        check_graph(graph, [feed(x, fx)])
        wrapped = 0
        # samples 0, 1 maximise channels 0, 1; samples 2, 3 minimise them
        for i, row in enumerate([worst_case_rows(w_m, fx, top=True), worst_case_rows(w_m, fx, top=False)]):
            for o in range(2):
                total = row[o]
                if delta:
                    total = (total + 2 ** (a.width - 1)) % 2**a.width - 2 ** (a.width - 1)
                    wrapped += total != row[o]
                want, _ = ref_cast(Q(total, 2**frac), fo)
                assert got[2 * i + o, o] == want
        assert (wrapped > 0) == bool(delta)  # the narrow accumulator really wraps, the exact one never
    assert lo < -(2 ** (acc.width - 2)) or hi > 2 ** (acc.width - 2) - 1  # one bit fewer really wraps


def worst_case_rows(w_m: np.ndarray, fx: Fixed, *, top: bool) -> list[int]:
    lo, hi = lo_hi(fx)
    out = []
    for row in w_m.reshape(w_m.shape[0], -1).astype(object):
        out.append(sum(int(v) * ((hi if v > 0 else lo) if top else (lo if v > 0 else hi)) for v in row))
    return out


def test_accumulator_without_room_for_the_fraction_is_refused() -> None:
    rng = np.random.default_rng(2)
    fx, fw = Fixed(6, 2, True), Fixed(5, 1, True, Rounding.RND_CONV, Overflow.SAT)
    params = {"weight": hand_param(fw, (2, 3), rng)}
    narrow = one_node("dense", [fx], [(3,)], Fixed(8, 4), {"acc": Fixed(20, 14)}, params)  # frac 6 < 4 + 4
    with pytest.raises(FixedKernelError, match="drops fraction bits"):
        run_fixed(narrow, feed(rand_mantissas(fx, (2, 3), rng), fx))
    saturating = one_node(
        "dense", [fx], [(3,)], Fixed(8, 4), {"acc": Fixed(20, 8, overflow=Overflow.SAT)}, params
    )
    with pytest.raises(FixedKernelError, match="must WRAP"):
        run_fixed(saturating, feed(rand_mantissas(fx, (2, 3), rng), fx))


# ----------------------------------------------------------------------------------------------------------
# pooling and reductions (the quantize pass builds the reciprocal table; formats are then hand-set)

POOL_CASES = [
    # (input shape, kernel, strides, pads, ceil_mode, count_include_pad)
    ((2, 7), [3], [2], [1, 1], False, True),
    ((2, 7), [3], [2], [1, 1], True, False),
    ((2, 7), [3], [2], [1, 0], True, True),
    ((2, 5, 6), [2, 3], [2, 2], [0, 1, 1, 1], True, True),
    ((2, 5, 6), [2, 3], [2, 2], [0, 1, 1, 1], True, False),
    ((1, 6, 6), [3, 3], [3, 3], [0, 0, 0, 0], False, False),
    ((2, 5, 5), [3, 3], [2, 1], [1, 1, 1, 1], False, True),
]


def float_graph(
    op: str, shapes: Sequence[tuple[int, ...]], attrs: dict | None = None, params: dict | None = None
) -> Graph:
    graph = Graph("f")
    xs = [graph.add_input(f"x{i}", TensorType(s)) for i, s in enumerate(shapes)]
    node = graph.add(op, xs, name="n", attrs=attrs or {}, params=params or {})
    graph.set_outputs([node.output])
    return graph


def calib_for(
    graph: Graph, rng: np.random.Generator, scale: float = 2.0, batch: int = 16
) -> list[np.ndarray]:
    return [(rng.standard_normal((batch, *v.shape)) * scale).astype(np.float32) for v in graph.inputs]


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_avg_pool(case: tuple) -> None:
    shape, kernel, strides, pads, ceil_mode, include = case
    rng = np.random.default_rng(sum(shape) + len(kernel))
    attrs = {
        "kernel": kernel,
        "strides": strides,
        "pads": pads,
        "ceil_mode": ceil_mode,
        "count_include_pad": include,
    }
    graph = quantized(
        float_graph("avg_pool", [shape], attrs), calib_for(float_graph("avg_pool", [shape], attrs), rng)
    )
    node = graph.nodes[0]
    check_graph(graph, [(rng.standard_normal((3, *shape)) * 4).astype(np.float32)])
    # adversarial: every input at the format's max (the mean must not exceed it) or min
    fx = graph.inputs[0].type.format
    lo, hi = lo_hi(fx)
    check_graph(graph, [feed(np.stack([np.full(shape, hi), np.full(shape, lo)]), fx)])
    # hand-set: a narrow output with every overflow mode and a too-narrow WRAP accumulator
    acc = node.attrs["acc"]
    for k, (rounding, overflow) in enumerate(ALL_MODES[::3]):
        node.output.type = node.output.type.with_format(
            Fixed(5, fx.int_bits - 1, k % 2 == 0, rounding, overflow)
        )
        node.attrs["acc"] = (
            acc if k % 2 else Fixed(acc.width - 2, acc.int_bits - 2, True, Rounding.TRN, Overflow.WRAP)
        )
        run_hand(graph, rng)


@pytest.mark.parametrize("keepdims", [True, False])
def test_reduce_mean_and_max(keepdims: bool) -> None:
    rng = np.random.default_rng(4)
    for mode, axes in [("mean", [1, 2]), ("mean", [0]), ("max", [1]), ("mean", [0, 1, 2])]:
        attrs = {"mode": mode, "axes": axes, "keepdims": keepdims}
        graph = quantized(
            float_graph("reduce", [(3, 4, 5)], attrs),
            calib_for(float_graph("reduce", [(3, 4, 5)], attrs), rng),
        )
        check_graph(graph, [(rng.standard_normal((3, 3, 4, 5)) * 3).astype(np.float32)])
        fx = graph.inputs[0].type.format
        lo, hi = lo_hi(fx)
        check_graph(graph, [feed(np.stack([np.full((3, 4, 5), hi), np.full((3, 4, 5), lo)]), fx)])
        node = graph.nodes[0]
        node.output.type = node.output.type.with_format(
            Fixed(6, 1, True, Rounding.RND_ZERO, Overflow.SAT_SYM)
        )
        if mode == "mean":
            acc = node.attrs["acc"]
            node.attrs["acc"] = Fixed(acc.width - 3, acc.int_bits - 3, True, Rounding.TRN, Overflow.WRAP)
        run_hand(graph, rng)


# ----------------------------------------------------------------------------------------------------------
# table-based kernels


@pytest.mark.parametrize("op", ["sigmoid", "tanh", "elu", "selu"])
@pytest.mark.parametrize("in_scale", [0.2, 3.0, 40.0])
def test_tables_exhaustively(op: str, in_scale: float) -> None:
    """Every mantissa of an 8-bit input (bin edges, both format extremes, values outside the table's
    domain when the input format is wider than it) indexes the table as the contract says."""
    rng = np.random.default_rng(7)
    attrs = {"sigmoid": {}, "tanh": {}, "elu": {"alpha": 0.7}, "selu": {"alpha": 1.67, "gamma": 1.05}}[op]
    base = float_graph(op, [(4,)], attrs)
    calib = [(rng.uniform(-1, 1, (16, 4)) * in_scale).astype(np.float32)]
    graph = quantized(base, calib, precision=8)
    fx = graph.inputs[0].type.format
    lo, hi = lo_hi(fx)
    every = np.arange(lo, hi + 1, dtype=np.int64)
    every = np.concatenate([every, np.full((-every.size) % 4, hi)]).reshape(-1, 4)
    check_graph(graph, [feed(every, fx)])
    # the table's first and last entries are reached (clamping is exercised when the input is wide)
    node = graph.nodes[0]
    size = node.params["table"].data.shape[0]
    idx = {
        min(
            max(math.floor(value(m, fx) / Q(2) ** node.attrs["table_shift"]) + node.attrs["table_offset"], 0),
            size - 1,
        )
        for m in every.ravel()
        if op in ("sigmoid", "tanh") or m < 0
    }
    assert 0 in idx
    if op in ("sigmoid", "tanh"):
        assert size - 1 in idx


def test_table_hand_set_shift_and_offset() -> None:
    """Odd table geometry: negative shift (index = x * 2**k), offsets outside [0, size], narrow entries."""
    rng = np.random.default_rng(8)
    fx = Fixed(8, 4, True)
    ft = Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
    table = hand_param(ft, (24,), rng)
    for shift, offset in [
        (-1, 12),
        (-2, 3),
        (0, 40),
        (1, -5),
        (-5, 12),
        (3, 2),
        (-3, -30),
        (-6, 200),
        (-6, -150),
        (-64, 5),
        (70, 3),
    ]:
        for rounding, overflow in ALL_MODES[::5]:
            graph = one_node(
                "sigmoid",
                [fx],
                [(16,)],
                Fixed(4, 0, True, rounding, overflow),
                {"table_shift": shift, "table_offset": offset},
                {"table": table},
            )
            run_hand(graph, rng, batch=8)


def test_softmax_contract_and_accuracy() -> None:
    """The integer kernel per the contract, and probabilities within 0.01 of float softmax."""
    rng = np.random.default_rng(9)
    for shape, axis, scale in [((10,), 0, 3.0), ((3, 5), 1, 2.0), ((4, 3), 0, 6.0), ((1,), 0, 1.0)]:
        base = float_graph("softmax", [shape], {"axis": axis})
        graph = quantized(base.clone(), calib_for(base, rng, scale), precision=12)
        x = (rng.standard_normal((8, *shape)) * scale).astype(np.float32)
        check_graph(graph, [x])
        got = run_fixed(graph, x).outputs[0]
        want = run_float(base, x)[0]
        assert np.max(np.abs(got - want)) < 0.01, np.max(np.abs(got - want))
    # hand-set: narrow output modes
    node = graph.nodes[0]
    node.output.type = node.output.type.with_format(Fixed(5, 1, False, Rounding.RND_INF, Overflow.SAT))
    run_hand(graph, rng, batch=6)


@pytest.mark.parametrize("op", ["softmax", "sigmoid", "tanh", "elu"])
def test_tables_on_a_grid_coarser_than_their_domain(op: str) -> None:
    """Inputs of about +-1e5 at 8 bits have an LSB of 2**12: far coarser than the exp domain [-16, 0] or
    sigmoid's [-8, 8]. Tables stay non-empty, follow the contract, and are exact on such a grid (the max
    reads exp(0), x = +-lsb reads sigmoid's saturated ends)."""
    rng = np.random.default_rng(12)
    attrs = {"axis": 0} if op == "softmax" else {"alpha": 1.0} if op == "elu" else {}
    base = float_graph(op, [(10,)], attrs)
    graph = quantized(base.clone(), calib_for(base, rng, 1e5), precision=8)
    assert graph.inputs[0].type.format.lsb >= 2**12
    assert graph.nodes[0].params["table"].data.size >= (1 if op == "elu" else 2)  # elu: x < 0 only
    x = (rng.standard_normal((16, 10)) * 1e5).astype(np.float32)
    check_graph(graph, [x])
    fx = graph.inputs[0].type.format
    on_grid = fixed.to_float(fixed.quantize(x.astype(np.float64), fx), fx).astype(np.float32)
    want = run_float(base, [on_grid])[0]
    assert np.max(np.abs(run_fixed(graph, [x]).outputs[0] - want)) < 0.01 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize(
    ("shape", "attrs", "scale", "tolerance"),
    [
        ((6, 3, 3), {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}, 40.0, 0.01),  # AlexNet's
        ((5,), {"size": 4, "alpha": 2.0, "beta": 0.5, "bias": 2.0}, 2.0, 0.01),  # even size: one more after
        # x / (0.5 + x^2): the table's slope at s = 0 is 4, times half a bin of 2**-7
        ((3, 4), {"size": 1, "alpha": 1.0, "beta": 1.0, "bias": 0.5}, 1.0, 0.025),
    ],
)
def test_lrn_contract_and_accuracy(
    shape: tuple[int, ...], attrs: dict, scale: float, tolerance: float
) -> None:
    """The kernel per the contract (hand-set narrow outputs too), and within ``tolerance`` of the float
    LRN's largest output (the power table is linear in the sum: its error is the slope times half a bin)."""
    rng = np.random.default_rng(len(shape) + attrs["size"])
    base = float_graph("lrn", [shape], attrs)
    graph = quantized(base.clone(), calib_for(base, rng, scale), precision=14)
    x = (rng.standard_normal((6, *shape)) * scale).astype(np.float32)
    check_graph(graph, [x])
    got, want = run_fixed(graph, [x]).outputs[0], run_float(base, [x])[0]
    assert np.max(np.abs(got - want)) < tolerance * np.abs(want).max(), np.max(np.abs(got - want))
    node = graph.nodes[0]
    for k, (rounding, overflow) in enumerate(ALL_MODES[::5]):
        fx = graph.inputs[0].type.format
        node.output.type = node.output.type.with_format(
            Fixed(6, fx.int_bits - k % 3, k % 2 == 0, rounding, overflow)
        )
        run_hand(graph, rng, batch=4)


def test_hard_sigmoid_quantized() -> None:
    rng = np.random.default_rng(10)
    base = float_graph("hard_sigmoid", [(6,)], {"alpha": 0.2, "beta": 0.5})
    graph = quantized(base, calib_for(base, rng, 5.0), precision=8)
    fx = graph.inputs[0].type.format
    lo, hi = lo_hi(fx)
    check_graph(
        graph, [feed(np.arange(lo, hi + 1, dtype=np.int64)[: (hi - lo + 1) // 6 * 6].reshape(-1, 6), fx)]
    )


# ----------------------------------------------------------------------------------------------------------
# whole small graphs through the quantize pass


def build(ops: Callable[[Graph, list], object], shapes: Sequence[tuple[int, ...]]) -> Graph:
    graph = Graph("g")
    xs = [graph.add_input(f"x{i}", TensorType(s)) for i, s in enumerate(shapes)]
    out = ops(graph, xs)
    graph.set_outputs(out if isinstance(out, list) else [out])
    return graph


def _cnn(g: Graph, xs: list) -> object:
    rng = np.random.default_rng(30)
    conv_attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    c = g.add(
        "conv",
        xs,
        attrs=conv_attrs,
        params={
            "weight": Param(rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 0.4),
            "bias": Param(rng.standard_normal(4).astype(np.float32)),
        },
    )
    bn = g.add(
        "affine",
        [c.output],
        params={
            "scale": Param(rng.uniform(0.5, 1.5, (4, 1, 1)).astype(np.float32)),
            "shift": Param(rng.standard_normal((4, 1, 1)).astype(np.float32)),
        },
    )
    r = g.add("relu", [bn.output])
    mp = g.add(
        "max_pool",
        [r.output],
        attrs={
            "kernel": [2, 2],
            "strides": [2, 2],
            "pads": [0, 0, 1, 1],
            "dilations": [1, 1],
            "ceil_mode": False,
        },
    )
    dw = g.add(
        "conv",
        [mp.output],
        attrs={**conv_attrs, "groups": 4},
        params={"weight": Param(rng.standard_normal((4, 1, 3, 3)).astype(np.float32) * 0.5)},
    )
    lr = g.add("leaky_relu", [dw.output], attrs={"alpha": 0.1})
    res = g.add("add", [lr.output, mp.output])
    ap = g.add(
        "avg_pool",
        [res.output],
        attrs={
            "kernel": [2, 2],
            "strides": [2, 2],
            "pads": [0, 0, 0, 0],
            "ceil_mode": True,
            "count_include_pad": False,
        },
    )
    flat = g.add("reshape", [ap.output], attrs={"shape": [16]})
    d = g.add(
        "dense",
        [flat.output],
        params={
            "weight": Param(rng.standard_normal((5, 16)).astype(np.float32) * 0.3),
            "bias": Param(rng.standard_normal(5).astype(np.float32)),
        },
    )
    return g.add("softmax", [d.output], attrs={"axis": 0}).output


def _branches(g: Graph, xs: list) -> object:
    rng = np.random.default_rng(31)
    a, b = xs
    t = g.add("tanh", [a])
    s = g.add("sigmoid", [b])
    m = g.add("mul", [t.output, s.output])
    d = g.add("sub", [a, m.output])
    c = g.add(
        "concat",
        [d.output, g.add("relu", [b]).output, g.add("clip", [a], attrs={"min": 0.0, "max": 6.0}).output],
        attrs={"axis": 0},
    )
    p = g.add("prelu", [c.output], params={"slope": Param(rng.uniform(0, 0.3, (3, 1)).astype(np.float32))})
    e = g.add("elu", [p.output], attrs={"alpha": 1.0})
    sl = g.add("selu", [e.output], attrs={"alpha": 1.67, "gamma": 1.05})
    tr = g.add("transpose", [sl.output], attrs={"perm": [1, 0]})
    pd = g.add("pad", [tr.output], attrs={"pads": [1, 0, 0, 2], "mode": "constant", "value": -0.5})
    hs = g.add("hard_sigmoid", [pd.output], attrs={"alpha": 0.2, "beta": 0.5})
    return g.add("reduce", [hs.output], attrs={"mode": "mean", "axes": [0], "keepdims": False}).output


@pytest.mark.parametrize("precision", [6, 10, 16])
def test_quantized_graphs_node_by_node(precision: int) -> None:
    """The formats users get: calibrated, then run on data 8x wider than the calibration (saturation)."""
    rng = np.random.default_rng(precision)
    for ops, shapes in [(_cnn, [(2, 6, 6)]), (_branches, [(1, 4), (1, 4)])]:
        graph = build(ops, shapes)
        calib = calib_for(graph, rng, 1.5, batch=32)
        q = quantized(graph, calib, precision=precision)
        counts = check_graph(q, [(rng.standard_normal((4, *s)) * 12).astype(np.float32) for s in shapes])
        assert sum(counts.values()) > 0  # inputs beyond the calibrated range saturate somewhere


# ----------------------------------------------------------------------------------------------------------
# wide formats: mantissas beyond int64 (object arrays) and accumulators with a large fraction excess


def test_dense_with_wide_accumulator_fraction() -> None:
    """An accumulator with far more fraction bits than the products must still be exact: the products are
    shifted up to the accumulator's grid, which overflows int64 unless done in wider arithmetic."""
    rng = np.random.default_rng(40)
    fx, fw = Fixed(8, 3, True), Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
    params = {"weight": hand_param(fw, (3, 4), rng), "bias": hand_param(Fixed(6, 2, True), (3,), rng)}
    for acc in (Fixed(70, 10), Fixed(62, 4), Fixed(100, 30)):
        for fo in (
            Fixed(12, 5, True, Rounding.RND, Overflow.SAT),
            Fixed(90, 40, True, Rounding.RND, Overflow.SAT),
        ):
            run_hand(one_node("dense", [fx], [(4,)], fo, {"acc": acc}, params), rng, batch=4)


def wide_chain(
    op: str, attrs: dict, out: Fixed, params: dict[str, Param] | None = None, shape: tuple = (2, 3, 4)
) -> Graph:
    """input -> dense producing 72-bit mantissas (object arrays) -> ``op``."""
    rng = np.random.default_rng(41)
    fx = Fixed(8, 3, True)
    wide = Fixed(72, 30, True, Rounding.RND, Overflow.SAT)
    graph = Graph("w")
    x = graph.add_input("x", TensorType(shape, fx))
    w = Param(
        np.ldexp(rng.integers(-16, 16, (shape[-1], shape[-1])).astype(np.float64), -3), Fixed(6, 2, True)
    )
    d = graph.add(
        "dense", [x], [TensorType(shape, wide)], name="d", attrs={"acc": Fixed(40, 20)}, params={"weight": w}
    )
    attrs, params = dict(attrs), dict(params or {})
    out_shape = infer_shapes(op, [shape], attrs, params)
    node = graph.add(op, [d.output], [TensorType(out_shape, out)], name="n", attrs=attrs, params=params)
    graph.set_outputs([node.output])
    return graph


@pytest.mark.parametrize(
    "out",
    [Fixed(10, 4, True, Rounding.RND_CONV, Overflow.SAT), Fixed(80, 20, False, Rounding.RND, Overflow.WRAP)],
    ids=str,
)
def test_wide_object_mantissas(out: Fixed) -> None:
    rng = np.random.default_rng(42)
    fp = Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
    table = {"table_shift": -2, "table_offset": 8}, {"table": hand_param(fp, (16,), rng)}
    pool = {
        "kernel": [2, 2],
        "strides": [1, 1],
        "pads": [0, 1, 1, 0],
        "dilations": [1, 1],
        "ceil_mode": False,
    }
    avg = {
        "kernel": [2, 2],
        "strides": [1, 2],
        "pads": [1, 0, 0, 1],
        "ceil_mode": True,
        "count_include_pad": False,
    }
    recip = {
        "recip": Param(
            np.array([0.0, 1.0, 0.5, 1 / 3, 0.25]), Fixed(18, 1, False, Rounding.RND_CONV, Overflow.SAT)
        )
    }
    cases = [
        ("relu", {}, None),
        ("clip", {"min": -1.0, "max": 3.0}, None),
        ("max_pool", pool, None),
        ("avg_pool", {**avg, "acc": Fixed(80, 36)}, recip),
        (
            "reduce",
            {"mode": "mean", "axes": [2], "keepdims": True, "acc": Fixed(76, 34)},
            {"recip": Param(np.array([0.25]), recip["recip"].format)},
        ),
        ("sigmoid", table[0], table[1]),
        ("leaky_relu", {"alpha": 0.1}, {"alpha": Param(np.float64(0.125), fp)}),
        ("pad", {"pads": [0, 1, 0, 0, 0, 1], "mode": "constant", "value": 1.5}, None),
        ("transpose", {"perm": [1, 2, 0]}, None),
    ]
    for op, attrs, params in cases:
        run_hand(wide_chain(op, attrs, out, params), rng, batch=2)


def test_hard_sigmoid_with_coarse_grids() -> None:
    """Input, alpha and beta all on grids coarser than 1 (negative fraction bits): the clamp to [0, 1]
    must still produce 1, which is not on the grid of ``x * alpha + beta``."""
    rng = np.random.default_rng(43)
    coarse = Fixed(4, 6, True, Rounding.RND_CONV, Overflow.SAT)  # multiples of 4
    params = {"alpha": hand_param(coarse, (), rng), "beta": Param(np.float64(4.0), coarse)}
    for fo in (
        Fixed(6, 2, False, Rounding.RND, Overflow.SAT),
        Fixed(3, 1, True, Rounding.TRN, Overflow.WRAP),
    ):
        run_hand(
            one_node("hard_sigmoid", [Fixed(5, 7, True)], [(8,)], fo, {"alpha": 0.2, "beta": 0.5}, params),
            rng,
            batch=6,
        )


@pytest.mark.parametrize("extra_frac", [0, 3, 40])
def test_pooling_sum_keeps_its_value_in_an_accumulator_with_more_fraction_bits(extra_frac: int) -> None:
    """The window sum has the input's fraction; an accumulator with a finer grid must hold the same value
    (the cast into it reads the sum at the input's fraction, whether the sum is int64 or Python ints)."""
    graph = Graph("pool")
    x = graph.add_input("x", TensorType((2, 4, 4)))
    attrs = {
        "kernel": [2, 2],
        "strides": [2, 2],
        "pads": [0, 0, 0, 0],
        "ceil_mode": False,
        "count_include_pad": True,
    }
    graph.set_outputs([graph.add("avg_pool", [x], name="pool", attrs=attrs).output])
    data = np.random.default_rng(7).uniform(-1, 1, (3, 2, 4, 4)).astype(np.float32)
    graph = Quantize(calib=(data,)).run(graph)
    expected = run_fixed(graph, data).outputs[0]
    node = graph.node("pool")
    acc = node.attrs["acc"]
    node.attrs["acc"] = Fixed(acc.width + extra_frac, acc.int_bits, acc.signed, acc.rounding, acc.overflow)
    assert np.array_equal(run_fixed(graph, data).outputs[0], expected)


@pytest.mark.parametrize(
    "fx", [Fixed(6, 2, True), Fixed(7, 10, True), Fixed(6, -2, True), Fixed(6, 2, False)]
)
def test_ood_monitor_kernels(fx: Fixed) -> None:
    """The monitor's energies over a dilated, strided, unevenly padded conv window and over dense rows,
    with and without a basis, and the flag: exact against the definitions at adversarial formats."""
    rng = np.random.default_rng(zlib.crc32(str(fx).encode()))
    window = {"kernel": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1], "dilations": [1, 2]}
    rows = {"kernel": [], "strides": [], "pads": [], "dilations": []}
    for shape, attrs, taps in (((2, 5, 4), window, 12), ((3, 7), rows, 7)):
        for basis in (hand_param(Fixed(5, 1, True), (3, taps), rng), None):
            graph = one_node("patch_energy", [fx], [shape], fx, attrs, {"basis": basis} if basis else {})
            node = graph.node("n")
            node.output.type = node.output.type.with_format(energy_format(node, fx))
            assert run_hand(graph, rng, batch=4)["n"] == 0
    num, den = Fixed(20, 10, False), Fixed(16, 12, False)
    graph = one_node("ood_flag", [num, den], [(1,), (1,)], FLAG_FORMAT, {"tau": 0.3})
    flag_format(graph.node("n"))
    run_hand(graph, rng, batch=64)


def relu_pool_graph(fx: Fixed, fr: Fixed, fp: Fixed, pool: dict, conv: bool) -> Graph:
    """``[conv ->] relu -> max_pool`` with hand-set formats (the conv's output: ``fx``)."""
    rng = np.random.default_rng(3)
    g = Graph("rp")
    x = g.add_input("x", TensorType((2, 6, 7), Fixed(8, 3, True) if conv else fx))
    if conv:
        fw = Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
        params = {"weight": hand_param(fw, (3, 2, 3, 3), rng), "bias": hand_param(fw, (3,), rng)}
        acc = Fixed(24, 12, True, Rounding.TRN, Overflow.WRAP)
        attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1, "acc": acc}
        x = g.add("conv", [x], [TensorType((3, 6, 7), fx)], attrs=attrs, params=params).output
    relu = g.add("relu", [x], [TensorType(x.shape, fr)])
    shape = infer_shapes("max_pool", [x.shape], pool, {})
    out = g.add("max_pool", [relu.output], [TensorType(shape, fp)], attrs=pool)
    g.set_outputs([out.output])
    return g


def test_relu_runs_after_the_pool_only_where_that_is_exact() -> None:
    """A relu whose only user is a max pool runs on the pooled output (relus_after_pools) where that is
    exact: both casts change nothing and every window lies inside the input. Those runs equal the traced
    run (which keeps the order) bit for bit, overflow and element counts included, and the reference."""
    from fpgac.interp.simulator import relus_after_pools

    fx = Fixed(9, 4, True, Rounding.RND, Overflow.SAT)
    fr = Fixed(8, 3, False, Rounding.RND, Overflow.SAT)  # holds [0, max of fx] on fx's grid
    tiles = {
        "kernel": [2, 2],
        "strides": [2, 2],
        "pads": [0, 0, 0, 0],
        "dilations": [1, 1],
        "ceil_mode": False,
    }
    padded = {**tiles, "pads": [1, 0, 0, 1]}
    overlapping = {**tiles, "kernel": [3, 2], "strides": [1, 2], "dilations": [1, 2]}
    narrow = Fixed(6, 1, False, Rounding.RND, Overflow.SAT)  # the relu saturates
    cases = [
        (fr, fr, tiles, True),
        (fr, fr, overlapping, True),
        (fr, fr, padded, False),  # a padding cell (the relu format's min - 1) beats a negative x
        (fr, narrow, tiles, False),  # the pool's cast changes values
        (narrow, narrow, tiles, False),  # so does the relu's
    ]
    rng = np.random.default_rng(8)
    for conv in (False, True):
        for relu_fmt, pool_fmt, pool, swapped in cases:
            graph = relu_pool_graph(fx, relu_fmt, pool_fmt, pool, conv)
            verify(graph)
            assert bool(relus_after_pools(graph)) == swapped
            fin = graph.inputs[0].type.format
            x = feed(rand_mantissas(fin, (5, *graph.inputs[0].shape), rng), fin)
            check_graph(graph, [x])  # traced: relu, then pool
            fast, traced = run_fixed(graph, [x]), run_fixed(graph, [x], trace=True)
            assert np.array_equal(fast.outputs[0], traced.outputs[0])
            assert fast.overflows == traced.overflows
            assert fast.elements == traced.elements


@pytest.mark.parametrize("chunk", [None, 2])
def test_a_large_models_layouts_go_with_its_run(chunk: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above KEPT_PARAMS weights the kernels' once-computed mantissas and layouts do not outlive a run (in
    one chunk, not even the next node), and the results are those of a run that keeps them."""
    from fpgac.interp import fixed_kernels, simulator

    rng = np.random.default_rng(9)
    fx, fw = Fixed(7, 2, True), Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)
    acc = Fixed(24, 14, True, Rounding.TRN, Overflow.WRAP)
    x_shape, w_shape, strides, pads, dilations, groups = CONV_CASES[0]
    params = {"weight": hand_param(fw, w_shape, rng), "bias": hand_param(fx, w_shape[:1], rng)}
    attrs = {"strides": strides, "pads": pads, "dilations": dilations, "groups": groups, "acc": acc}
    graph = one_node("conv", [fx], [x_shape], Fixed(16, 8, True, Rounding.RND, Overflow.SAT), attrs, params)
    x = rng.normal(0, 2, (5, *x_shape)).astype(np.float32)
    kept = run_fixed(graph, [x], chunk=chunk).mantissas[0]
    node = graph.nodes[0]
    assert node in fixed_kernels._GEMMS and node.params["weight"] in fixed_kernels._MANTISSAS
    monkeypatch.setattr(simulator, "KEPT_PARAMS", 0)
    np.testing.assert_array_equal(run_fixed(graph, [x], chunk=chunk).mantissas[0], kept)
    assert node not in fixed_kernels._GEMMS and node.params["weight"] not in fixed_kernels._MANTISSAS
