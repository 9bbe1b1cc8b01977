"""Numpy implementations of the ONNX ops that shape computations and old weight exports use.

One function per op, registered in :data:`FOLDERS`. The driver calls :func:`fold`
for a node whose inputs are all constants; inputs may be ``object`` arrays with
a symbolic batch size (:class:`~fpgac.frontend.constants.BatchDim`), which the
shape ops (Gather, Concat, Unsqueeze, Slice, integer arithmetic, ...) carry along.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx

from fpgac.frontend.constants import (
    BatchDim,
    FoldError,
    checked_size,
    ints,
    is_symbolic,
    simplify,
    tensor_to_numpy,
)

# -- folders: one numpy implementation per foldable ONNX op ----------------------------------------
Inputs = list["np.ndarray | None"]
Attrs = dict[str, Any]
Folder = Callable[[Inputs, Attrs, int], list[np.ndarray]]

_INT_TYPES = {
    onnx.TensorProto.INT8,
    onnx.TensorProto.INT16,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.UINT16,
    onnx.TensorProto.UINT32,
    onnx.TensorProto.UINT64,
}


def _need(inputs: Inputs, index: int, what: str) -> np.ndarray:
    value = inputs[index] if index < len(inputs) else None
    if value is None:
        raise FoldError(f"missing input {index} ({what})")
    return value


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise FoldError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def _axes_from(inputs: Inputs, attrs: Attrs, opset: int, first_input_opset: int) -> list[int] | None:
    if opset >= first_input_opset:
        return ints(inputs[1], "axes") if len(inputs) > 1 and inputs[1] is not None else None
    return [int(a) for a in attrs["axes"]] if "axes" in attrs else None


def _constant(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    if "value" in attrs:
        return [tensor_to_numpy(attrs["value"], "Constant value")]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32)):
        if key in attrs:
            return [np.asarray(attrs[key], dtype=dtype)]
    for key in ("value_int", "value_ints"):
        if key in attrs:
            return [np.asarray(attrs[key], dtype=np.int64)]
    raise FoldError(f"Constant with attributes {sorted(attrs)} is not supported")


def _constant_of_shape(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    shape = checked_size(ints(_need(inputs, 0, "shape"), "shape"), "ConstantOfShape output")
    value = tensor_to_numpy(attrs["value"], "value") if "value" in attrs else np.zeros(1, np.float32)
    if value.size != 1:
        raise FoldError(f"value must hold one element, not {value.size}")
    return [np.full(shape, value.reshape(-1)[0], dtype=value.dtype)]


def _identity(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    return [_need(inputs, 0, "input")]


def _cast(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "input")
    to = int(attrs.get("to", 0))
    if is_symbolic(x):
        if to not in _INT_TYPES:
            raise FoldError("cannot cast the run-time batch size to a non-integer type")
        return [x]
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(to)
    except Exception:  # onnx raises KeyError/ValueError on unknown codes
        raise FoldError(f"Cast to type {to} is not supported") from None
    if np.dtype(dtype).kind not in "biuf":
        raise FoldError(f"Cast to {np.dtype(dtype)} is not supported")
    with np.errstate(all="ignore"):
        return [x.astype(dtype)]


def _shape(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "data")
    dims = list(x.shape)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    return [np.asarray(dims[slice(start, None if end is None else int(end))], dtype=np.int64)]


def _size(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    return [np.asarray(_need(inputs, 0, "data").size, dtype=np.int64)]


def _gather(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    data, indices = _need(inputs, 0, "data"), _need(inputs, 1, "indices")
    axis = _axis(int(attrs.get("axis", 0)), data.ndim)
    try:
        return [np.take(data, indices.astype(np.int64), axis=axis)]
    except (IndexError, ValueError, TypeError) as exc:
        raise FoldError(f"bad Gather indices: {exc}") from None


def _unsqueeze(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "data")
    axes = _axes_from(inputs, attrs, opset, 13) or []
    rank = x.ndim + len(axes)
    normalized = sorted(_axis(a, rank) for a in axes)
    if len(set(normalized)) != len(normalized):
        raise FoldError(f"repeated axes {axes}")
    for a in normalized:
        x = np.expand_dims(x, a)
    return [x]


def _squeeze(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "data")
    axes = _axes_from(inputs, attrs, opset, 13)
    if axes is None:
        return [np.squeeze(x)]
    normalized = tuple(_axis(a, x.ndim) for a in axes)
    if any(x.shape[a] != 1 for a in normalized):
        raise FoldError(f"cannot squeeze axes {axes} of shape {list(x.shape)}")
    return [np.squeeze(x, axis=normalized)]


def _concat(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    parts = [p for p in inputs if p is not None]
    if not parts:
        raise FoldError("Concat has no inputs")
    axis = _axis(int(attrs.get("axis", 0)), parts[0].ndim)
    dtype = object if any(p.dtype == object for p in parts) else None
    try:
        return [np.concatenate([p.astype(dtype) if dtype else p for p in parts], axis=axis)]
    except ValueError as exc:
        raise FoldError(f"cannot concatenate: {exc}") from None


def reshape_target(shape: Sequence[int], target: Sequence[int], allowzero: bool) -> tuple[int, ...]:
    """ONNX Reshape semantics on concrete shapes: 0 copies a dim, -1 is inferred."""
    out = [
        int(shape[i]) if t == 0 and not allowzero and i < len(shape) else int(t) for i, t in enumerate(target)
    ]
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise FoldError(f"bad reshape target {list(target)}")
    known = math.prod(d for d in out if d != -1)
    total = math.prod(shape)
    if -1 in out:
        if known == 0 or total % known:
            raise FoldError(f"cannot reshape {list(shape)} to {list(target)}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total:
        raise FoldError(f"cannot reshape {list(shape)} to {list(target)}")
    return tuple(out)


def _reshape(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "data")
    target = ints(_need(inputs, 1, "shape"), "shape")
    return [x.reshape(reshape_target(x.shape, target, bool(attrs.get("allowzero", 0))))]


def _flatten(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "input")
    axis = int(attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise FoldError(f"axis {axis} out of range")
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def _transpose(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "data")
    perm = [int(p) for p in attrs["perm"]] if "perm" in attrs else None
    if perm is not None and sorted(perm) != list(range(x.ndim)):
        raise FoldError(f"perm {perm} is not a permutation of {x.ndim} axes")
    return [np.transpose(x, perm)]


def _slice(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "data")
    if opset < 10:
        starts, ends = [int(v) for v in attrs["starts"]], [int(v) for v in attrs["ends"]]
        axes = [int(v) for v in attrs["axes"]] if "axes" in attrs else None
        steps = None
    else:
        starts, ends = ints(_need(inputs, 1, "starts"), "starts"), ints(_need(inputs, 2, "ends"), "ends")
        axes = ints(inputs[3], "axes") if len(inputs) > 3 and inputs[3] is not None else None
        steps = ints(inputs[4], "steps") if len(inputs) > 4 and inputs[4] is not None else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        raise FoldError("starts, ends, axes and steps do not match")
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[_axis(axis, x.ndim)] = slice(start, end, step)
    return [x[tuple(index)]]


def _binary(func: Callable[[Any, Any], Any]) -> Folder:
    def fold(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
        a, b = _need(inputs, 0, "A"), _need(inputs, 1, "B")
        with np.errstate(all="ignore"):
            return [simplify(np.asarray(func(a, b)))]

    return fold


def _int_div(a: Any, b: Any) -> Any:
    if isinstance(a, BatchDim):
        return a // b
    if int(b) == 0:
        raise FoldError("integer division by zero")
    quotient = abs(int(a)) // abs(int(b))
    return quotient if (int(a) >= 0) == (int(b) > 0) else -quotient


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iuO" and b.dtype.kind in "iuO":
        result = np.frompyfunc(_int_div, 2, 1)(a.astype(object), b.astype(object))
        return np.asarray(result, dtype=object)
    return np.divide(a, b)


def _unary(func: Callable[[np.ndarray], np.ndarray]) -> Folder:
    def fold(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
        x = _need(inputs, 0, "X")
        if is_symbolic(x):
            raise FoldError("cannot apply this op to the run-time batch size")
        with np.errstate(all="ignore"):
            return [np.asarray(func(x)).astype(x.dtype)]

    return fold


def _variadic(func: Callable[[Any, Any], Any]) -> Folder:
    def fold(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
        parts = [p for p in inputs if p is not None]
        if not parts:
            raise FoldError("no inputs")
        result = parts[0]
        for part in parts[1:]:
            result = func(result, part)
        return [simplify(np.asarray(result))]

    return fold


def _where(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    cond, x, y = _need(inputs, 0, "condition"), _need(inputs, 1, "X"), _need(inputs, 2, "Y")
    return [simplify(np.where(cond.astype(bool), x, y))]


def _expand(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "input")
    shape = ints(_need(inputs, 1, "shape"), "shape")
    try:
        out = np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError as exc:
        raise FoldError(f"cannot expand {list(x.shape)} to {shape}: {exc}") from None
    checked_size(out, "Expand output")
    return [np.broadcast_to(x, out).copy()]


def _range(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    start, limit, delta = (_need(inputs, i, n) for i, n in enumerate(("start", "limit", "delta")))
    if any(is_symbolic(v) for v in (start, limit, delta)):
        raise FoldError("Range over the run-time batch size")
    if float(delta) == 0:
        raise FoldError("Range with delta 0")
    count = max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
    checked_size([count], "Range output")
    return [(start + np.arange(count) * delta).astype(start.dtype)]


def _tile(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs, 0, "input")
    repeats = ints(_need(inputs, 1, "repeats"), "repeats")
    if len(repeats) != x.ndim or min(repeats, default=0) < 0:
        raise FoldError(f"bad repeats {repeats}")
    checked_size([d * r for d, r in zip(x.shape, repeats, strict=True)], "Tile output")
    return [np.tile(x, repeats)]


def _matmul(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    a, b = _need(inputs, 0, "A"), _need(inputs, 1, "B")
    try:
        return [np.matmul(a, b)]
    except (ValueError, TypeError) as exc:
        raise FoldError(f"cannot multiply: {exc}") from None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _clip(inputs: Inputs, attrs: Attrs, opset: int) -> list[np.ndarray]:
    """Clip of a constant, in its dtype: QCDQ on a weight (QuantizeLinear -> Clip -> DequantizeLinear)."""
    x = np.asarray(inputs[0])
    if opset < 11:
        low, high = attrs.get("min"), attrs.get("max")
    else:
        low, high = (inputs[i] if len(inputs) > i else None for i in (1, 2))
    if low is None and high is None:
        return [x]
    return [np.clip(x, low, high).astype(x.dtype)]


FOLDERS: dict[str, Folder] = {
    "Abs": _unary(np.abs),
    "Add": _binary(lambda a, b: a + b),
    "Cast": _cast,
    "Ceil": _unary(np.ceil),
    "Clip": _clip,
    "Concat": _concat,
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Div": _binary(_div),
    "Equal": _binary(lambda a, b: np.equal(a, b)),
    "Exp": _unary(np.exp),
    "Expand": _expand,
    "Flatten": _flatten,
    "Floor": _unary(np.floor),
    "Gather": _gather,
    "Greater": _binary(lambda a, b: np.greater(a, b)),
    "Identity": _identity,
    "Less": _binary(lambda a, b: np.less(a, b)),
    "Log": _unary(np.log),
    "MatMul": _matmul,
    "Max": _variadic(np.maximum),
    "Min": _variadic(np.minimum),
    "Mul": _binary(lambda a, b: a * b),
    "Neg": _unary(np.negative),
    "Not": _unary(np.logical_not),
    "Pow": _binary(lambda a, b: np.power(a, b)),
    "Range": _range,
    "Reciprocal": _unary(np.reciprocal),
    "Relu": _unary(lambda x: np.maximum(x, 0)),
    "Reshape": _reshape,
    "Shape": _shape,
    "Sigmoid": _unary(_sigmoid),
    "Size": _size,
    "Slice": _slice,
    "Sqrt": _unary(np.sqrt),
    "Squeeze": _squeeze,
    "Sub": _binary(lambda a, b: a - b),
    "Sum": _variadic(lambda a, b: a + b),
    "Tanh": _unary(np.tanh),
    "Tile": _tile,
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
    "Where": _where,
}


def fold(op: str, inputs: Inputs, attrs: Attrs, opset: int, folder: Folder | None = None) -> list[np.ndarray]:
    """Evaluate one ONNX op on constants (by ``folder``, else its entry in :data:`FOLDERS`); every failure
    is a :class:`FoldError`."""
    try:
        outputs = (folder or FOLDERS[op])(inputs, attrs, opset)
    except FoldError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, ZeroDivisionError) as exc:
        raise FoldError(f"cannot fold: {type(exc).__name__}: {exc}") from None
    outputs = [_as_array(out) for out in outputs]
    for out in outputs:
        checked_size(out.shape, f"{op} output")
    return outputs


def _as_array(value: Any) -> np.ndarray:
    """numpy returns bare scalars from some ops on 0-d object arrays; wrap them back."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, BatchDim):
        array = np.empty((), dtype=object)
        array[()] = value
        return array
    return np.asarray(value)
