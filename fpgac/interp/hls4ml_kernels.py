"""Bit-exact kernels of the hls4ml ops (``hls4ml_*``) that the hls4ml lowering puts into the IR.

Most ops of an hls4ml build compute what fpgac's own kernels compute (dense and conv: exact products
summed in ``accum_t`` and one cast; relu, add, concat, max pooling: exact values and one cast), so the
lowering keeps them and :mod:`fpgac.interp.fixed_kernels` runs them. The ops here are the ones whose
arithmetic in hls4ml's ``nnet_utils`` headers differs; each function names the C++ it mirrors:

* ``hls4ml_sigmoid`` / ``hls4ml_tanh`` (``nnet::sigmoid`` / ``nnet::tanh``, ``nnet_activation.h``):
  ``int data_round = x * table_size / R`` (R = 16 or 8) converts to ``int`` by truncating *toward zero*,
  then ``index = data_round + table_size / 2``, clamped; ``res = (res_T) table[index]``. Tables are
  computed by the lowering exactly as hls4ml's ``init_*_table`` does (float arithmetic, ``table_t``).
* ``hls4ml_elu`` / ``hls4ml_selu`` (``nnet::elu`` / ``nnet::selu``): ``x >= 0`` gives ``(res_T) x`` (selu:
  ``(res_T)(lambda * x)``, ``lambda`` an ``ap_ufixed<16,1>``); below, ``int index = x * N / -8`` (truncating
  toward zero), clamped to ``N - 1``, gives ``(res_T)(alpha * table[index])`` (selu: ``table[index]``).
* ``hls4ml_softmax`` (``nnet::softmax_stable``): ``d = inp_norm_t(max - x)``; ``exp_res = exp_table[top
  bits of d]`` in ``accum_t``; ``s = inv_inp_t(sum exp_res)``; ``res = (res_T)(exp_res * inv_table[top bits
  of s])``.
* ``hls4ml_mean`` (``nnet::global_pooling2d_cl`` with ``nnet::avg``): ``accum_t y = sum; y /= n;`` where
  ``/=`` divides the mantissa by ``n`` truncating toward zero, then ``static_cast<res_T>``.
* ``hls4ml_avg_pool`` (``nnet::pooling2d_cl`` with ``nnet::avg``): the same per window, divided by the
  window's ``patch_size``: every cell with ``count_pad``, else the cells inside the input (the lowering
  only makes nodes where that is the model's count).

The table index helpers return int64 arrays; inputs are mantissa arrays as everywhere in the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fpgac.interp.fixed_kernels import FixedFn, FixedKernelError, _finish, _out_format, _param, window_sums
from fpgac.ir import fixed
from fpgac.ir.graph import Node
from fpgac.ir.types import Fixed

# Half-width of the input range each table covers (hls4ml's constants in nnet_activation.h).
TABLE_SPAN = {"hls4ml_sigmoid": 8, "hls4ml_tanh": 4}


def _trunc_div(num: np.ndarray, den: int | np.ndarray) -> np.ndarray:
    """C integer division (truncation toward zero) of an integer array by positive integers."""
    q = np.abs(num) // den
    return np.where(num < 0, -q, q)


def table_index(m: np.ndarray, fmt: Fixed, size: int, span: int) -> np.ndarray:
    """``clamp(int(x * size / (2 * span)) + size / 2)`` with ``int()`` truncating toward zero.

    ``x * size / (2 span)`` is ``m * size / (2 span 2**F)``: exact in ap_fixed (the product widens, the
    division by an int keeps x's fraction and divides its mantissa exactly), so the only rounding is the
    conversion to ``int``; nested truncations toward zero compose into one.
    """
    num = np.asarray(m).astype(object) * size if fmt.width > 40 else np.asarray(m, dtype=np.int64) * size
    den = 2 * span
    frac = fmt.frac_bits
    idx = _trunc_div(num, den << frac) if frac >= 0 else _trunc_div(num << -frac, den)
    return np.clip(np.asarray(idx).astype(object) + size // 2, 0, size - 1).astype(np.int64)


def table(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    values, ft = _param(node, "table")
    index = table_index(xs[0], fmts[0], values.shape[0], TABLE_SPAN[node.op])
    return _finish(node, values[index], ft)


# hls4ml's SELU scale: ``static const ap_ufixed<16, 1> lambda = 1.0507009873554805`` (truncated).
SELU_LAMBDA = Fixed(16, 1, False)
ELU_SPAN = 8  # the tables cover (-8, 0]


def negative_index(m: np.ndarray, fmt: Fixed, size: int) -> np.ndarray:
    """``int(x * size / -8)`` for x < 0, clamped to ``size - 1`` (as :func:`table_index`, exact until the
    conversion to int, which truncates toward zero)."""
    num = -(np.asarray(m).astype(object) if fmt.width > 40 else np.asarray(m, dtype=np.int64)) * size
    frac = fmt.frac_bits
    idx = _trunc_div(num, ELU_SPAN << frac) if frac >= 0 else _trunc_div(num << -frac, ELU_SPAN)
    return np.clip(np.asarray(idx).astype(object), 0, size - 1).astype(np.int64)


def elu(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x, fx = xs[0], fmts[0]
    values, ft = _param(node, "table")
    negative = x < 0
    neg = values[negative_index(np.where(negative, x, 0), fx, values.shape[0])]
    if node.op == "hls4ml_elu":
        alpha, fa = _param(node, "alpha")
        neg_m, neg_f = fixed.mul(neg, ft, alpha, fa)
        pos_m, pos_f = x, fx
    else:
        lam = fixed.quantize(np.array([1.0507009873554805]), SELU_LAMBDA)
        neg_m, neg_f = neg, ft
        pos_m, pos_f = fixed.mul(lam, SELU_LAMBDA, x, fx)
    pos, pos_bad = fixed.cast(pos_m, pos_f, _out_format(node), return_overflow=True)
    out, neg_bad = fixed.cast(neg_m, neg_f, _out_format(node), return_overflow=True)
    return np.where(negative, out, pos), int(np.count_nonzero(np.where(negative, neg_bad, pos_bad)))


def top_bits(m: np.ndarray, fmt: Fixed, size: int) -> np.ndarray:
    """``softmax_idx_from_real_val``: the top ``log2(size)`` bits of the raw two's complement pattern."""
    n = math.ceil(math.log2(size))
    raw = np.asarray(m, dtype=np.int64) & ((1 << fmt.width) - 1) if fmt.width < 63 else np.asarray(m)
    return (raw >> (fmt.width - n)) & ((1 << n) - 1) if fmt.width >= n else raw << (n - fmt.width)


def softmax(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    x, fx = xs[0], fmts[0]
    a = node.attrs
    axis = a["axis"] + 1
    acc, inp_norm, inv_inp = a["acc"], a["inp_norm"], a["inv_inp"]
    exp_table, f_exp = _param(node, "exp_table")
    inv_table, f_inv = _param(node, "inv_table")
    d, fd = fixed.sub(x.max(axis=axis, keepdims=True), fx, x, fx)
    d = fixed.cast(d, fd, inp_norm)
    e = fixed.cast(exp_table[top_bits(d, inp_norm, exp_table.shape[0])], f_exp, acc)
    total = fixed.cast(e.sum(axis=axis, keepdims=True), Fixed(64, 64 - acc.frac_bits, True), acc)
    s = fixed.cast(total, acc, inv_inp)
    inv = inv_table[top_bits(s, inv_inp, inv_table.shape[0])]
    return _finish(node, *fixed.mul(e, acc, inv, f_inv))


def _divided(node: Node, total: np.ndarray, fx: Fixed, count: int | np.ndarray) -> tuple[np.ndarray, int]:
    """``accum_t y = sum; y /= count; (res_T) y``: the exact sum (of mantissas in ``fx``) into ``acc``."""
    acc = node.attrs["acc"]
    if acc.frac_bits < fx.frac_bits:
        raise FixedKernelError(f"node {node.name!r} ({node.op}): accumulator {acc} drops fraction bits")
    width = int(np.abs(total).max(initial=0)).bit_length() + 2
    y = fixed.cast(total, Fixed(width, width - fx.frac_bits, True), acc)  # accum_t y = sum (exact or wrapped)
    return _finish(node, _trunc_div(y, count), acc)


def mean(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (x,), (fx,) = xs, fmts
    a = node.attrs
    if a["mode"] != "mean":
        raise FixedKernelError(f"node {node.name!r} ({node.op}): mode must be mean")
    axes = tuple(ax + 1 for ax in a["axes"])
    count = math.prod(x.shape[ax] for ax in axes)
    total = x.astype(object if x.dtype == object else np.int64).sum(axis=axes, keepdims=a["keepdims"])
    return _divided(node, total, fx, count)


def avg_pool(node: Node, xs: Sequence[np.ndarray], fmts: Sequence[Fixed]) -> tuple[np.ndarray, int]:
    (x,), (fx,) = xs, fmts
    total, counts = window_sums(node, x.astype(object if x.dtype == object else np.int64))
    return _divided(node, total, fx, counts)


HLS4ML_OPS: dict[str, FixedFn] = {
    "hls4ml_sigmoid": table,
    "hls4ml_tanh": table,
    "hls4ml_softmax": softmax,
    "hls4ml_mean": mean,
    "hls4ml_avg_pool": avg_pool,
    "hls4ml_elu": elu,
    "hls4ml_selu": elu,
}
