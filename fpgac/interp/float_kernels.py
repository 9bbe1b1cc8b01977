"""Float32 reference semantics of every IR op, vectorized over the batch.

Each function takes the node's input arrays (batch on axis 0, then the value's
per-sample shape), ``node.attrs`` and ``node.params`` and returns the output
array. Attributes follow the op table in :mod:`fpgac.ir.ops`, so axes and pads
are *per sample* and shift by one here, where the batch axis is present.

Why float32 and BLAS: this interpreter is the reference the bit-accurate
simulator and the HLS backends are compared against, and it must agree with
onnxruntime, which computes in float32. Convolutions are lowered to one
``np.matmul`` per call (im2col): the padded input is viewed window by window
with ``sliding_window_view`` (no copy), the view is packed once into a
``(batch, groups, C/g * prod(kernel), positions)`` matrix and multiplied by the
``(groups, O/g, C/g * prod(kernel))`` weight, which yields NCHW output directly
with no transpose. That runs ResNet-50 at 224x224 in about 0.1 s per sample on
two cores, as fast as onnxruntime; a loop over kernel taps would be one BLAS call
per tap, a float64 or pure-numpy loop several times slower. Float32 sums
differ from onnxruntime's only in summation order, which the tests bound with
``rtol=atol=1e-5``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fpgac.ir.graph import Param
from fpgac.ir.quant import quant_float
from fpgac.ir.shapes import window_out

OpFn = Callable[[Sequence[np.ndarray], Mapping[str, Any], Mapping[str, Param]], np.ndarray]

F32 = np.float32


def _param(params: Mapping[str, Param], key: str) -> np.ndarray | None:
    param = params.get(key)
    return None if param is None else np.asarray(param.data, dtype=F32)


# -- windows (conv, pools) ----------------------------------------------------------------------


def windows(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    out: Sequence[int],
    fill: float | np.ndarray,
) -> np.ndarray:
    """A strided view ``(N, C, *out, *kernel)`` of every window of ``x`` (N, C, *spatial).

    ``x`` is padded with ``fill`` by ``pads`` and, where ``out`` asks for windows
    that run past the end padding (pooling with ``ceil_mode``), by as much more
    as the last window needs. The caller decides what those extra cells mean;
    ``fill`` may be a 0-d object array, which keeps wide mantissas exact.
    """
    nd = len(kernel)
    x = padded(x, kernel, strides, pads, dilations, out, fill)
    spans = [dilations[i] * (kernel[i] - 1) + 1 for i in range(nd)]
    view = sliding_window_view(x, spans, axis=tuple(range(2, 2 + nd)))
    positions = [slice(None, (out[i] - 1) * strides[i] + 1, strides[i]) for i in range(nd)]
    taps = [slice(None, None, d) for d in dilations]
    return view[(slice(None), slice(None), *positions, *taps)]


def padded(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    out: Sequence[int],
    fill: float | np.ndarray,
) -> np.ndarray:
    """``x`` padded as :func:`windows` pads it (``x`` itself when there is nothing to pad)."""
    nd = len(kernel)
    widths = [(0, 0), (0, 0)]
    for i in range(nd):
        span = dilations[i] * (kernel[i] - 1) + 1
        need = (out[i] - 1) * strides[i] + span
        have = x.shape[2 + i] + pads[i] + pads[nd + i]
        widths.append((pads[i], pads[nd + i] + max(0, need - have)))
    if all(w == (0, 0) for w in widths):
        return x
    # One fill and one copy into the middle: np.pad does the same work in several passes (3x slower on
    # the digits CNN's 8x8 images).
    sizes = list(zip(x.shape, widths, strict=True))
    y = np.full([n + before + after for n, (before, after) in sizes], fill, x.dtype)
    y[tuple(slice(before, before + n) for n, (before, _) in sizes)] = x
    return y


def pool_out(x: np.ndarray, attrs: Mapping[str, Any], dilations: Sequence[int]) -> list[int]:
    kernel, strides, pads = attrs["kernel"], attrs["strides"], attrs["pads"]
    nd = len(kernel)
    return [
        window_out(
            x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nd + i], dilations[i], attrs["ceil_mode"]
        )
        for i in range(nd)
    ]


def conv(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """Grouped N-d cross-correlation as one batched matmul over an im2col matrix."""
    (x,) = xs
    weight = _param(params, "weight")
    assert weight is not None
    groups, strides, pads, dilations = attrs["groups"], attrs["strides"], attrs["pads"], attrs["dilations"]
    out_ch, cg, *kernel = weight.shape
    nd = len(kernel)
    n = x.shape[0]
    out = [
        window_out(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nd + i], dilations[i], False)
        for i in range(nd)
    ]
    positions, taps = math.prod(out), cg * math.prod(kernel)
    w = weight.reshape(groups, out_ch // groups, taps)
    if taps == cg and all(s == 1 for s in strides) and not any(pads):
        cols = x.reshape(n, groups, cg, positions)  # 1x1 convolution: the input is the matrix
    else:
        view = windows(x, kernel, strides, pads, dilations, out, 0.0)  # (N, C, *out, *kernel)
        view = view.reshape(n, groups, cg, *out, *kernel)
        order = (0, 1, 2, *range(3 + nd, 3 + 2 * nd), *range(3, 3 + nd))
        cols = view.transpose(order).reshape(n, groups, taps, positions)
    y = np.matmul(w, cols)  # (N, groups, O/g, positions)
    y = y.reshape(n, out_ch, *out)
    bias = _param(params, "bias")
    if bias is not None:
        y += bias.reshape(out_ch, *([1] * nd))
    return y


def dense(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    (x,) = xs
    weight = _param(params, "weight")
    assert weight is not None
    y = np.matmul(x, weight.T)
    bias = _param(params, "bias")
    if bias is not None:
        y += bias
    return y


def max_pool(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """Max over windows of an input padded with -inf, so padding never wins.

    A NaN in a window makes that output NaN. onnxruntime has no single rule to
    copy: its 1-D MaxPool skips NaN (an all-NaN window gives -FLT_MAX), its 2-D
    kernel skips NaN unless the whole window is NaN, and ReduceMax keeps or drops
    NaN depending on where it sits. Propagating is the rule that hides nothing.
    """
    (x,) = xs
    nd = len(attrs["kernel"])
    out = pool_out(x, attrs, attrs["dilations"])
    view = windows(x, attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"], out, -np.inf)
    return view.max(axis=tuple(range(-nd, 0)))


def divisor_1d(size: int, k: int, s: int, pb: int, pe: int, out: int, include_pad: bool) -> np.ndarray:
    """How many cells of each window count towards the mean along one axis.

    Windows are clipped to the padded input ``[-pb, size + pe)`` when padding
    counts, else to the input ``[0, size)``. With ``ceil_mode`` the last window
    can run past the end padding; those cells never count (onnxruntime and
    PyTorch agree; see tests/unit/test_float_interpreter.py).
    """
    starts = np.arange(out) * s - pb
    lo, hi = (-pb, size + pe) if include_pad else (0, size)
    # A window of padding only (pads >= kernel: legal in the IR, refused by onnxruntime and
    # PyTorch) sums to 0; dividing by 1 keeps it 0 instead of 0/0.
    return np.maximum(np.minimum(starts + k, hi) - np.maximum(starts, lo), 1)


def avg_pool(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """Window sums divided by a separable per-axis count (see :func:`divisor_1d`)."""
    (x,) = xs
    kernel, strides, pads = attrs["kernel"], attrs["strides"], attrs["pads"]
    nd = len(kernel)
    ones = [1] * nd
    out = pool_out(x, attrs, ones)
    view = windows(x, kernel, strides, pads, ones, out, 0.0)
    total = view.sum(axis=tuple(range(-nd, 0)), dtype=F32)
    divisor = np.ones((), dtype=F32)
    for i in range(nd):
        counts = divisor_1d(
            x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nd + i], out[i], attrs["count_include_pad"]
        )
        shape = [1] * nd
        shape[i] = out[i]
        divisor = divisor * counts.astype(F32).reshape(shape)
    return total / divisor


# -- reductions and normalizations ----------------------------------------------------------------


def reduce(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    (x,) = xs
    axes = tuple(a + 1 for a in attrs["axes"])
    fn = np.mean if attrs["mode"] == "mean" else np.max
    return fn(x, axis=axes, keepdims=attrs["keepdims"])


def softmax(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """Subtracts the max before ``exp`` so large logits cannot overflow."""
    (x,) = xs
    axis = attrs["axis"] + 1
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def lrn(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """ONNX LRN: the window of ``size`` channels is centred with its extra channel after."""
    (x,) = xs
    size = attrs["size"]
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    squares = np.pad(np.square(x), [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    channels = x.shape[1]
    square_sum = sum(squares[:, i : i + channels] for i in range(size))
    base = F32(attrs["bias"]) + F32(attrs["alpha"] / size) * square_sum
    return x / np.power(base, F32(attrs["beta"]))


def affine(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """Params align with the trailing per-sample axes, exactly as numpy broadcasts them."""
    (x,) = xs
    return x * _param(params, "scale") + _param(params, "shift")


# -- elementwise ------------------------------------------------------------------------------------


def _aligned(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Insert unit axes after the batch so per-sample shapes align at their trailing axes."""
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[0], *([1] * (rank - x.ndim)), *x.shape[1:]) for x in xs]


def add(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """Left to right, like onnxruntime's ``Sum`` (not in place: a later input may broadcast wider)."""
    first, *rest = _aligned(xs)
    y = first
    for x in rest:
        y = y + x
    return y


def sub(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    a, b = _aligned(xs)
    return a - b


def mul(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    a, b = _aligned(xs)
    return a * b


def div(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    a, b = _aligned(xs)
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / b


def quant(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    scale, zero_point = _param(params, "scale"), _param(params, "zero_point")
    assert scale is not None and zero_point is not None
    x = np.asarray(xs[0], dtype=F32)
    return quant_float(
        x, scale, zero_point, attrs["bits"], attrs["signed"], attrs["narrow"], attrs["rounding"]
    )


def relu(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    return np.maximum(xs[0], F32(0))


def leaky_relu(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    x = xs[0]
    return np.where(x < 0, x * F32(attrs["alpha"]), x)


def prelu(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    x = xs[0]
    return np.where(x < 0, x * _param(params, "slope"), x)


def clip(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """A missing bound is no bound (ONNX Clip with an empty min or max input)."""
    y = xs[0]
    if attrs["min"] is not None:
        y = np.maximum(y, F32(attrs["min"]))
    if attrs["max"] is not None:
        y = np.minimum(y, F32(attrs["max"]))
    return y


def sigmoid(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """``exp`` of ``-|x|`` only, so no input overflows."""
    x = xs[0]
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, F32(1) / (F32(1) + e), e / (F32(1) + e))


def hard_sigmoid(
    xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]
) -> np.ndarray:
    y = xs[0] * F32(attrs["alpha"]) + F32(attrs["beta"])
    return np.clip(y, F32(0), F32(1))


def tanh(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    return np.tanh(xs[0])


def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    """``expm1`` of the negative part only: no overflow for large x, no cancellation near 0."""
    return np.where(x > 0, x, F32(alpha) * np.expm1(np.minimum(x, F32(0))))


def elu(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    return _elu(xs[0], attrs["alpha"])


def selu(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    return F32(attrs["gamma"]) * _elu(xs[0], attrs["alpha"])


# -- data movement ----------------------------------------------------------------------------------


def reshape(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    x = xs[0]
    return x.reshape(x.shape[0], *attrs["shape"])


def transpose(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    return xs[0].transpose(0, *(p + 1 for p in attrs["perm"]))


def concat(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    return np.concatenate(list(xs), axis=attrs["axis"] + 1)


def pad_widths(pads: Sequence[int], rank: int) -> list[tuple[int, int]]:
    """``np.pad`` widths for per-sample ``pads`` (begins, then ends), the batch axis unpadded."""
    return [(0, 0)] + [(pads[i], pads[rank + i]) for i in range(rank)]


def pad(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    """ONNX ``reflect`` excludes the edge cell, as numpy's ``reflect`` does; ``edge`` repeats it."""
    x = xs[0]
    pads = attrs["pads"]
    rank = x.ndim - 1
    widths = pad_widths(pads, rank)
    if attrs["mode"] == "constant":
        return np.pad(x, widths, mode="constant", constant_values=F32(attrs["value"]))
    return np.pad(x, widths, mode=attrs["mode"])


# -- the OOD monitor ---------------------------------------------------------------------------------


def patches(x: np.ndarray, attrs: Mapping[str, Any], fill: float | np.ndarray) -> np.ndarray:
    """``(N, P, T)``: the P patches of T taps a patch_energy node reads (see its definition in ir/ops.py).

    A conv's windows padded with ``fill``, taps in the order of a conv weight's row (channel, then the
    kernel's axes), so a basis row lines up with a weight row; without a kernel, the rows of the last axis.
    """
    kernel = attrs["kernel"]
    n = x.shape[0]
    if not kernel:
        return x.reshape(n, -1, x.shape[-1])
    nd = len(kernel)
    strides, pads, dilations = attrs["strides"], attrs["pads"], attrs["dilations"]
    out = [
        window_out(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nd + i], dilations[i], False)
        for i in range(nd)
    ]
    view = windows(x, kernel, strides, pads, dilations, out, fill)
    order = (0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd))
    return view.transpose(order).reshape(n, math.prod(out), -1)


def patch_energy(
    xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]
) -> np.ndarray:
    """Summed in float64 (a float32 sum of thousands of squares drifts), returned as float32."""
    h = patches(xs[0].astype(np.float64), attrs, 0.0)
    basis = params.get("basis")
    if basis is not None:
        h = h @ np.asarray(basis.data, dtype=np.float64).T
    return np.square(h).sum(axis=(1, 2)).reshape(-1, 1)


def ood_flag(xs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, Param]) -> np.ndarray:
    num, den = xs
    return (num < attrs["tau"] * den).astype(F32)


FLOAT_OPS: dict[str, OpFn] = {
    "dense": dense,
    "conv": conv,
    "max_pool": max_pool,
    "avg_pool": avg_pool,
    "reduce": reduce,
    "affine": affine,
    "add": add,
    "sub": sub,
    "mul": mul,
    "div": div,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "prelu": prelu,
    "quant": quant,
    "clip": clip,
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
"""Every IR op's float semantics; a unit test checks it covers ``fpgac.ir.OPS`` exactly."""

# The hls4ml lowering's ops compute, in float, the functions they approximate in fixed point.
FLOAT_OPS.update(
    {
        "hls4ml_sigmoid": sigmoid,
        "hls4ml_tanh": tanh,
        "hls4ml_softmax": softmax,
        "hls4ml_mean": reduce,
        "hls4ml_avg_pool": avg_pool,
        "hls4ml_elu": elu,
        "hls4ml_selu": selu,
    }
)
