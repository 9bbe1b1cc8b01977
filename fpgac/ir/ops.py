"""The op vocabulary of the IR: one definition per op, with its attributes, params, shape rule and traits.

This table is the contract between the frontend (which lowers ONNX onto these ops), the verifier (which
re-infers every output type), the interpreters, the passes and the backends: whoever needs to know
something about an op asks its definition here (see :class:`fpgac.ir.opdef.OpDef`) instead of keeping
a list of op names. It is deliberately small: ONNX ops that mean the same thing map onto one IR op
(Flatten, Squeeze, Unsqueeze and Reshape are all ``reshape``; GlobalAveragePool and ReduceMean are
``reduce``; constant Add/Sub/Mul/Div and BatchNormalization are ``affine``). Shape conventions are in
:mod:`fpgac.ir.shapes`.
"""

from __future__ import annotations

from typing import Any

from fpgac.ir import shapes
from fpgac.ir.hls4ml_ops import HLS4ML_DIALECT
from fpgac.ir.opdef import Kind, Monotone, OpDef, Shape, ShapeError
from fpgac.ir.types import TensorType, parse_format

_WINDOW = {"strides": "ints", "pads": "ints"}
_ACC = {"acc": "format"}  # the accumulator of a sum, chosen by the quantize pass
# Rank levels of a low-rank factor (fpgac/ir/levels.py): per level, the output (or input) channels in use.
_LEVELS = {"ranks_out": "ints", "ranks_in": "ints"}
_TABLE = {"table_shift": "int", "table_offset": "int"}  # how an input indexes its lookup table
E, UP, KINK = Kind.ELEMENTWISE, Monotone.INCREASING, Monotone.PIECEWISE

CORE_OPS: tuple[OpDef, ...] = (
    OpDef(
        "dense", Kind.MATMUL, shapes.dense, weights=("weight",), optional_weights=("bias", "level_bias"),
        optional_attrs=_LEVELS, fixed_attrs=_ACC, doc="y = x @ weight.T + bias over the last axis.",
    ),
    OpDef(
        "conv", Kind.WINDOW, shapes.conv, attrs={**_WINDOW, "dilations": "ints", "groups": "int"},
        weights=("weight",), optional_weights=("bias", "level_bias"), optional_attrs=_LEVELS,
        fixed_attrs=_ACC, doc="N-d grouped convolution (cross-correlation) over a (C, *spatial) input.",
    ),
    OpDef(
        "max_pool", Kind.WINDOW, shapes.pool,
        attrs={**_WINDOW, "kernel": "ints", "dilations": "ints", "ceil_mode": "bool"},
        monotone=UP, selects=True, doc="Max over windows; padding never wins.",
    ),
    OpDef(
        "avg_pool", Kind.WINDOW, shapes.pool,
        attrs={**_WINDOW, "kernel": "ints", "ceil_mode": "bool", "count_include_pad": "bool"},
        fixed_attrs=_ACC, fixed_params=("recip",), monotone=UP, doc="Mean over windows.",
    ),
    OpDef(
        "reduce", Kind.REDUCTION, shapes.reduce, attrs={"mode": "str", "axes": "ints", "keepdims": "bool"},
        fixed_attrs=_ACC, fixed_params=("recip",), monotone=UP, doc="Mean or max over axes (global pooling).",
    ),
    OpDef(
        "affine", E, shapes.affine, weights=("scale", "shift"),
        doc="y = x * scale + shift, params broadcast against the input (BatchNorm, constant arithmetic).",
    ),
    OpDef(
        "quant", E, shapes.quant, weights=("scale", "zero_point"), monotone=UP,
        attrs={"bits": "int", "signed": "bool", "narrow": "bool", "rounding": "str"},
        doc="QONNX's integer quantizer: (clamp(round(x / scale + zero_point)) - zero_point) * scale.",
    ),
    OpDef("add", E, shapes.elementwise, 2, None, doc="Elementwise sum of values (residual adds)."),
    OpDef("sub", E, shapes.elementwise, 2, 2, doc="Elementwise difference."),
    OpDef("mul", E, shapes.elementwise, 2, 2, doc="Elementwise product (gating, squeeze-excite)."),
    OpDef(
        "div", E, shapes.elementwise, 2, 2, doc="Elementwise quotient.",
        float_only="a quotient of two activations has no fixed-point kernel yet",
    ),
    OpDef("relu", E, shapes.same, monotone=UP),
    OpDef("leaky_relu", E, shapes.same, attrs={"alpha": "float"}, fixed_params=("alpha",), monotone=KINK),
    OpDef("prelu", E, shapes.prelu, weights=("slope",), monotone=KINK),
    OpDef("clip", E, shapes.same, attrs={"min": "optional_float", "max": "optional_float"}, monotone=UP),
    OpDef("sigmoid", E, shapes.same, fixed_attrs=_TABLE, fixed_params=("table",), monotone=UP),
    OpDef(
        "hard_sigmoid", E, shapes.same, attrs={"alpha": "float", "beta": "float"},
        fixed_params=("alpha", "beta"), monotone=KINK,
    ),
    OpDef("tanh", E, shapes.same, fixed_attrs=_TABLE, fixed_params=("table",), monotone=UP),
    OpDef(
        "elu", E, shapes.same, attrs={"alpha": "float"}, fixed_attrs=_TABLE, fixed_params=("table",),
        monotone=KINK,
    ),
    OpDef(
        "selu", E, shapes.same, attrs={"alpha": "float", "gamma": "float"}, fixed_attrs=_TABLE,
        fixed_params=("table", "gamma"), monotone=KINK,
    ),
    OpDef(
        "softmax", Kind.REDUCTION, shapes.axis_op, attrs={"axis": "int"}, fixed_attrs={**_ACC, **_TABLE},
        fixed_params=("table",),
    ),
    OpDef(
        "lrn", Kind.REDUCTION, shapes.channel_op,
        attrs={"size": "int", "alpha": "float", "beta": "float", "bias": "float"},
        fixed_attrs={**_ACC, **_TABLE}, fixed_params=("table",),
        doc="Local response normalization across axis 0: x / (bias + alpha / size * sum of squares)^beta.",
    ),
    OpDef(
        "reshape", Kind.LAYOUT, shapes.reshape, attrs={"shape": "ints"}, monotone=UP, logical_order=True,
        selects=True, doc="Row-major reshape.",
    ),
    OpDef("transpose", Kind.LAYOUT, shapes.transpose, attrs={"perm": "ints"}, monotone=UP, selects=True),
    OpDef("concat", Kind.LAYOUT, shapes.concat, 1, None, attrs={"axis": "int"}, monotone=UP, selects=True),
    OpDef(
        "pad", Kind.LAYOUT, shapes.pad, attrs={"pads": "ints", "mode": "str", "value": "float"}, monotone=UP
    ),
    OpDef(
        "patch_energy", Kind.REDUCTION, shapes.patch_energy,
        attrs={"kernel": "ints", "strides": "ints", "pads": "ints", "dilations": "ints"},
        optional_weights=("basis",), fixed_attrs=_ACC,
        doc="The OOD monitor's energy, exact: sum over patches h_p of ||basis @ h_p||^2 (||h_p||^2 without "
        "a basis). Patches are a conv's zero-padded windows (C * prod(kernel) taps), or with kernel [] the "
        "rows of the last axis (a dense layer's inputs).",
    ),
    OpDef(
        "ood_flag", E, shapes.ood_flag, 2, 2, attrs={"tau": "float"}, fixed_params=("tau",),
        doc="1 (unknown input) where num < tau * den, else 0: a threshold on num / den without a divider.",
    ),
)  # fmt: skip

OPS: dict[str, OpDef] = {op.name: op for op in (*CORE_OPS, *HLS4ML_DIALECT)}


def decode_attrs(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes read back from JSON, with format-valued ones parsed into formats."""
    opdef = OPS.get(op)
    if opdef is None:
        return attrs
    kinds = {**opdef.attrs, **opdef.optional_attrs, **opdef.fixed_attrs}
    return {
        k: parse_format(v) if kinds.get(k) == "format" and isinstance(v, str) else v for k, v in attrs.items()
    }


def infer_shapes(op: str, in_shapes: list[Shape], attrs: dict[str, Any], params: dict[str, Any]) -> Shape:
    """Output shape of ``op``; raises :class:`ShapeError` on any inconsistency."""
    opdef = OPS.get(op)
    if opdef is None:
        raise ShapeError(f"unknown IR op {op!r}")
    opdef.check([TensorType(s) for s in in_shapes], attrs, params)
    return opdef.infer(list(in_shapes), attrs, params)


def infer_types(
    op: str, in_types: list[TensorType], attrs: dict[str, Any], params: dict[str, Any]
) -> list[TensorType]:
    """Output types for a new node: inferred shape, the first input's format, default layout."""
    shape = infer_shapes(op, [t.shape for t in in_types], attrs, params)
    fmt = in_types[0].format if in_types else TensorType(()).format
    return [TensorType(shape, fmt)]
