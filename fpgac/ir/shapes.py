"""Shape rules: each op's output shape from its input shapes, attributes and params.

All shapes are per sample (no batch dimension, see ``types.py``). Conventions shared with ONNX: conv/pool
``pads`` are all begins, then all ends; conv weights are ``(out_channels, in_channels / groups,
*kernel)``; dense weights are ``(out_features, in_features)`` as in ``torch.nn.Linear``. Every rule
raises :class:`ShapeError` on inputs, attributes or params that do not fit together.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fpgac.ir.opdef import Shape, ShapeError


def _param_shape(params: dict[str, Any], key: str) -> Shape | None:
    param = params.get(key)
    if param is None:
        return None
    data = getattr(param, "data", param)
    return tuple(np.shape(data))


def _required_shape(params: dict[str, Any], key: str) -> Shape:
    """The shape of a required param (``OpDef.check`` has made sure it is there)."""
    return tuple(np.shape(getattr(params[key], "data", params[key])))


def _broadcast(shapes: list[Shape], what: str) -> Shape:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError as exc:
        raise ShapeError(f"{what}: shapes {shapes} do not broadcast") from exc


def same(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    return shapes[0]


def elementwise(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    return _broadcast(shapes, "elementwise op")


def affine(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    out = _broadcast([x, _required_shape(params, "scale"), _required_shape(params, "shift")], "affine")
    if out != x:
        raise ShapeError(f"affine params would broadcast the input {x} to {out}")
    return x


def quant(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    out = _broadcast([x, _required_shape(params, "scale"), _required_shape(params, "zero_point")], "quant")
    if out != x:
        raise ShapeError(f"quant scale or zero point would broadcast the input {x} to {out}")
    if attrs["bits"] < 1:
        raise ShapeError(f"quant needs at least 1 bit, not {attrs['bits']}")
    return x


def prelu(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    out = _broadcast([x, _required_shape(params, "slope")], "prelu")
    if out != x:
        raise ShapeError(f"prelu slope would broadcast the input {x} to {out}")
    return x


def dense(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    weight = _required_shape(params, "weight")
    if len(weight) != 2 or not x or x[-1] != weight[1]:
        raise ShapeError(f"dense weight {weight} does not fit input {x} (weight is (out, in))")
    bias = _param_shape(params, "bias")
    if bias is not None and bias != (weight[0],):
        raise ShapeError(f"dense bias {bias} does not fit weight {weight}")
    return (*x[:-1], weight[0])


def window_out(
    size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int, ceil_mode: bool
) -> int:
    span = dilation * (kernel - 1) + 1
    total = size + pad_begin + pad_end - span
    if total < 0:
        raise ShapeError(f"window of {span} does not fit input of {size} with pads {pad_begin},{pad_end}")
    out = (math.ceil(total / stride) if ceil_mode else total // stride) + 1
    # PyTorch/ONNX rule: the last window must start inside the input or the begin padding.
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _spatial(x: Shape, attrs: dict[str, Any], kernel: list[int], ceil_mode: bool) -> list[int]:
    nd = len(kernel)
    if len(x) != nd + 1:
        raise ShapeError(f"input {x} must be (channels, {nd} spatial dims)")
    strides, pads, dilations = attrs["strides"], attrs["pads"], attrs.get("dilations", [1] * nd)
    if len(strides) != nd or len(pads) != 2 * nd or len(dilations) != nd:
        raise ShapeError(f"strides/pads/dilations {strides}/{pads}/{dilations} do not fit {nd}-d window")
    if min(strides) < 1 or min(dilations) < 1 or min(pads, default=0) < 0 or min(kernel) < 1:
        raise ShapeError("strides, dilations and kernel must be positive and pads non-negative")
    return [
        window_out(x[1 + i], kernel[i], strides[i], pads[i], pads[nd + i], dilations[i], ceil_mode)
        for i in range(nd)
    ]


def conv(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    weight = _required_shape(params, "weight")
    groups = attrs["groups"]
    if len(weight) != len(x) + 1 or groups < 1 or x[0] % groups or weight[0] % groups:
        raise ShapeError(f"conv weight {weight} with groups={groups} does not fit input {x}")
    if weight[1] * groups != x[0]:
        raise ShapeError(
            f"conv weight {weight} expects {weight[1] * groups} input channels, input has {x[0]}"
        )
    bias = _param_shape(params, "bias")
    if bias is not None and bias != (weight[0],):
        raise ShapeError(f"conv bias {bias} does not fit weight {weight}")
    return (weight[0], *_spatial(x, attrs, list(weight[2:]), False))


def pool(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    return (x[0], *_spatial(x, attrs, attrs["kernel"], attrs["ceil_mode"]))


def is_global_pool(x: Shape, attrs: dict[str, Any]) -> bool:
    """Whether a pooling window is the whole unpadded input (one output pixel: a global pool), which the
    stream kernels compute with per-channel state instead of a window."""
    return list(attrs["kernel"]) == list(x[1:]) and not any(attrs["pads"])


def _axes_ok(axes: list[int], rank: int, what: str) -> None:
    if any(a < 0 or a >= rank for a in axes) or len(set(axes)) != len(axes):
        raise ShapeError(f"{what} axes {axes} are not distinct axes of a rank-{rank} input")


def reduce(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    axes = attrs["axes"]
    _axes_ok(axes, len(x), "reduce")
    if attrs["mode"] not in ("mean", "max"):
        raise ShapeError(f"reduce mode must be mean or max, not {attrs['mode']!r}")
    if attrs["keepdims"]:
        return tuple(1 if i in axes else d for i, d in enumerate(x))
    return tuple(d for i, d in enumerate(x) if i not in axes)


def reshape(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    target = tuple(attrs["shape"])
    if any(d < 0 for d in target) or math.prod(target) != math.prod(x):
        raise ShapeError(f"cannot reshape {x} to {target}")
    return target


def transpose(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    perm = attrs["perm"]
    if sorted(perm) != list(range(len(x))):
        raise ShapeError(f"perm {perm} is not a permutation of {len(x)} axes")
    return tuple(x[p] for p in perm)


def concat(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    axis = attrs["axis"]
    first = shapes[0]
    if not 0 <= axis < len(first):
        raise ShapeError(f"concat axis {axis} out of range for rank {len(first)}")
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(s, first, strict=True)) if i != axis
        ):
            raise ShapeError(f"concat inputs {shapes} differ outside axis {axis}")
    return (*first[:axis], sum(s[axis] for s in shapes), *first[axis + 1 :])


def pad(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    pads = attrs["pads"]
    if len(pads) != 2 * len(x) or min(pads, default=0) < 0:
        raise ShapeError(f"pads {pads} must be {2 * len(x)} non-negative numbers (begins, then ends)")
    if attrs["mode"] not in ("constant", "reflect", "edge"):
        raise ShapeError(f"pad mode must be constant, reflect or edge, not {attrs['mode']!r}")
    return tuple(d + pads[i] + pads[len(x) + i] for i, d in enumerate(x))


def axis_op(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    if not 0 <= attrs["axis"] < len(x):
        raise ShapeError(f"axis {attrs['axis']} out of range for rank {len(x)}")
    return x


def channel_op(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    if len(x) < 1:
        raise ShapeError("lrn needs a channel axis")
    return x


def patch_grid(x: Shape, attrs: dict[str, Any]) -> tuple[list[int], int]:
    """The patches of a patch_energy input ``x``: their grid (a conv's output positions, or the leading axes
    whose rows are the patches) and their number of taps."""
    kernel = attrs["kernel"]
    if kernel:
        return _spatial(x, attrs, kernel, False), x[0] * math.prod(kernel)
    if not x:
        raise ShapeError("patch_energy without a kernel needs an input with a last axis")
    return list(x[:-1]), x[-1]


def patch_energy(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    """One number a sample; the basis, when given, has one row per direction and one column per tap."""
    (x,) = shapes
    _, taps = patch_grid(x, attrs)
    basis = _param_shape(params, "basis")
    if basis is not None and (len(basis) != 2 or basis[1] != taps):
        raise ShapeError(f"patch_energy basis {basis} does not fit patches of {taps} taps")
    return (1,)


def ood_flag(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    if shapes[0] != (1,) or shapes[1] != (1,):
        raise ShapeError(f"ood_flag compares two energies of shape (1,), got {shapes}")
    return (1,)
