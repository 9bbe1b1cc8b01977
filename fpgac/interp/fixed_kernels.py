"""Fixed-point semantics of every IR op: the arithmetic the HLS kernels implement, bit for bit.

Each function takes the node, its input mantissas (batch first, see :mod:`fpgac.ir.fixed`) and the
input formats, and returns the output mantissas in the node's output format plus how many elements
overflowed (were saturated or wrapped) in that last cast. The rules, which the generated C++ follows:

* **dense / conv**: products are exact (``W_x + W_w`` bits); they are summed with the bias in the
  accumulator format ``attrs["acc"]``, whose fraction holds every product and the bias exactly and
  whose overflow mode is WRAP. A WRAP sum is a sum modulo ``2**W``, so the result does not depend on
  the order the HLS adds in; the quantize pass also sizes ``acc`` so it never wraps. The accumulator
  is then cast into the output format (its rounding and overflow modes). The HLS kernels compute some
  sums without products, the same exact number: binary/ternary weights as adds and subtracts, binary
  weights on a bipolar input as ``s * (2 * popcount(XNOR) - n)`` (:mod:`fpgac.ir.bipolar`).
* **affine, add, sub, mul**: exact ``ap_fixed`` expression types (``x * scale + shift``, ``a + b + c``),
  one cast into the output format at the end, as ``out_t y = expr;`` does in C++.
* **avg_pool / reduce mean**: the window sum in ``acc`` (exact), times the reciprocal of the number of
  cells that count, looked up in the ``recip`` param (index = count), then one cast.
* **max_pool / reduce max / relu / clip / reshape / transpose / concat / pad**: comparisons and moves on
  exact values, one cast; clip's bounds are the output format's values nearest ``min``/``max``
  (rounded by its rounding mode, saturated to its range), and clamped elements never count as overflows.
* **sigmoid, tanh, elu, selu (negative side), softmax (exp)**: lookup tables. The index of ``x`` is
  ``floor(x / 2**table_shift) + table_offset`` clamped to the table, computed with shifts on the raw
  bits; entries were computed by the quantize pass at bin centres.
* **softmax**: ``d = x - max`` (exact, <= 0), ``e = exp_table[d]``, ``s = sum(e)`` in ``acc``, and
  ``p = floor(e * 2**F / s)`` by integer division, F the output's fraction bits. The table's last entry
  is read by ``d = 0`` alone and holds ``exp(0)``, so ``s > 0`` at any logit range.
* **lrn**: ``s = sum of x[c']**2`` over the ``size`` channels around ``c`` (ONNX's window: ``(size - 1) // 2``
  before, the rest after; channels past the ends add nothing), exact in ``acc``; ``f = table[s]``, the
  table holding ``(bias + alpha / size * s)**-beta`` at bin centres (index ``floor(s / 2**table_shift) +
  table_offset``, as for the other tables); ``y = out_t(x * f)``, an exact product and one cast.
* **patch_energy** (the OOD monitor): exact. Each patch's projections ``basis @ h_p`` are summed in ``acc``
  (exact, as dense/conv), squared and summed over directions and patches in the output format, whose
  fraction is twice the projection's and whose integer bits hold the worst case (quantize sizes it):
  nothing is rounded or wraps. Without a basis the squares of the taps themselves are summed.
* **ood_flag**: ``num < tau * den``, an exact product and an exact comparison: 1 or 0.
* **quant** (QONNX's quantizers, :mod:`fpgac.ir.quant`): per group of elements sharing a power-of-two
  scale, one cast into that grid's format (CEIL: after adding one output step less one input step), the
  clamp to QONNX's integer range, an exact move into the output format.
* **div**: no fixed-point kernel; the quantize pass refuses graphs that need it.

Mantissa arrays are int64 or object (:mod:`fpgac.ir.fixed`), with one exception for speed: the float64
dense/conv path (:class:`_Gemm`) returns its output as float64 holding the exact integer mantissas (the
output's width is at most 53 bits, so every value is exact), and the kernels in :data:`FLOAT_MANTISSA_OPS`
take such arrays as they are: the next layer's matmul needs float64 anyway, and a relu, a max pool or a
move computes the same integers in float64. That saves two conversions of every activation (to int64 and
back); the simulator converts for every other kernel and for what it returns.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from fpgac.errors import FpgacError
from fpgac.interp.banded import Banded
from fpgac.interp.float_kernels import divisor_1d, pad_widths, padded, patches, pool_out, windows
from fpgac.ir import fixed
from fpgac.ir.graph import Node, Param
from fpgac.ir.quant import FixedPlan, ceil_offset, fixed_plan, odd_offset
from fpgac.ir.shapes import window_out
from fpgac.ir.types import Fixed, Overflow, Rounding

FixedFn = Callable[[Node, Sequence[np.ndarray], Sequence[Fixed]], tuple[np.ndarray, int]]

# float64 holds every integer below 2**53 exactly, so BLAS sums of such integers are exact.
_F64_EXACT = 2.0**53


class FixedKernelError(FpgacError):
    """A node that has no fixed-point kernel, or whose quantized attributes are inconsistent."""


def _out_format(node: Node) -> Fixed:
    fmt = node.output.type.format
    if not isinstance(fmt, Fixed):
        raise FixedKernelError(f"node {node.name!r} ({node.op}): output is not fixed point ({fmt})")
    return fmt


# Mantissas of params, computed once per (param, data, format): a simulation runs every node's
# kernel on every batch, and quantizing a large weight again each time would dominate the run time.
_MANTISSAS: weakref.WeakKeyDictionary[Param, tuple[int, Fixed, np.ndarray]] = weakref.WeakKeyDictionary()


def _param(node: Node, key: str) -> tuple[np.ndarray, Fixed]:
    param = node.params[key]
    if not isinstance(param.format, Fixed):
        raise FixedKernelError(f"node {node.name!r} ({node.op}): param {key!r} is not fixed point")
    cached = _MANTISSAS.get(param)
    if cached is not None and cached[0] == id(param.data) and cached[1] == param.format:
        return cached[2], param.format
    data = np.asarray(param.data, dtype=np.float64)
    # fixed.quantize returns at least 1-d (it goes through np.ascontiguousarray): keep the param's shape.
    mantissas = fixed.quantize(data, param.format).reshape(data.shape)
    mantissas.flags.writeable = False
    _MANTISSAS[param] = (id(param.data), param.format, mantissas)
    return mantissas, param.format


def forget(nodes: Iterable[Node]) -> None:
    """Drop what the kernels computed once for ``nodes`` and their params (mantissas, matmul layouts,
    banded matrices, bias rows). A simulator run of a large model lets them go
    (:func:`fpgac.interp.simulator.run_fixed`), else a build would keep VGG-19's 143M weights twice over
    (int64 mantissas and float64 layouts, 2.3 GB) from its fidelity run to its end."""
    for node in nodes:
        for cache in (_GEMMS, _UNROLLED, _BIAS_ROWS):
            cache.pop(node, None)
        for param in node.params.values():
            _MANTISSAS.pop(param, None)


def _scalar(x: float | None, fmt: Fixed) -> int:
    """The mantissa of the constant ``fmt_t(x)`` (a clip bound, a pad value) as a Python int."""
    return int(fixed.quantize(np.array([x], dtype=np.float64), fmt)[0])


def _fill(x: np.ndarray, v: int) -> int | np.ndarray:
    """A padding value for ``np.pad``: on object arrays it must stay a Python int (a plain ``0`` becomes
    ``np.int64(0)``, which overflows when later added to a wide mantissa)."""
    return np.array(v, dtype=object) if x.dtype == object else v


def _finish(node: Node, m: np.ndarray, src: Fixed) -> tuple[np.ndarray, int]:
    out = _out_format(node)
    if src == out:  # a bit copy (see fixed.cast), which float64 mantissas may skip too
        return m, 0
    return fixed.cast_count(int_mantissas(m), src, out)


def int_mantissas(m: np.ndarray) -> np.ndarray:
    """``m`` as int64 if it holds float64 mantissas (exact integers, see the module docstring)."""
    return m.astype(np.int64) if m.dtype == np.float64 else m


def _aligned(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Unit axes after the batch, so per-sample shapes broadcast at their trailing axes."""
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[0], *([1] * (rank - x.ndim)), *x.shape[1:]) for x in xs]


def _acc(node: Node) -> Fixed:
    acc = node.attrs.get("acc")
    if not isinstance(acc, Fixed):
        raise FixedKernelError(f"node {node.name!r} ({node.op}): quantized node has no accumulator format")
    if acc.overflow is not Overflow.WRAP:
        raise FixedKernelError(f"node {node.name!r} ({node.op}): accumulator {acc} must WRAP")
    return acc


def _shift_left(m: np.ndarray, bits: int, node: Node) -> np.ndarray:
    if bits < 0:
        raise FixedKernelError(f"node {node.name!r} ({node.op}): accumulator drops fraction bits")
    if bits == 0:
        return m
    # An accumulator may carry far more fraction bits than the products: shift in Python ints when the
    # result could leave int64 (two such terms are summed, so stay below 2**62).
    if m.dtype != object and (bits >= 62 or int(np.abs(m).max(initial=0)) >= 1 << (62 - bits)):
        m = m.astype(object)
    return m << bits  # Python ints on object arrays: exact


def _max_abs_mantissa(fmt: Fixed) -> int:
    return max(-fmt.min_mantissa, fmt.max_mantissa)


def _matmul_dtype(b: np.ndarray, a_max: int) -> type:
    """The dtype in which ``a @ b`` is exact, for ``|a| <= a_max`` (the input format's largest mantissa).

    float64 BLAS when every partial sum stays below 2**53 (the common case, and fast), int64 below 2**62,
    Python ints beyond.
    """
    bound = float(a_max) * float(np.abs(b).sum(axis=-2).max(initial=0))
    return np.float64 if bound < _F64_EXACT else np.int64 if bound < 2.0**62 else object


def _int_matmul(a: np.ndarray, b: np.ndarray, dtype: type) -> np.ndarray:
    product = np.matmul(a.astype(dtype, copy=False), b.astype(dtype, copy=False))
    return product.astype(np.int64) if dtype is np.float64 else product


def _wrap_into(total: np.ndarray, frac: int, acc: Fixed) -> np.ndarray:
    """``acc_t a = total;`` for an exact sum ``total`` with ``frac`` fraction bits.

    The cast needs the sum's own format: a signed 64-bit one for int64 sums (the fast int64 path), one
    just wide enough for Python-int sums.
    """
    width = 64 if total.dtype == np.int64 else int(np.abs(total).max(initial=0)).bit_length() + 2
    return fixed.cast(total, Fixed(width, width - frac, True), acc)


def _accumulate(
    node: Node, products: np.ndarray, prod_frac: int, bias_axis_shape: tuple[int, ...]
) -> tuple[np.ndarray, Fixed]:
    """Add the bias and wrap into ``acc``: what ``acc_t acc = bias; acc += x * w; ...`` leaves."""
    acc = _acc(node)
    total = _shift_left(products, acc.frac_bits - prod_frac, node)
    if "bias" in node.params:
        bias, bias_fmt = _param(node, "bias")
        total = total + _shift_left(bias, acc.frac_bits - bias_fmt.frac_bits, node).reshape(bias_axis_shape)
    return _wrap_into(total, acc.frac_bits, acc), acc


@dataclass(frozen=True)
class _Gemm:
    """A dense or conv layer's weights ready for ``x @ weight`` on one input format, whole in float64.

    When every accumulator value, bias included, stays below 2**53 (``bound``), the matmul, the shift onto
    the accumulator's grid and the bias add are all exact in float64 BLAS, and there is one conversion to
    int64 at the end; the shift is a power-of-two factor folded into the weights (every partial sum is
    still a power of two times an integer below 2**53, so exact). When ``bound`` also fits ``acc``, its WRAP
    can never act and is skipped. Then the output cast's rounding (TRN or RND, dropping ``s >= 0``
    fraction bits) is exact in float64 too: ``(acc + 2**(s-1)) >> s`` is
    ``floor(products * 2**(shift-s) + (bias + 2**(s-1)) * 2**-s)``, every term a power-of-two multiple of an
    integer below 2**53, so ``weight`` and ``bias`` already hold the output grid's factor and offset
    (``rounds``: whether a floor is needed) and only the range check is left.
    """

    # float64 mantissas times 2**(acc frac - product frac) (``rounded``: out frac), for ``x @ weight``
    weight: np.ndarray
    bias: np.ndarray | None  # float64 on the accumulator's (or, ``rounded``, the rounding's) grid
    wraps: bool
    rounded: bool  # the output cast's rounding is folded in: products end on the output's grid
    rounds: bool  # ...and need a floor to get there


_GEMMS: weakref.WeakKeyDictionary[Node, tuple[tuple[object, ...], _Gemm | None]] = weakref.WeakKeyDictionary()


def _gemm(
    node: Node, fx: Fixed, weight: np.ndarray, bias_shape: tuple[int, ...], taps_axis: int
) -> _Gemm | None:
    """The node's :class:`_Gemm` for input format ``fx`` (``weight``: its mantissas laid out for the
    matmul, summed over ``taps_axis``), or None when float64 is not exact for it; computed once per node,
    weights and format."""
    params = tuple((id(p.data), p.format) for p in node.params.values())
    key = (fx, node.attrs.get("acc"), params)
    cached = _GEMMS.get(node)
    if cached is not None and cached[0] == key:
        return cached[1]
    acc = _acc(node)
    _, fw = _param(node, "weight")
    shift = acc.frac_bits - fx.frac_bits - fw.frac_bits
    column_sums = np.abs(weight).sum(axis=taps_axis).max(initial=0)
    bound = (_max_abs_mantissa(fx) * int(column_sums)) << max(shift, 0)
    bias = None
    if "bias" in node.params:
        b, fb = _param(node, "bias")
        bias_shift = acc.frac_bits - fb.frac_bits
        bound += int(np.abs(b).max(initial=0)) << max(bias_shift, 0)
        bias = np.ldexp(b.astype(np.float64), bias_shift).reshape(bias_shape)
    prepared = None
    if shift >= 0 and (bias is None or bias_shift >= 0) and bound < _F64_EXACT:
        wraps = not (acc.min_mantissa <= -bound and bound <= acc.max_mantissa)
        # Scaled in place (exact: a power of two, below 2^53): no third copy of a large layer's weights
        # (VGG-19's first dense layer holds 102M).
        scaled = weight.astype(np.float64)
        np.ldexp(scaled, shift, out=scaled)
        prepared = _rounded(node, acc, bound, _Gemm(scaled, bias, wraps, False, False))
    _GEMMS[node] = (key, prepared)
    return prepared


def _rounded(node: Node, acc: Fixed, bound: int, g: _Gemm) -> _Gemm:
    """``g`` with the output cast's rounding folded in where that is exact (see :class:`_Gemm`)."""
    out = _out_format(node)
    s = acc.frac_bits - out.frac_bits
    half = 1 << (s - 1) if out.rounding is Rounding.RND and s > 0 else 0
    exact = not g.wraps and s >= 0 and out.rounding in (Rounding.TRN, Rounding.RND) and out.width <= 53
    if not exact or bound + half >= _F64_EXACT:
        return g
    step = 2.0**-s
    bias = (
        None if g.bias is None and not half else np.asarray((0.0 if g.bias is None else g.bias) + half) * step
    )
    return replace(g, weight=g.weight * step, bias=bias, rounded=True, rounds=s > 0)


def _gemm_finish(
    node: Node, g: _Gemm, raw: np.ndarray, products: np.ndarray, bias: np.ndarray | None
) -> tuple[np.ndarray, int]:
    """Bias, wrap and cast of float64 products (exact, see :class:`_Gemm`), computed in place.

    ``raw`` holds the products as BLAS wrote them (C-contiguous: every pass over it is one flat loop),
    ``products`` is the batch-first view ``(N, ...)`` of it, and ``bias`` is ``g.bias`` laid out to
    broadcast against ``raw`` (see :func:`_bias_rows`).
    """
    acc = _acc(node)
    if bias is not None:
        np.add(raw, bias, out=raw)
    if g.rounds:
        np.floor(raw, out=raw)
    products = products.reshape(products.shape[0], *node.output.shape)
    if g.rounded:
        out = _out_format(node)
        lowest, highest = (int(raw.min()), int(raw.max())) if raw.size else (0, 0)
        lo, hi = fixed.kept_range(out)
        if lo <= lowest and highest <= hi:  # nothing overflows: the float64 mantissas are the result
            return products, 0
        return fixed.overflow_count(products.astype(np.int64), out, (lowest, highest))
    total = products.astype(np.int64)
    if g.wraps:
        total = _wrap_into(total, acc.frac_bits, acc)
    return _finish(node, total, acc)


# A bias row repeated down a chunk's rows, per node (see _bias_rows).
_BIAS_ROWS: weakref.WeakKeyDictionary[Node, tuple[np.ndarray, np.ndarray]] = weakref.WeakKeyDictionary()


def _bias_rows(node: Node, row: np.ndarray | None, n: int) -> np.ndarray | None:
    """``row`` (one row of a matmul's output, ``(R,)``) repeated down ``n`` rows: ``(n, R)``.

    Added to products whose last two axes are ``(n, R)`` that is one flat loop; broadcasting the row
    itself makes numpy run one loop of R elements per row, twice the time at R = 64 (the digits CNN's
    first conv: 100 vs 50 us on a 2 MB chunk). Kept per node and grown as needed: a run's chunks all
    have one size but the last. A scalar (a rounding offset without a bias) is added as it is.

    For a banded conv, whose products are ``(Ho, n, R)``, the rows are 1/Ho of them; a dense layer adds
    its bias row as it is: there they would be as large as the products, and reading them cost more
    than the short loops saved (the jet MLP ran 10% slower in bench/sim_speed.py's hls4ml comparison).
    """
    if row is None or row.ndim == 0:
        return row
    cached = _BIAS_ROWS.get(node)
    if cached is None or cached[0] is not row or cached[1].shape[0] < n:
        cached = (row, np.tile(row, (n, 1)))
        _BIAS_ROWS[node] = cached
    return cached[1][:n]


def dense(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (x,), (fx,) = xs, fmts
    w, fw = _param(node, "weight")
    g = _gemm(node, fx, w.T, (w.shape[0],), -2)
    if g is not None:
        products = x.astype(np.float64, copy=False) @ g.weight
        return _gemm_finish(node, g, products, products, g.bias)
    x = int_mantissas(x)
    products = _int_matmul(x, w.T, _matmul_dtype(w.T, _max_abs_mantissa(fx)))
    total, acc = _accumulate(node, products, fx.frac_bits + fw.frac_bits, (w.shape[0],))
    return _finish(node, total, acc)


def conv(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """im2col on mantissas and one exact matmul per group over the whole chunk, or the conv unrolled into
    matrices, one per output row, where that is cheaper (:func:`_unrolled`).

    The column matrix is ``(groups, taps, N * positions)``: a group's weights ``(per_group, taps)`` then
    meet every sample in one large matmul, where a matrix per sample (``(N, groups, taps, positions)``)
    made N small ones, each too small for BLAS on a small feature map (the digits CNN's first conv: 8x9
    by 9x64, 1.2x slower per chunk that way). The products come back as a batch-first view
    ``(N, out_ch, *out)`` of the ``(groups, per_group, N, positions)`` result: no copy; later kernels take
    any layout.
    """
    (x,), (fx,) = xs, fmts
    w, fw = _param(node, "weight")
    a = node.attrs
    groups, strides, pads, dilations = a["groups"], a["strides"], a["pads"], a["dilations"]
    out_ch, cg, *kernel = w.shape
    nd = len(kernel)
    out = [
        window_out(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nd + i], dilations[i], False)
        for i in range(nd)
    ]
    taps, positions, per_group = cg * math.prod(kernel), math.prod(out), out_ch // groups

    def correlate(weight: np.ndarray, m: np.ndarray) -> np.ndarray:
        """``weight`` (groups, per_group, taps) against im2col of ``m``: (groups, per_group, N, positions)."""
        n = m.shape[0]
        view = windows(m, kernel, strides, pads, dilations, out, _fill(m, 0))  # (N, C, *out, *kernel)
        order = (1, 2, *range(3 + nd, 3 + 2 * nd), 0, *range(3, 3 + nd))  # groups, cg, *kernel, N, *out
        view = view.reshape(n, groups, cg, *out, *kernel).transpose(order)
        return np.matmul(weight, view.reshape(groups, taps, n * positions)).reshape(
            groups, per_group, n, positions
        )

    def batch_first(raw: np.ndarray) -> np.ndarray:
        """The (N, out_ch, *out) view of :func:`correlate`'s result."""
        return raw.transpose(2, 0, 1, 3).reshape(raw.shape[2], out_ch, *out)

    g = _gemm(node, fx, w.reshape(groups, per_group, taps), (out_ch, *[1] * nd), -1)
    if g is not None:
        floats = x.astype(np.float64, copy=False)
        unrolled = _unrolled(
            node, g, x.shape[1:], positions, lambda weight, m: batch_first(correlate(weight, m))
        )
        if unrolled is not None:
            banded, bias_row = unrolled
            raw, products = banded.apply(floats)
            return _gemm_finish(node, g, raw, products, _bias_rows(node, bias_row, len(x)))
        raw = correlate(g.weight, floats)
        bias = g.bias if g.bias is None or g.bias.ndim == 0 else g.bias.reshape(groups, per_group, 1, 1)
        return _gemm_finish(node, g, raw, batch_first(raw), bias)
    weight = w.reshape(groups, per_group, taps)
    dtype = _matmul_dtype(weight.swapaxes(-1, -2), _max_abs_mantissa(fx))
    x = int_mantissas(x).astype(dtype, copy=False)  # before im2col, so the column matrix is built once
    products = int_mantissas(batch_first(correlate(weight.astype(dtype), x)))
    total, acc = _accumulate(node, products, fx.frac_bits + fw.frac_bits, (out_ch, *([1] * nd)))
    return _finish(node, total, acc)


# A conv is unrolled into matrices (:mod:`fpgac.interp.banded`) when they do at most this many times its
# multiplications and its whole matrix has at most UNROLL_ELEMENTS entries (8 MB in float64).
UNROLL_WORK = 3
UNROLL_ELEMENTS = 1 << 20

_UNROLLED: weakref.WeakKeyDictionary[Node, tuple[_Gemm, tuple[Banded, np.ndarray | None] | None]] = (
    weakref.WeakKeyDictionary()
)


def _unrolled(
    node: Node,
    g: _Gemm,
    in_shape: tuple[int, ...],
    positions: int,
    convolve: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[Banded, np.ndarray | None] | None:
    """The conv of :class:`_Gemm` ``g`` as a :class:`~fpgac.interp.banded.Banded` matrix and ``g``'s bias
    as one row of its output (:meth:`~fpgac.interp.banded.Banded.row`), or None.

    Taken where the multiplications by its zeros are few (``UNROLL_WORK``): on small feature maps, where
    an im2col copy costs more than the matmul. Exact as :class:`_Gemm`: each output sums the same weighted
    inputs plus zeros, every partial sum bounded by the same ``bound``; the matrix is the conv of each
    unit input (every entry one weight or zero, as each input meets an output at most once).
    """
    cached = _UNROLLED.get(node)
    if cached is not None and cached[0] is g:
        return cached[1]
    inputs, outputs = math.prod(in_shape), math.prod(node.output.shape)
    banded: Banded | None = None
    if inputs * outputs <= UNROLL_ELEMENTS:
        basis = np.eye(inputs).reshape(inputs, *in_shape)
        matrix = convolve(g.weight, basis).reshape(inputs, outputs)
        banded = Banded.of(matrix, in_shape, node.output.shape)
        if banded.work > UNROLL_WORK * g.weight.size * positions:
            banded = None
    unrolled = None if banded is None else (banded, None if g.bias is None else banded.row(g.bias))
    _UNROLLED[node] = (g, unrolled)
    return unrolled


def _recip_times(node: Node, total: np.ndarray, fx: Fixed, index: np.ndarray) -> tuple[np.ndarray, int]:
    """``out_t y = acc_t(sum) * recip[index]``: the sum wrapped into ``acc``, an exact product, one cast."""
    acc = _acc(node)
    acc_m = _wrap_into(total, fx.frac_bits, acc)
    recip, fr = _param(node, "recip")
    return _finish(node, *fixed.mul(acc_m, acc, recip[index], fr))


def window_sums(node: Node, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact sums of an average pool's windows over mantissas ``x``, and each output pixel's divisor.

    Shared by fpgac's average pool and hls4ml's: they differ only in how the sum is divided.
    """
    a = node.attrs
    kernel, strides, pads = a["kernel"], a["strides"], a["pads"]
    nd = len(kernel)
    out = pool_out(x, a, [1] * nd)
    total = windows(x, kernel, strides, pads, [1] * nd, out, _fill(x, 0)).sum(axis=tuple(range(-nd, 0)))
    counts = np.ones((), dtype=np.int64)
    for i in range(nd):
        c = divisor_1d(
            x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nd + i], out[i], a["count_include_pad"]
        )
        shape = [1] * nd
        shape[i] = out[i]
        counts = counts * c.astype(np.int64).reshape(shape)
    return total, np.broadcast_to(counts, total.shape[2:])


def avg_pool(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (x,), (fx,) = xs, fmts
    total, counts = window_sums(node, x)
    return _recip_times(node, total, fx, counts)


_INT64_MIN = -(1 << 63)


def max_pool(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (x,), (fx,) = xs, fmts
    a = node.attrs
    out = pool_out(x, a, a["dilations"])
    if x.dtype != object and fx.min_mantissa - 1 < _INT64_MIN:  # a 64-bit input's "below min"
        x = x.astype(object)
    kernel, strides, dilations = a["kernel"], a["strides"], a["dilations"]
    below = _fill(x, fx.min_mantissa - 1)  # padding never wins
    # The max of a window is the max over its rows of the max along each row: one spatial axis at a
    # time, the last first, with one elementwise maximum per tap (far faster than a reduction over a
    # strided window view). A tap along the last axis is then a strided slice that numpy runs as one flat
    # loop when windows tile the row (stride = kernel), instead of a loop per output row.
    y = padded(x, kernel, strides, a["pads"], dilations, out, below)
    for axis in reversed(range(len(kernel))):
        k, s, d, o = kernel[axis], strides[axis], dilations[axis], out[axis]
        before = (slice(None),) * (2 + axis)
        taps = [y[(*before, slice(t * d, t * d + (o - 1) * s + 1, s))] for t in range(k)]
        y = np.maximum(taps[0], taps[1]) if k > 1 else taps[0]  # a new array: the rest go into it
        for tap in taps[2:]:
            np.maximum(y, tap, out=y)
    return _finish(node, y, fx)


def reduce(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (x,), (fx,) = xs, fmts
    axes = tuple(ax + 1 for ax in node.attrs["axes"])
    keep = node.attrs["keepdims"]
    if node.attrs["mode"] == "max":
        return _finish(node, x.max(axis=axes, keepdims=keep), fx)
    total = x.sum(axis=axes, keepdims=keep)
    return _recip_times(node, total, fx, np.zeros(total.shape, dtype=np.int64))  # recip holds 1/count


def affine(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (x,), (fx,) = xs, fmts
    scale, fs = _param(node, "scale")
    shift, ft = _param(node, "shift")
    product, fp = fixed.mul(x, fx, scale, fs)
    total, fmt = fixed.add(product, fp, shift, ft)
    return _finish(node, total, fmt)


def add(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """Left to right, as ``a + b + c`` in C++: each partial sum exact in its ``RType::plus``."""
    first, *rest = _aligned(xs)
    total, fmt = first, fmts[0]
    for m, f in zip(rest, fmts[1:], strict=True):
        total, fmt = fixed.add(total, fmt, m, f)
    return _finish(node, total, fmt)


def sub(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    a, b = _aligned(xs)
    return _finish(node, *fixed.sub(a, fmts[0], b, fmts[1]))


def mul(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    a, b = _aligned(xs)
    return _finish(node, *fixed.mul(a, fmts[0], b, fmts[1]))


def relu(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """``out_t(max(x, 0))``: where the cast changes nothing (:func:`_relu_keeps`) its range check (two
    passes over the tensor) is skipped."""
    y, fx, out = np.maximum(xs[0], 0), fmts[0], _out_format(node)
    if y.dtype != object and _relu_keeps(fx, out):
        return y, 0
    return _finish(node, y, fx)


def _relu_keeps(fx: Fixed, out: Fixed) -> bool:
    """Whether ``out_t(max(x, 0))`` is ``max(x, 0)`` for every ``x`` of ``fx`` (held in int64 or float64):
    the values lie in ``[0, max of fx]``, on the same grid, into a format holding that range (the quantize
    pass's usual unsigned output; 0 is inside every format's range)."""
    return fx.frac_bits == out.frac_bits and fixed.fits_int64(out) and fx.max_mantissa <= out.max_mantissa


def pools_before_relu(relu_node: Node, pool: Node) -> bool:
    """Whether ``max_pool(relu(x))`` can run as ``relu(max_pool(x))``, bit for bit and with the same
    overflow counts (none): the relu then computes on the pooled output, a quarter of the elements
    after a 2x2 pool.

    ``max(., 0)`` is monotone, so it commutes with the max of a window: ``max_i max(x_i, 0) =
    max(max_i x_i, 0)``. That is the whole computation when neither cast changes a value (the relu's:
    :func:`_relu_keeps`, for ``x`` of a format that fits int64; the pool's: its output format is its
    input's, a bit copy) and every window lies inside the input (a padding cell holds the relu format's
    ``min - 1``, which is not below every ``x``).
    """
    (x,), (y,) = relu_node.inputs, pool.inputs
    fx, fr, fp = x.type.format, y.type.format, pool.output.type.format
    if not (isinstance(fx, Fixed) and isinstance(fr, Fixed) and fixed.fits_int64(fx) and fp == fr):
        return False
    a = pool.attrs
    spans = [d * (k - 1) + 1 for k, d in zip(a["kernel"], a["dilations"], strict=True)]
    inside = all(
        (o - 1) * s + span <= n
        for o, s, span, n in zip(pool.output.shape[1:], a["strides"], spans, y.shape[1:], strict=True)
    )
    return relu_node.output is y and _relu_keeps(fx, fr) and not any(a["pads"]) and inside


def _negative_side(node: Node, x: np.ndarray, fx: Fixed, slope_key: str) -> tuple[np.ndarray, int]:
    """``x >= 0 ? out_t(x) : out_t(x * slope)``; only selected elements count as overflows."""
    slope, fs = _param(node, slope_key)
    pos, pos_bad = fixed.cast(x, fx, _out_format(node), return_overflow=True)
    product, fp = fixed.mul(x, fx, slope, fs)
    neg, neg_bad = fixed.cast(product, fp, _out_format(node), return_overflow=True)
    negative = x < 0
    return np.where(negative, neg, pos), int(np.count_nonzero(np.where(negative, neg_bad, pos_bad)))


def leaky_relu(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    return _negative_side(node, xs[0], fmts[0], "alpha")


def prelu(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    return _negative_side(node, xs[0], fmts[0], "slope")


def clip(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """``y = out_t(min(max(x, lo), hi))`` with ``x`` exact and ``lo``/``hi`` the output format's values
    nearest the bounds (rounded by its rounding mode, saturated to its range whatever its overflow mode).

    The clamp happens on exact values in a format that holds ``x`` and both bounds, so a clamped element
    never counts as an overflow (ReLU6 on a signed input reports none) and a WRAP/SAT_ZERO output cannot
    turn a large input into a small value before it is compared.
    """
    x, fx = xs[0], fmts[0]
    out_fmt = _out_format(node)
    frac = max(fx.frac_bits, out_fmt.frac_bits)
    int_bits = max(fx.int_bits, out_fmt.int_bits) + 1
    common = Fixed(int_bits + frac, int_bits, True)  # holds every value of fx and of out_fmt exactly
    y = fixed.cast(x, fx, common)
    nearest = replace(out_fmt, overflow=Overflow.SAT)
    for bound, pick in ((node.attrs["min"], np.maximum), (node.attrs["max"], np.minimum)):
        if bound is not None:
            b = fixed.cast(np.array([_scalar(bound, nearest)]), nearest, common)
            y = pick(y, b[0])
    return _finish(node, y, common)


def quant(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """QONNX's quantizer on its power-of-two grids (:mod:`fpgac.ir.quant`): per group of elements sharing
    a scale, ``g_t q = x`` (CEIL: ``x`` plus one step of ``g_t`` less one of ``x``, then ``TRN``), the
    clamp to QONNX's integer range, then the exact move into the output format. A bipolar quantizer
    selects ``+scale`` or ``-scale`` by the sign. The clamp is the op's meaning, so nothing counts as an
    overflow."""
    plan = quant_plan(node)
    x, fx = xs[0], fmts[0]
    out = _out_format(node)
    y = np.zeros(x.shape, dtype=fixed.mantissa_dtype(out))
    for k, group in enumerate(plan.groups):
        if group.bipolar:
            q = np.where(x >= 0, 1, -1)
        else:
            src, fsrc = x, fx
            offset = ceil_offset(fx, group) or odd_offset(fx, group)
            if offset:
                int_bits = max(fx.int_bits, 1 - group.frac) + 1  # holds x plus up to one step
                fsrc = Fixed(int_bits + fx.frac_bits, int_bits, fx.signed)
                src = fixed.cast(x, fx, fsrc) + offset
            step = 1 if odd_offset(fx, group) else 0  # ties to odd: one step up before, taken off after
            q = np.clip(fixed.cast(src, fsrc, group.fmt), group.lo + step, group.hi + step) - step
        moved = fixed.cast(fixed.as_mantissas(q, group.fmt), group.fmt, out)
        y = np.where(plan.group_of == k, moved, y) if len(plan.groups) > 1 else moved
    return y, 0


def quant_plan(node: Node) -> FixedPlan:
    """The node's :class:`~fpgac.ir.quant.FixedPlan` (its scale and zero point as quantized)."""
    try:
        return fixed_plan(
            node.attrs, node.params["scale"].data, node.params["zero_point"].data, node.output.shape
        )
    except ValueError as exc:
        raise FixedKernelError(f"node {node.name!r} (quant): {exc}") from None


def hard_sigmoid(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """``t = x * alpha + beta`` exact, clamped to [0, 1] exactly, then one cast."""
    alpha, fa = _param(node, "alpha")
    beta, fb = _param(node, "beta")
    product, fp = fixed.mul(xs[0], fmts[0], alpha, fa)
    t, ft = fixed.add(product, fp, beta, fb)
    if ft.frac_bits < 0:  # 1 is not on a grid coarser than 1: clamp on the integer grid (an exact shift)
        ft, t = (
            Fixed(ft.int_bits, ft.int_bits, ft.signed),
            fixed.cast(t, ft, Fixed(ft.int_bits, ft.int_bits, ft.signed)),
        )
    return _finish(node, np.clip(t, 0, 1 << ft.frac_bits), ft)


def table_index(m: np.ndarray, fmt: Fixed, shift: int, offset: int, size: int) -> np.ndarray:
    """``clamp(floor(x / 2**shift) + offset, 0, size - 1)`` on the raw bits of ``x``.

    ``x / 2**shift`` is ``m * 2**-(frac + shift)``: an arithmetic right shift when ``frac + shift >= 0``,
    else a left shift. Any ``|floor(x / 2**shift)| > size + |offset|`` clamps to an end of the table
    whatever the offset, so values are first limited to that magnitude (and a left shift to the bits that
    can still matter), which keeps the int64 arithmetic from overflowing for any width, shift or offset.
    """
    s = fmt.frac_bits + shift
    m = np.asarray(m)
    limit = size + abs(offset)
    if s >= 0:
        idx = np.clip(m >> (s if m.dtype == object else min(s, 63)), -limit, limit)
    else:
        idx = np.clip(m, -limit, limit).astype(np.int64) << min(-s, limit.bit_length() + 1)
    return np.clip(np.asarray(idx).astype(np.int64) + offset, 0, size - 1)


def _lookup(node: Node, m: np.ndarray, fmt: Fixed) -> tuple[np.ndarray, Fixed]:
    table, ft = _param(node, "table")
    a = node.attrs
    return table[table_index(m, fmt, a["table_shift"], a["table_offset"], table.shape[0])], ft


def sigmoid(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    return _finish(node, *_lookup(node, xs[0], fmts[0]))


tanh = sigmoid


def elu(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    """``x >= 0 ? out_t(x) : table[x]`` (selu: ``out_t(x * gamma)`` on the positive side)."""
    x, fx = xs[0], fmts[0]
    if "gamma" in node.params:
        gamma, fg = _param(node, "gamma")
        pos_m, pos_f = fixed.mul(x, fx, gamma, fg)
    else:
        pos_m, pos_f = x, fx
    pos, pos_bad = fixed.cast(pos_m, pos_f, _out_format(node), return_overflow=True)
    table_m, table_f = _lookup(node, x, fx)
    neg, neg_bad = fixed.cast(table_m, table_f, _out_format(node), return_overflow=True)
    negative = x < 0
    return np.where(negative, neg, pos), int(np.count_nonzero(np.where(negative, neg_bad, pos_bad)))


selu = elu


def softmax(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x, fx = xs[0], fmts[0]
    axis = node.attrs["axis"] + 1
    d, fd = fixed.sub(x, fx, x.max(axis=axis, keepdims=True), fx)
    e, fe = _lookup(node, d, fd)
    acc = _acc(node)
    if acc.frac_bits != fe.frac_bits or fe.signed:
        raise FixedKernelError(f"node {node.name!r} (softmax): sum format {acc} does not match table {fe}")
    s = _wrap_into(e.sum(axis=axis, keepdims=True), fe.frac_bits, acc)
    frac = _out_format(node).frac_bits
    p = (e.astype(object) << frac) // s.astype(object) if frac > 40 else (e << frac) // s
    return _finish(node, np.asarray(p), Fixed(frac + 2, 2, False))


def lrn(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x, fx = xs[0], fmts[0]
    size, channels = node.attrs["size"], x.shape[1]
    before = (size - 1) // 2
    acc = _acc(node)
    wide = x.dtype == object or 2 * fx.width + size.bit_length() > 62  # squares summed in int64 below that
    squares = np.square(x.astype(object) if wide else x.astype(np.int64))
    widths = [(0, 0), (before, size - 1 - before)] + [(0, 0)] * (x.ndim - 2)
    padded = np.pad(squares, widths, constant_values=_fill(squares, 0))
    total = sum(padded[:, k : k + channels] for k in range(size))
    s = _wrap_into(np.asarray(total), 2 * fx.frac_bits, acc)
    f, ff = _lookup(node, s, acc)
    return _finish(node, *fixed.mul(x, fx, f, ff))


def reshape(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x = xs[0]
    return _finish(node, x.reshape(x.shape[0], *node.attrs["shape"]), fmts[0])


def transpose(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    return _finish(node, xs[0].transpose(0, *(p + 1 for p in node.attrs["perm"])), fmts[0])


def concat(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    parts = [_finish(node, m, f) for m, f in zip(xs, fmts, strict=True)]
    return np.concatenate([p for p, _ in parts], axis=node.attrs["axis"] + 1), sum(b for _, b in parts)


def pad(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    y, bad = _finish(node, xs[0], fmts[0])
    pads = node.attrs["pads"]
    rank = y.ndim - 1
    widths = pad_widths(pads, rank)
    if node.attrs["mode"] == "constant":
        value = _scalar(node.attrs["value"], _out_format(node))
        return np.pad(y, widths, mode="constant", constant_values=_fill(y, value)), bad
    return np.pad(y, widths, mode=node.attrs["mode"]), bad


def _sum_of_squares(m: np.ndarray) -> np.ndarray:
    """Per sample, the exact sum of the squares of ``m`` (N, ...) as an (N, 1) array (Python ints when an
    int64 sum could overflow)."""
    flat = m.reshape(m.shape[0], -1)
    top = int(np.abs(flat).max(initial=0))
    if flat.dtype == object or top**2 * max(flat.shape[1], 1) >= 2**62:
        flat = flat.astype(object)
    else:
        flat = flat.astype(np.int64)
    return np.asarray((flat * flat).sum(axis=1)).reshape(-1, 1)


def patch_energy(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (x,), (fx,) = xs, fmts
    h = patches(x, node.attrs, _fill(x, 0))
    if "basis" not in node.params:
        total, frac = _sum_of_squares(h), 2 * fx.frac_bits
    else:
        basis, fb = _param(node, "basis")
        dtype = _matmul_dtype(basis.T, _max_abs_mantissa(fx))
        acc = _acc(node)
        if acc.frac_bits != fx.frac_bits + fb.frac_bits:
            raise FixedKernelError(f"node {node.name!r} (patch_energy): accumulator {acc} drops product bits")
        projections = _wrap_into(_int_matmul(h, basis.T, dtype), acc.frac_bits, acc)
        total, frac = _sum_of_squares(projections), 2 * acc.frac_bits
    out = _out_format(node)
    if out.frac_bits != frac:
        raise FixedKernelError(f"node {node.name!r} (patch_energy): output {out} is not the exact sum's grid")
    return _wrap_into(total, frac, out), 0


def ood_flag(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (num, den), (fnum, fden) = xs, fmts
    tau, ft = _param(node, "tau")
    scaled, fs = fixed.mul(den, fden, tau, ft)
    diff, _ = fixed.sub(num, fnum, scaled, fs)
    return _finish(node, (diff < 0).astype(np.int64), Fixed(2, 2, False))


# The kernels that take float64 mantissas (see the module docstring) as they are.
FLOAT_MANTISSA_OPS = frozenset({"dense", "conv", "relu", "max_pool", "reshape", "transpose"})

FIXED_OPS: dict[str, FixedFn] = {
    "dense": dense,
    "conv": conv,
    "max_pool": max_pool,
    "avg_pool": avg_pool,
    "reduce": reduce,
    "affine": affine,
    "add": add,
    "sub": sub,
    "mul": mul,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "prelu": prelu,
    "clip": clip,
    "quant": quant,
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "tanh": tanh,
    "elu": elu,
    "selu": selu,
    "softmax": softmax,
    "lrn": lrn,
    "reshape": reshape,
    "transpose": transpose,
    "concat": concat,
    "pad": pad,
    "patch_energy": patch_energy,
    "ood_flag": ood_flag,
}
