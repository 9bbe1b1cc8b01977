"""ONNX op converters: one function per ONNX op, registered in :data:`CONVERTERS`.

A converter lowers one ONNX node whose inputs include at least one activation
(nodes on constants only are folded in ``folding.py`` before converters see
them). It returns the node's outputs: IR values for activations, numpy arrays for
constants. ONNX axis 0 is the batch; converters translate axes with
:meth:`NodeContext.axis`, which rejects the batch axis, and reject anything else
that would mix the batch into other dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import SupportsInt

import numpy as np

from fpgac.frontend.constants import BatchDim
from fpgac.frontend.context import NodeContext, Tensor
from fpgac.ir import Value

Converter = Callable[[NodeContext], list[Tensor]]

# Clip bounds at or beyond these are "no bound" (exporters write float32 extremes).
_FLOAT_LIMIT = 3.0e38


# -- helpers ---------------------------------------------------------------------------------------
def _per_sample_param(ctx: NodeContext, data: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A constant operand of an elementwise op, as a param broadcasting against one sample.

    ONNX broadcasts right-aligned, so a constant of the activation's full rank has the
    batch axis first; it must be 1 there (one value for the whole batch).
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim > len(shape):
        if data.ndim > len(shape) + 1 or data.shape[0] != 1:
            raise ctx.error(
                f"{what} of shape {list(data.shape)} varies along the batch axis or adds axes to the "
                f"activation of shape {['N', *shape]}"
            )
        data = data[0]
    try:
        out = np.broadcast_shapes(shape, data.shape)
    except ValueError:
        raise ctx.error(
            f"{what} of shape {list(data.shape)} does not broadcast against {list(shape)}"
        ) from None
    if tuple(out) != tuple(shape):
        raise ctx.error(
            f"{what} of shape {list(data.shape)} would broadcast the activation {list(shape)} to {list(out)}"
        )
    return data


def _affine(ctx: NodeContext, x: Value, scale: np.ndarray, shift: np.ndarray) -> Value:
    return ctx.emit("affine", [x], params={"scale": scale, "shift": shift})


def _same_rank(ctx: NodeContext, values: list[Value]) -> None:
    ranks = {len(v.shape) for v in values}
    if len(ranks) > 1:
        raise ctx.error(
            "activations of different ranks would broadcast the batch axis against a feature axis: "
            + ", ".join(str(["N", *v.shape]) for v in values)
        )


def _split_operands(ctx: NodeContext) -> tuple[list[Value], list[np.ndarray]]:
    acts = [v for v in ctx.inputs if isinstance(v, Value)]
    consts = [
        ctx.floats(i, "operand")
        for i, v in enumerate(ctx.inputs)
        if v is not None and not isinstance(v, Value)
    ]
    return acts, consts


def _reshape(ctx: NodeContext, x: Value, shape: tuple[int, ...], suffix: str = "") -> Value:
    return ctx.emit("reshape", [x], {"shape": list(shape)}, suffix=suffix)


def _window_pads(
    ctx: NodeContext, spatial: tuple[int, ...], kernel: list[int], strides: list[int], dilations: list[int]
) -> list[int]:
    """Resolve ``auto_pad``/``pads`` into explicit begins-then-ends pads."""
    nd = len(kernel)
    auto_pad = ctx.str_attr("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = ctx.ints_attr("pads", [0] * (2 * nd))
        assert pads is not None
        if len(pads) != 2 * nd:
            raise ctx.error(f"pads {pads} must have {2 * nd} entries")
        return pads
    if auto_pad == "VALID":
        return [0] * (2 * nd)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.error(f"auto_pad {auto_pad!r} is not supported")
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def _window_attrs(ctx: NodeContext, x: Value, kernel: list[int]) -> dict[str, list[int]]:
    nd = len(kernel)
    if len(x.shape) != nd + 1:
        raise ctx.error(
            f"a {nd}-d window needs an input of shape [N, C, {nd} spatial dims], got {['N', *x.shape]}"
        )
    strides = ctx.ints_attr("strides", [1] * nd)
    dilations = ctx.ints_attr("dilations", [1] * nd)
    assert strides is not None and dilations is not None
    if len(strides) != nd or len(dilations) != nd or min(strides + dilations, default=1) < 1:
        raise ctx.error(f"strides {strides} / dilations {dilations} do not fit a {nd}-d kernel")
    pads = _window_pads(ctx, x.shape[1:], kernel, strides, dilations)
    return {"strides": strides, "pads": pads, "dilations": dilations}


# -- dense and convolution -------------------------------------------------------------------------
def convert_gemm(ctx: NodeContext) -> list[Tensor]:
    if not isinstance(ctx.inputs[0], Value):
        raise ctx.error("Gemm with a constant first operand is not supported (the activation must be A)")
    x = ctx.act(0)
    if ctx.int_attr("transA", 0):
        raise ctx.error("transA=1 is not supported (it would transpose the batch axis)")
    if len(x.shape) != 1:
        raise ctx.error(f"Gemm input must be [N, K], got {['N', *x.shape]}")
    b = ctx.floats(1, "B")
    if b.ndim != 2:
        raise ctx.error(f"B must be 2-d, got shape {list(b.shape)}")
    weight = b if ctx.int_attr("transB", 0) else b.T
    alpha = ctx.float_attr("alpha", 1.0)
    if alpha != 1.0:  # skip the multiply: VGG-sized weights make every copy count
        weight = weight * np.float32(alpha)
    params = {"weight": weight}
    if ctx.has(2):
        c = ctx.floats(2, "C") * ctx.float_attr("beta", 1.0)
        if c.ndim == 2:
            if c.shape[0] != 1:
                raise ctx.error(f"bias C of shape {list(c.shape)} varies along the batch axis")
            c = c[0]
        try:
            params["bias"] = np.broadcast_to(c, (weight.shape[0],))
        except ValueError:
            raise ctx.error(
                f"bias C of shape {list(c.shape)} does not fit {weight.shape[0]} outputs"
            ) from None
    return [ctx.emit("dense", [x], params=params)]


def convert_matmul(ctx: NodeContext) -> list[Tensor]:
    if not isinstance(ctx.inputs[0], Value) or isinstance(ctx.inputs[1], Value):
        raise ctx.error("MatMul is supported only as activation @ constant weight")
    x = ctx.act(0)
    w = ctx.floats(1, "weight")
    if w.ndim != 2:
        raise ctx.error(f"the weight must be 2-d, got shape {list(w.shape)}")
    if not x.shape:
        raise ctx.error("a 1-d activation [N] would be multiplied across the batch")
    return [ctx.emit("dense", [x], params={"weight": w.T})]


def convert_conv(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    weight = ctx.floats(1, "weight")
    if weight.ndim < 3:
        raise ctx.error(f"weight of shape {list(weight.shape)} is not (out, in/groups, *kernel)")
    kernel = ctx.ints_attr("kernel_shape", list(weight.shape[2:]))
    if kernel != list(weight.shape[2:]):
        raise ctx.error(f"kernel_shape {kernel} does not match the weight {list(weight.shape)}")
    attrs: dict[str, object] = {**_window_attrs(ctx, x, kernel), "groups": ctx.int_attr("group", 1)}
    params = {"weight": weight}
    if ctx.has(2):
        params["bias"] = ctx.floats(2, "bias")
    return [ctx.emit("conv", [x], attrs, params)]


def convert_batch_normalization(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    if ctx.int_attr("training_mode", 0):
        raise ctx.error("training_mode=1 is not supported; export the model in eval mode")
    if not ctx.int_attr("spatial", 1):
        raise ctx.error("spatial=0 is not supported")
    if not x.shape:
        raise ctx.error("input has no channel axis")
    gamma, beta, mean, var = (ctx.floats(i, n) for i, n in enumerate(("scale", "B", "mean", "var"), start=1))
    channels = x.shape[0]
    if any(p.size != channels for p in (gamma, beta, mean, var)):
        raise ctx.error(f"parameters do not all have {channels} entries (one per channel)")
    var = var.reshape(-1) + ctx.float_attr("epsilon", 1e-5)
    if not np.all(var > 0):
        raise ctx.error("variance + epsilon must be positive")
    scale = gamma.reshape(-1) / np.sqrt(var)
    shift = beta.reshape(-1) - mean.reshape(-1) * scale
    shape = (channels,) + (1,) * (len(x.shape) - 1)
    return [_affine(ctx, x, scale.reshape(shape), shift.reshape(shape))]


# -- pooling and reductions ------------------------------------------------------------------------
def convert_max_pool(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    kernel = ctx.ints_attr("kernel_shape")
    if not kernel:
        raise ctx.error("kernel_shape is required")
    if ctx.int_attr("storage_order", 0):
        raise ctx.error("storage_order=1 is not supported")
    attrs: dict[str, object] = {**_window_attrs(ctx, x, kernel), "kernel": kernel}
    attrs["ceil_mode"] = bool(ctx.int_attr("ceil_mode", 0))
    return [ctx.emit("max_pool", [x], attrs)]


def convert_average_pool(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    kernel = ctx.ints_attr("kernel_shape")
    if not kernel:
        raise ctx.error("kernel_shape is required")
    window = _window_attrs(ctx, x, kernel)
    if any(d != 1 for d in window.pop("dilations")):
        raise ctx.error("dilated average pooling is not supported")
    attrs: dict[str, object] = {**window, "kernel": kernel}
    attrs["ceil_mode"] = bool(ctx.int_attr("ceil_mode", 0))
    attrs["count_include_pad"] = bool(ctx.int_attr("count_include_pad", 0))
    return [ctx.emit("avg_pool", [x], attrs)]


def _global_pool(mode: str) -> Converter:
    def convert(ctx: NodeContext) -> list[Tensor]:
        x = ctx.act(0)
        if len(x.shape) < 2:
            raise ctx.error(f"input {['N', *x.shape]} has no spatial axes")
        axes = list(range(1, len(x.shape)))
        return [ctx.emit("reduce", [x], {"mode": mode, "axes": axes, "keepdims": True})]

    return convert


def _reduce(mode: str, axes_input_opset: int) -> Converter:
    """ReduceMean/ReduceMax (and ReduceSum as a mean times the count)."""

    def convert(ctx: NodeContext) -> list[Tensor]:
        x = ctx.act(0)
        if ctx.opset >= axes_input_opset:
            axes = ctx.ints_input(1, "axes") if ctx.has(1) else None
        else:
            axes = ctx.ints_attr("axes")
        keepdims = bool(ctx.int_attr("keepdims", 1))
        if not axes:
            if ctx.int_attr("noop_with_empty_axes", 0):
                return [x]
            raise ctx.error("reducing over all axes includes the batch axis; give explicit axes")
        rank = len(x.shape) + 1
        ir_axes = sorted({ctx.axis(a, rank, "reduction axis") for a in axes})
        attrs = {"mode": "max" if mode == "max" else "mean", "axes": ir_axes, "keepdims": keepdims}
        if mode != "sum":
            return [ctx.emit("reduce", [x], attrs)]
        mean = ctx.emit("reduce", [x], attrs, suffix="mean")
        count = np.float32(math.prod(x.shape[a] for a in ir_axes))
        return [_affine(ctx, mean, np.full((), count, np.float32), np.zeros((), np.float32))]

    return convert


# -- activations -----------------------------------------------------------------------------------
def _unary(op: str, **defaults: float) -> Converter:
    def convert(ctx: NodeContext) -> list[Tensor]:
        attrs = {key: ctx.float_attr(key, value) for key, value in defaults.items()}
        return [ctx.emit(op, [ctx.act(0)], attrs)]

    return convert


def convert_prelu(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    slope = ctx.floats(1, "slope")
    # Leading size-1 axes beyond the per-sample rank are the batch axis (or padding of it).
    while slope.ndim > len(x.shape) and slope.shape[0] == 1:
        slope = slope[0]
    return [ctx.emit("prelu", [x], params={"slope": _per_sample_param(ctx, slope, x.shape, "slope")})]


def _bound(value: float | None) -> float | None:
    return None if value is None or abs(value) >= _FLOAT_LIMIT or math.isinf(value) else float(value)


def convert_clip(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    if ctx.opset < 11:
        low, high = ctx.attr("min"), ctx.attr("max")
    else:
        low = float(ctx.floats(1, "min").reshape(-1)[0]) if ctx.has(1) else None
        high = float(ctx.floats(2, "max").reshape(-1)[0]) if ctx.has(2) else None
    low, high = _bound(low), _bound(high)
    if low == 0.0 and high is None:
        return [ctx.emit("relu", [x])]
    return [ctx.emit("clip", [x], {"min": low, "max": high})]


def convert_hard_swish(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    gate = ctx.emit("hard_sigmoid", [x], {"alpha": 1.0 / 6.0, "beta": 0.5}, suffix="gate")
    return [ctx.emit("mul", [x, gate])]


def convert_softmax(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    rank = len(x.shape) + 1
    if ctx.opset >= 13:
        return [ctx.emit("softmax", [x], {"axis": ctx.axis(ctx.int_attr("axis", -1), rank)})]
    # Before opset 13, Softmax flattens to 2-d [prod(dims[:axis]), prod(dims[axis:])].
    axis = ctx.axis(ctx.int_attr("axis", 1), rank)
    head, tail = x.shape[:axis], x.shape[axis:]
    if len(tail) == 1:
        return [ctx.emit("softmax", [x], {"axis": axis})]
    flat = _reshape(ctx, x, (*head, math.prod(tail)), suffix="flatten")
    soft = ctx.emit("softmax", [flat], {"axis": len(head)}, suffix="softmax")
    return [_reshape(ctx, soft, x.shape)]


def convert_lrn(ctx: NodeContext) -> list[Tensor]:
    attrs = {
        "size": ctx.int_attr("size", 0),
        "alpha": ctx.float_attr("alpha", 1e-4),
        "beta": ctx.float_attr("beta", 0.75),
        "bias": ctx.float_attr("bias", 1.0),
    }
    if attrs["size"] < 1:
        raise ctx.error("size must be a positive integer")
    return [ctx.emit("lrn", [ctx.act(0)], attrs)]


# -- elementwise arithmetic ------------------------------------------------------------------------
def _arith(op: str) -> Converter:
    """Add/Sub/Mul/Div: value-value ops stay ops, a constant operand makes an ``affine``."""

    def convert(ctx: NodeContext) -> list[Tensor]:
        if len(ctx.inputs) != 2 or not ctx.has(0) or not ctx.has(1):
            raise ctx.error("needs exactly two inputs")
        a, b = ctx.inputs
        if isinstance(a, Value) and isinstance(b, Value):
            _same_rank(ctx, [a, b])
            return [ctx.emit(op, [a, b])]
        x = a if isinstance(a, Value) else b
        assert isinstance(x, Value)
        const_first = not isinstance(a, Value)
        c = _per_sample_param(
            ctx, ctx.floats(0 if const_first else 1, "constant operand"), x.shape, "constant"
        )
        one, zero = np.ones_like(c), np.zeros_like(c)
        if op == "add":
            return [_affine(ctx, x, one, c)]
        if op == "sub":
            return [_affine(ctx, x, -one, c) if const_first else _affine(ctx, x, one, -c)]
        if op == "mul":
            return [_affine(ctx, x, c, zero)]
        if const_first:
            raise ctx.error("constant / activation has no affine form and is not supported")
        if not np.all(c != 0):
            raise ctx.error("division by a constant that contains zeros")
        return [_affine(ctx, x, 1.0 / c, zero)]

    return convert


def convert_sum(ctx: NodeContext) -> list[Tensor]:
    acts, consts = _split_operands(ctx)
    _same_rank(ctx, acts)
    if not consts:
        return [ctx.emit("add", acts)] if len(acts) > 1 else [acts[0]]
    total = acts[0] if len(acts) == 1 else ctx.emit("add", acts, suffix="add")
    shift = sum(_per_sample_param(ctx, c, total.shape, "constant") for c in consts)
    shift = np.asarray(shift, dtype=np.float32)
    return [_affine(ctx, total, np.ones_like(shift), shift)]


def convert_neg(ctx: NodeContext) -> list[Tensor]:
    one = np.ones((), np.float32)
    return [_affine(ctx, ctx.act(0), -one, 0 * one)]


# -- shapes and data movement ----------------------------------------------------------------------
def convert_shape(ctx: NodeContext) -> list[Tensor]:
    """Shape of an activation: a constant whose batch entry is symbolic."""
    x = ctx.act(0)
    dims = np.asarray([BatchDim(1), *x.shape], dtype=object)
    start, end = ctx.int_attr("start", 0), ctx.attr("end")
    dims = dims[slice(start, None if end is None else int(end))]
    return [dims if any(isinstance(d, BatchDim) for d in dims) else dims.astype(np.int64)]


def convert_size(ctx: NodeContext) -> list[Tensor]:
    return [np.asarray(BatchDim(math.prod(ctx.act(0).shape)), dtype=object)]


def _is_batch_entry(ctx: NodeContext, entry: BatchDim | SupportsInt, allowzero: bool) -> bool:
    if isinstance(entry, BatchDim):
        return entry.coef == 1
    value = int(entry)
    return value == -1 or (value == 0 and not allowzero) or (ctx.batch is not None and value == ctx.batch)


def convert_reshape(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    target = list(ctx.const_raw(1, "shape").reshape(-1))
    allowzero = bool(ctx.int_attr("allowzero", 0))
    if not target or not _is_batch_entry(ctx, target[0], allowzero):
        raise ctx.error(
            f"Reshape to {target} does not keep the batch axis first; mixing the batch is not supported"
        )
    rest: list[int] = []
    for i, entry in enumerate(target[1:]):
        if isinstance(entry, BatchDim):
            raise ctx.error(f"Reshape to {target} moves the batch size into axis {i + 1}")
        value = int(entry)
        rest.append(x.shape[i] if value == 0 and not allowzero and i < len(x.shape) else value)
    size = math.prod(x.shape)
    if rest.count(-1) > 1 or (
        rest.count(-1) == 1 and not isinstance(target[0], BatchDim) and int(target[0]) == -1
    ):
        raise ctx.error(f"Reshape to {target} has more than one inferred (-1) dimension")
    if -1 in rest:
        known = math.prod(d for d in rest if d != -1)
        if known <= 0 or size % known:
            raise ctx.error(f"cannot reshape {['N', *x.shape]} to {target}")
        rest[rest.index(-1)] = size // known
    if any(d < 0 for d in rest) or math.prod(rest) != size:
        raise ctx.error(f"Reshape of {['N', *x.shape]} to {target} would mix the batch into other axes")
    return [_reshape(ctx, x, tuple(rest))]


def convert_flatten(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    rank = len(x.shape) + 1
    axis = ctx.int_attr("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if axis == 0 and ctx.batch == 1:  # keras2onnx/tf2onnx with a fixed batch of 1: (1, ...) -> (1, n)
        return [_reshape(ctx, x, (math.prod(x.shape),))]
    if not 1 <= axis <= rank or math.prod(x.shape[: axis - 1]) != 1:
        raise ctx.error(
            f"Flatten axis {ctx.attr('axis', 1)} of {['N', *x.shape]} would mix the batch into other axes"
        )
    return [_reshape(ctx, x, (math.prod(x.shape[axis - 1 :]),))]


def _axes(ctx: NodeContext) -> list[int] | None:
    if ctx.opset >= 13:
        return ctx.ints_input(1, "axes") if ctx.has(1) else None
    return ctx.ints_attr("axes")


def convert_unsqueeze(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    axes = _axes(ctx)
    if not axes:
        raise ctx.error("axes are required")
    rank = len(x.shape) + 1 + len(axes)
    ir_axes = sorted(ctx.axis(a, rank) for a in axes)
    if len(set(ir_axes)) != len(ir_axes):
        raise ctx.error(f"repeated axes {axes}")
    shape = list(x.shape)
    for a in ir_axes:
        shape.insert(a, 1)
    return [_reshape(ctx, x, tuple(shape))]


def convert_squeeze(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    axes = _axes(ctx)
    if axes is None:
        if ctx.batch == 1:
            raise ctx.error("Squeeze without axes would remove the batch axis of size 1; give axes")
        return [_reshape(ctx, x, tuple(d for d in x.shape if d != 1))]
    ir_axes = {ctx.axis(a, len(x.shape) + 1) for a in axes}
    if any(x.shape[a] != 1 for a in ir_axes):
        raise ctx.error(f"cannot squeeze axes {axes} of {['N', *x.shape]}")
    return [_reshape(ctx, x, tuple(d for i, d in enumerate(x.shape) if i not in ir_axes))]


def convert_transpose(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    rank = len(x.shape) + 1
    perm = ctx.ints_attr("perm", list(reversed(range(rank))))
    assert perm is not None
    if sorted(perm) != list(range(rank)):
        raise ctx.error(f"perm {perm} is not a permutation of {rank} axes")
    if perm[0] != 0:
        full = (1, *x.shape)
        moved = [p for p in perm if full[p] != 1]
        # A fixed batch of 1 (keras2onnx, tf2onnx): moving only unit axes, with one left first, moves no data.
        if ctx.batch == 1 and full[perm[0]] == 1 and moved == sorted(moved):
            return [_reshape(ctx, x, tuple(full[p] for p in perm[1:]))]
        raise ctx.error(f"perm {perm} moves the batch axis; only perms that keep axis 0 first are supported")
    ir_perm = [p - 1 for p in perm[1:]]
    if ir_perm == list(range(rank - 1)):
        return [x]
    return [ctx.emit("transpose", [x], {"perm": ir_perm})]


def convert_concat(ctx: NodeContext) -> list[Tensor]:
    parts = [v for v in ctx.inputs if v is not None]
    if not all(isinstance(v, Value) for v in parts):
        raise ctx.error("Concat of constants with activations is not supported")
    values = [v for v in parts if isinstance(v, Value)]
    _same_rank(ctx, values)
    if "axis" not in ctx.attrs:
        raise ctx.error("attribute 'axis' is required")
    axis = ctx.axis(ctx.int_attr("axis", 0), len(values[0].shape) + 1)
    if len(values) == 1:
        return [values[0]]
    return [ctx.emit("concat", values, {"axis": axis})]


def convert_pad(ctx: NodeContext) -> list[Tensor]:
    x = ctx.act(0)
    rank = len(x.shape) + 1
    mode = ctx.str_attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ctx.error(f"pad mode {mode!r} is not supported")
    if ctx.opset < 11:
        pads, value = ctx.ints_attr("pads", []), ctx.float_attr("value", 0.0)
    else:
        pads = ctx.ints_input(1, "pads")
        value = float(ctx.floats(2, "constant_value").reshape(-1)[0]) if ctx.has(2) else 0.0
    assert pads is not None
    axes = list(range(rank))
    if ctx.has(3):
        axes = [a % rank if -rank <= a < rank else rank for a in ctx.ints_input(3, "axes")]
    if len(pads) != 2 * len(axes) or rank in axes:
        raise ctx.error(f"pads {pads} do not fit axes {axes} of a rank-{rank} input")
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[rank + a] = pads[i], pads[len(axes) + i]
    if full[0] or full[rank]:
        raise ctx.error(f"pads {pads} pad the batch axis")
    ir_pads = full[1:rank] + full[rank + 1 :]
    if not any(ir_pads):
        return [x]
    return [ctx.emit("pad", [x], {"pads": ir_pads, "mode": mode, "value": value})]


# -- no-ops ----------------------------------------------------------------------------------------
def convert_identity(ctx: NodeContext) -> list[Tensor]:
    return [ctx.act(0)]


def convert_dropout(ctx: NodeContext) -> list[Tensor]:
    if ctx.has(2) and bool(np.any(ctx.const(2, "training_mode"))):
        raise ctx.error("training_mode=true is not supported; export the model in eval mode")
    return [ctx.act(0)]


def convert_cast(ctx: NodeContext) -> list[Tensor]:
    if ctx.int_attr("to", 0) != 1:  # TensorProto.FLOAT
        raise ctx.error("casting an activation to a type other than float32 is not supported")
    return [ctx.act(0)]


CONVERTERS: dict[str, Converter] = {
    "Add": _arith("add"),
    "AveragePool": convert_average_pool,
    "BatchNormalization": convert_batch_normalization,
    "Cast": convert_cast,
    "Clip": convert_clip,
    "Concat": convert_concat,
    "Conv": convert_conv,
    "Div": _arith("div"),
    "Dropout": convert_dropout,
    "Elu": _unary("elu", alpha=1.0),
    "Flatten": convert_flatten,
    "Gemm": convert_gemm,
    "GlobalAveragePool": _global_pool("mean"),
    "GlobalMaxPool": _global_pool("max"),
    "HardSigmoid": _unary("hard_sigmoid", alpha=0.2, beta=0.5),
    "HardSwish": convert_hard_swish,
    "Identity": convert_identity,
    "LRN": convert_lrn,
    "LeakyRelu": _unary("leaky_relu", alpha=0.01),
    "MatMul": convert_matmul,
    "MaxPool": convert_max_pool,
    "Mul": _arith("mul"),
    "Neg": convert_neg,
    "PRelu": convert_prelu,
    "Pad": convert_pad,
    "ReduceMax": _reduce("max", 18),
    "ReduceMean": _reduce("mean", 18),
    "ReduceSum": _reduce("sum", 13),
    "Relu": _unary("relu"),
    "Reshape": convert_reshape,
    "Selu": _unary("selu", alpha=1.67326319217681884765625, gamma=1.05070102214813232421875),
    "Shape": convert_shape,
    "Sigmoid": _unary("sigmoid"),
    "Size": convert_size,
    "Softmax": convert_softmax,
    "Squeeze": convert_squeeze,
    "Sub": _arith("sub"),
    "Sum": convert_sum,
    "Tanh": _unary("tanh"),
    "Transpose": convert_transpose,
    "Unsqueeze": convert_unsqueeze,
}

__all__ = ["CONVERTERS", "Converter"]
