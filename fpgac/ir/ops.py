"""The op vocabulary of the IR: attributes, params and shape inference of each op.

This table is the contract between the frontend (which lowers ONNX onto these
ops), the verifier (which re-infers every output type), the interpreters and the
backends. It is deliberately small: ONNX ops that mean the same thing map onto
one IR op (Flatten, Squeeze, Unsqueeze and Reshape are all ``reshape``;
GlobalAveragePool and ReduceMean are ``reduce``; constant Add/Sub/Mul/Div and
BatchNormalization are ``affine``).

All shapes and axes are per sample (no batch dimension, see ``types.py``).
Conventions shared with ONNX: conv/pool ``pads`` are all begins, then all ends;
conv weights are ``(out_channels, in_channels / groups, *kernel)``; dense weights
are ``(out_features, in_features)`` as in ``torch.nn.Linear``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fpgac.errors import FpgacError
from fpgac.ir.types import Fixed, Float, TensorType, parse_format

Shape = tuple[int, ...]


class ShapeError(FpgacError, ValueError):
    """Inputs, attributes or params of a node do not fit together."""


# Attribute kinds: how values are checked and printed.
_KINDS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "optional_float": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "ints": lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
    "format": lambda v: isinstance(v, (Fixed, Float)),
}


@dataclass(frozen=True)
class OpDef:
    """What a node of one op must carry, and how its output shapes follow from its inputs."""

    name: str
    min_inputs: int
    max_inputs: int | None
    attrs: dict[str, str] = field(default_factory=dict)
    required_params: tuple[str, ...] = ()
    optional_params: tuple[str, ...] = ()
    infer: Callable[[list[Shape], dict[str, Any], dict[str, Any]], Shape] | None = None
    doc: str = ""
    fixed_attrs: dict[str, str] = field(default_factory=dict)
    fixed_params: tuple[str, ...] = ()

    def check(self, in_types: list[TensorType], attrs: dict[str, Any], params: dict[str, Any]) -> None:
        n = len(in_types)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            raise ShapeError(f"{self.name} takes {self.min_inputs}..{self.max_inputs} inputs, got {n}")
        for key, kind in self.attrs.items():
            if key not in attrs:
                raise ShapeError(f"{self.name} needs attribute {key!r}")
            if not _KINDS[kind](attrs[key]):
                raise ShapeError(f"{self.name} attribute {key!r} must be {kind}, got {attrs[key]!r}")
        for key, kind in self.fixed_attrs.items():
            if key in attrs and not _KINDS[kind](attrs[key]):
                raise ShapeError(f"{self.name} attribute {key!r} must be {kind}, got {attrs[key]!r}")
        extra = set(attrs) - set(self.attrs) - set(self.fixed_attrs)
        if extra:
            raise ShapeError(f"{self.name} has unknown attributes {sorted(extra)}")
        for key in self.required_params:
            if key not in params:
                raise ShapeError(f"{self.name} needs param {key!r}")
        extra = set(params) - set(self.required_params) - set(self.optional_params) - set(self.fixed_params)
        if extra:
            raise ShapeError(f"{self.name} has unknown params {sorted(extra)}")


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


def _same(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    return shapes[0]


def _elementwise(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    return _broadcast(shapes, "elementwise op")


def _affine(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    out = _broadcast([x, _required_shape(params, "scale"), _required_shape(params, "shift")], "affine")
    if out != x:
        raise ShapeError(f"affine params would broadcast the input {x} to {out}")
    return x


def _prelu(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    out = _broadcast([x, _required_shape(params, "slope")], "prelu")
    if out != x:
        raise ShapeError(f"prelu slope would broadcast the input {x} to {out}")
    return x


def _dense(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
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


def _conv(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
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


def _pool(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    return (x[0], *_spatial(x, attrs, attrs["kernel"], attrs["ceil_mode"]))


def _axes_ok(axes: list[int], rank: int, what: str) -> None:
    if any(a < 0 or a >= rank for a in axes) or len(set(axes)) != len(axes):
        raise ShapeError(f"{what} axes {axes} are not distinct axes of a rank-{rank} input")


def _reduce(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    axes = attrs["axes"]
    _axes_ok(axes, len(x), "reduce")
    if attrs["mode"] not in ("mean", "max"):
        raise ShapeError(f"reduce mode must be mean or max, not {attrs['mode']!r}")
    if attrs["keepdims"]:
        return tuple(1 if i in axes else d for i, d in enumerate(x))
    return tuple(d for i, d in enumerate(x) if i not in axes)


def _reshape(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    target = tuple(attrs["shape"])
    if any(d < 0 for d in target) or math.prod(target) != math.prod(x):
        raise ShapeError(f"cannot reshape {x} to {target}")
    return target


def _transpose(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    perm = attrs["perm"]
    if sorted(perm) != list(range(len(x))):
        raise ShapeError(f"perm {perm} is not a permutation of {len(x)} axes")
    return tuple(x[p] for p in perm)


def _concat(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
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


def _pad(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    pads = attrs["pads"]
    if len(pads) != 2 * len(x) or min(pads, default=0) < 0:
        raise ShapeError(f"pads {pads} must be {2 * len(x)} non-negative numbers (begins, then ends)")
    if attrs["mode"] not in ("constant", "reflect", "edge"):
        raise ShapeError(f"pad mode must be constant, reflect or edge, not {attrs['mode']!r}")
    return tuple(d + pads[i] + pads[len(x) + i] for i, d in enumerate(x))


def _axis_op(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    if not 0 <= attrs["axis"] < len(x):
        raise ShapeError(f"axis {attrs['axis']} out of range for rank {len(x)}")
    return x


def _channel_op(shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    (x,) = shapes
    if len(x) < 1:
        raise ShapeError("lrn needs a channel axis")
    return x


_WINDOW = {"strides": "ints", "pads": "ints"}

OPS: dict[str, OpDef] = {
    op.name: op
    for op in [
        OpDef(
            "dense", 1, 1, {}, ("weight",), ("bias",), _dense, "y = x @ weight.T + bias over the last axis."
        ),
        OpDef(
            "conv",
            1,
            1,
            {**_WINDOW, "dilations": "ints", "groups": "int"},
            ("weight",),
            ("bias",),
            _conv,
            "N-d grouped convolution (cross-correlation) over a (C, *spatial) input.",
        ),
        OpDef(
            "max_pool",
            1,
            1,
            {**_WINDOW, "kernel": "ints", "dilations": "ints", "ceil_mode": "bool"},
            infer=_pool,
            doc="Max over windows; padding never wins.",
        ),
        OpDef(
            "avg_pool",
            1,
            1,
            {**_WINDOW, "kernel": "ints", "ceil_mode": "bool", "count_include_pad": "bool"},
            infer=_pool,
            doc="Mean over windows.",
        ),
        OpDef(
            "reduce",
            1,
            1,
            {"mode": "str", "axes": "ints", "keepdims": "bool"},
            infer=_reduce,
            doc="Mean or max over axes (global pooling).",
        ),
        OpDef(
            "affine",
            1,
            1,
            {},
            ("scale", "shift"),
            (),
            _affine,
            "y = x * scale + shift, params broadcast against the input (BatchNorm, constant arithmetic).",
        ),
        OpDef("add", 2, None, {}, infer=_elementwise, doc="Elementwise sum of values (residual adds)."),
        OpDef("sub", 2, 2, {}, infer=_elementwise, doc="Elementwise difference."),
        OpDef("mul", 2, 2, {}, infer=_elementwise, doc="Elementwise product (gating, squeeze-excite)."),
        OpDef("div", 2, 2, {}, infer=_elementwise, doc="Elementwise quotient."),
        OpDef("relu", 1, 1, {}, infer=_same),
        OpDef("leaky_relu", 1, 1, {"alpha": "float"}, infer=_same),
        OpDef("prelu", 1, 1, {}, ("slope",), (), _prelu),
        OpDef("clip", 1, 1, {"min": "optional_float", "max": "optional_float"}, infer=_same),
        OpDef("sigmoid", 1, 1, {}, infer=_same),
        OpDef("hard_sigmoid", 1, 1, {"alpha": "float", "beta": "float"}, infer=_same),
        OpDef("tanh", 1, 1, {}, infer=_same),
        OpDef("elu", 1, 1, {"alpha": "float"}, infer=_same),
        OpDef("selu", 1, 1, {"alpha": "float", "gamma": "float"}, infer=_same),
        OpDef("softmax", 1, 1, {"axis": "int"}, infer=_axis_op),
        OpDef(
            "lrn",
            1,
            1,
            {"size": "int", "alpha": "float", "beta": "float", "bias": "float"},
            infer=_channel_op,
            doc="Local response normalization across axis 0 (float only).",
        ),
        OpDef("reshape", 1, 1, {"shape": "ints"}, infer=_reshape, doc="Row-major reshape."),
        OpDef("transpose", 1, 1, {"perm": "ints"}, infer=_transpose),
        OpDef("concat", 1, None, {"axis": "int"}, infer=_concat),
        OpDef("pad", 1, 1, {"pads": "ints", "mode": "str", "value": "float"}, infer=_pad),
    ]
}


# Ops of the hls4ml lowering (fpgac/backends/hls4ml/lower.py): hls4ml's own kernels, whose arithmetic
# differs from fpgac's (truncating table indices, a reciprocal table in softmax, a truncating mean).
# Only that lowering makes them; the simulator runs them through fpgac/interp/hls4ml_kernels.py.
OPS.update(
    {
        op.name: op
        for op in [
            OpDef("hls4ml_sigmoid", 1, 1, {}, ("table",), (), _same, "hls4ml's sigmoid table over [-8, 8)."),
            OpDef("hls4ml_tanh", 1, 1, {}, ("table",), (), _same, "hls4ml's tanh table over [-4, 4)."),
            OpDef(
                "hls4ml_softmax",
                1,
                1,
                {"axis": "int", "acc": "format", "inp_norm": "format", "inv_inp": "format"},
                ("exp_table", "inv_table"),
                (),
                _axis_op,
                "hls4ml's stable softmax: exp table of max - x, reciprocal table of the sum.",
            ),
            OpDef(
                "hls4ml_mean",
                1,
                1,
                {"mode": "str", "axes": "ints", "keepdims": "bool", "acc": "format"},
                infer=_reduce,
                doc="hls4ml's global average pooling: a sum in acc, divided by the count (truncating).",
            ),
        ]
    }
)


# What the fixed-point kernel of an op adds to a quantized node: accumulator formats,
# lookup tables and constants in their hardware formats (see fpgac/interp/fixed_kernels.py).
_TABLE = {"table_shift": "int", "table_offset": "int"}
_FIXED_EXTRAS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "dense": ({"acc": "format"}, ()),
    "conv": ({"acc": "format"}, ()),
    "avg_pool": ({"acc": "format"}, ("recip",)),
    "reduce": ({"acc": "format"}, ("recip",)),
    "softmax": ({"acc": "format", **_TABLE}, ("table",)),
    "sigmoid": (_TABLE, ("table",)),
    "tanh": (_TABLE, ("table",)),
    "elu": (_TABLE, ("table",)),
    "selu": (_TABLE, ("table", "gamma")),
    "leaky_relu": ({}, ("alpha",)),
    "hard_sigmoid": ({}, ("alpha", "beta")),
}
for _op, (_attrs, _params) in _FIXED_EXTRAS.items():
    OPS[_op] = replace(OPS[_op], fixed_attrs=_attrs, fixed_params=_params)


def decode_attrs(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes read back from JSON, with format-valued ones parsed into formats."""
    opdef = OPS.get(op)
    if opdef is None:
        return attrs
    kinds = {**opdef.attrs, **opdef.fixed_attrs}
    return {
        k: parse_format(v) if kinds.get(k) == "format" and isinstance(v, str) else v for k, v in attrs.items()
    }


def infer_shapes(op: str, in_shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    """Output shape of ``op``; raises :class:`ShapeError` on any inconsistency."""
    opdef = OPS.get(op)
    if opdef is None:
        raise ShapeError(f"unknown IR op {op!r}")
    opdef.check([TensorType(s) for s in in_shapes], attrs, params)
    assert opdef.infer is not None
    return opdef.infer(list(in_shapes), attrs, params)


def infer_types(
    op: str, in_types: list[TensorType], attrs: dict[str, Any], params: dict[str, Any]
) -> list[TensorType]:
    """Output types for a new node: inferred shape, the first input's format, default layout."""
    shape = infer_shapes(op, [t.shape for t in in_types], attrs, params)
    fmt = in_types[0].format if in_types else TensorType(()).format
    return [TensorType(shape, fmt)]
