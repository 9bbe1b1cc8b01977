"""QONNX's quantizers and ONNX's QuantizeLinear/DequantizeLinear: converters and folders.

A quantizer on an activation becomes the IR's ``quant`` op (its meaning: :mod:`fpgac.ir.quant`). On a
constant (a weight, as Brevitas exports them: ``initializer -> Quant -> MatMul``) it is folded into the
quantized values, so the layer reads exactly the weights QONNX computes with; no clean-up by qonnx is
needed first. Ops are registered under every domain exporters have written them in.

A QuantizeLinear/DequantizeLinear pair on an activation is one ``quant`` node: QuantizeLinear's integer
output never reaches the IR (whose values are real numbers); the ``quant`` node stands for the pair's
dequantized value, and the DequantizeLinear reading it, checked to use the same scale and zero point, adds
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from fpgac.frontend.context import NodeContext, Tensor
from fpgac.frontend.converters import Converter, _per_sample_param
from fpgac.frontend.converters import convert_clip as convert_clip_values
from fpgac.frontend.folding import Folder, Inputs
from fpgac.ir import FLOAT32, Graph, Node, Param, Value
from fpgac.ir.opdef import Kind
from fpgac.ir.ops import OPS
from fpgac.ir.quant import ROUNDINGS, exponents, fixed_plan, grid_format, int_range, quant_float

log = logging.getLogger(__name__)
T = TypeVar("T")
QONNX_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")


Arrays = list["np.ndarray | None"]


class _Spec:
    """A quantizer read from one node: scale, zero point, bits, signedness, narrow range, rounding."""

    def __init__(
        self, scale: np.ndarray, zero_point: np.ndarray, bits: int, signed: bool, narrow: bool, rounding: str
    ) -> None:
        self.scale, self.zero_point = scale, zero_point
        self.bits, self.signed, self.narrow, self.rounding = bits, signed, narrow, rounding

    def attrs(self) -> dict[str, Any]:
        return {"bits": self.bits, "signed": self.signed, "narrow": self.narrow, "rounding": self.rounding}

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return quant_float(x, self.scale, self.zero_point, self.bits, self.signed, self.narrow, self.rounding)


def _input(inputs: Arrays, index: int, what: str) -> np.ndarray:
    value = inputs[index] if index < len(inputs) else None
    if value is None:
        raise ValueError(f"input {index} ({what}) is missing")
    return np.asarray(value)


def _checked(what: str, scale: np.ndarray, bits: float) -> None:
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise ValueError(f"{what}: scale must be positive and finite")
    if not (bits >= 1 and float(bits).is_integer()):
        raise ValueError(f"{what}: bit width {bits} is not a positive integer")


def _quant_spec(inputs: Arrays, attrs: dict[str, Any]) -> _Spec:
    """Quant/IntQuant: inputs (x, scale, zero point, bit width); attrs signed, narrow, rounding_mode."""
    scale = _input(inputs, 1, "scale").astype(np.float32)
    zero_point = _input(inputs, 2, "zero point").astype(np.float32)
    bits = _input(inputs, 3, "bit width").astype(np.float64)
    if bits.size != 1:
        raise ValueError("bit width must be a scalar")
    width = float(bits.reshape(-1)[0])
    _checked("Quant", scale, width)
    rounding = str(attrs.get("rounding_mode", "ROUND")).upper()
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding_mode {rounding!r} is not one of QONNX's ({', '.join(ROUNDINGS)})")
    signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    return _Spec(scale, zero_point, int(width), signed, narrow, rounding)


def _bipolar_spec(inputs: Arrays, attrs: dict[str, Any]) -> _Spec:
    """BipolarQuant: inputs (x, scale); ``x >= 0 ? scale : -scale``, a 1-bit signed quantizer."""
    scale = _input(inputs, 1, "scale").astype(np.float32)
    _checked("BipolarQuant", scale, 1)
    return _Spec(scale, np.zeros((), np.float32), 1, True, False, "ROUND")


_INT_RANGES = {
    np.dtype(np.int8): (8, True),
    np.dtype(np.uint8): (8, False),
    np.dtype(np.int16): (16, True),
    np.dtype(np.uint16): (16, False),
}


def _along(param: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A per-axis (1-d) scale or zero point shaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    if param.ndim != 1 or param.size == 1:
        return param.reshape(()) if param.size == 1 else param
    shape = [1] * rank
    shape[axis % rank] = param.size
    return param.reshape(shape)


def _linear_spec(inputs: Arrays, attrs: dict[str, Any], rank: int) -> _Spec:
    """QuantizeLinear (or DequantizeLinear) on a rank-``rank`` tensor: scale and zero point along ``axis``,
    the zero point's integer type (uint8 without one), round half to even, saturate."""
    if attrs.get("block_size", 0):
        raise ValueError("blocked quantization (block_size) is not supported")
    scale = _input(inputs, 1, "scale").astype(np.float32)
    zp = np.asarray(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else np.zeros((), np.uint8)
    if zp.dtype not in _INT_RANGES:
        raise ValueError(f"zero point of type {zp.dtype} is not supported (int8, uint8, int16, uint16)")
    bits, signed = _INT_RANGES[zp.dtype]
    _checked("QuantizeLinear", scale, bits)
    axis = int(attrs.get("axis", 1))
    scale, zero_point = _along(scale, axis, rank), _along(zp.astype(np.float32), axis, rank)
    return _Spec(scale, zero_point, bits, signed, False, "ROUND")


# -- folders: the quantizers on constants (weights) -------------------------------------------------
def _fold_quant(inputs: Inputs, attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [_quant_spec(inputs, attrs).apply(_input(inputs, 0, "x"))]


def _fold_bipolar(inputs: Inputs, attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    return [_bipolar_spec(inputs, attrs).apply(_input(inputs, 0, "x"))]


def _fold_quantize_linear(inputs: Inputs, attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    x = _input(inputs, 0, "x").astype(np.float32)
    spec = _linear_spec(inputs, attrs, max(x.ndim, 1))
    dtype = np.asarray(inputs[2]).dtype if len(inputs) > 2 and inputs[2] is not None else np.dtype(np.uint8)
    lo, hi = int_range(spec.bits, spec.signed, spec.narrow)
    return [np.clip(np.round(x / spec.scale) + spec.zero_point, lo, hi).astype(dtype)]  # rounds, then adds


def _fold_dequantize_linear(inputs: Inputs, attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    q = _input(inputs, 0, "x")
    spec = _linear_spec([None, *inputs[1:]], attrs, max(q.ndim, 1))
    return [((q.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)]


# -- converters: the quantizers on activations ------------------------------------------------------
def _params(ctx: NodeContext, x: Value, spec: _Spec) -> dict[str, np.ndarray]:
    return {
        "scale": _per_sample_param(ctx, spec.scale, x.shape, "scale"),
        "zero_point": _per_sample_param(ctx, spec.zero_point, x.shape, "zero point"),
    }


def _constants(ctx: NodeContext) -> Arrays:
    """The node's inputs after the first, as constants (None where absent)."""
    return [None, *(ctx.const(i, f"input {i}") if ctx.has(i) else None for i in range(1, len(ctx.inputs)))]


def _spec(ctx: NodeContext, read: Callable[[Arrays], _Spec]) -> _Spec:
    try:
        return read(_constants(ctx))
    except ValueError as exc:
        raise ctx.error(str(exc)) from None


def _converter(read: Callable[[NodeContext, Arrays], _Spec]) -> Converter:
    def convert(ctx: NodeContext) -> list[Tensor]:
        x = ctx.act(0)
        spec = _spec(ctx, lambda inputs: read(ctx, inputs))
        rescaled = exponents(spec.scale) is None and not (spec.signed and spec.bits == 1)
        params = _params(ctx, x, spec)
        try:  # what has no exact fixed-point form is refused here, naming the file, node and op
            grid = np.ones_like(params["scale"]) if rescaled else params["scale"]
            fixed_plan(spec.attrs(), grid, params["zero_point"], x.shape)
        except ValueError as exc:
            raise ctx.error(str(exc)) from None
        if rescaled:
            return [_rescaled_quant(ctx, x, spec)]
        return [ctx.emit("quant", [x], spec.attrs(), params)]

    return convert


_RECIPROCAL_BITS = 40  # significant bits of 1 / scale: its error stays far below float32's step at any code


def _pinned(ctx: NodeContext, data: np.ndarray, shape: tuple[int, ...], width: int) -> Param:
    """A per-sample constant in the narrowest exact format of at most ``width`` bits."""
    per_sample = _per_sample_param(ctx, data, shape, "scale").shape  # (which rounds to float32)
    values = np.asarray(data, np.float64).reshape(per_sample)
    return Param(values, grid_format(values, width) or FLOAT32)


def _rescaled_quant(ctx: NodeContext, x: Value, spec: _Spec) -> Value:
    """A quantizer whose scale ``s`` is not a power of two (Brevitas' float-scaled activations), as fixed
    point: ``x * (1 / s)`` (40 significant bits), rounded to float32's step at the innermost ties (half
    a code), as float execution stores ``x / s`` there (see ``_float32_rounding``), the quantizer on the
    integer grid (scale 1, the zero point and rounding as given), and the codes times ``s``, exact (``s`` is
    a float32, a 24-bit dyadic number). A declared rounding point: float QONNX execution rounds ``x / s``
    and ``q * s`` in float32, so it differs by its rounding of ``q * s`` (relative 2**-24) and where
    ``x / s`` lies within float32's wider window of an outer tie (it lands on the tie, the design keeps
    its side). One grid for all ties: the innermost, so that no value is moved onto a tie float32 would
    not store it on (measured on Brevitas' learned scales, where ties of ``1 / 255`` are everywhere)."""
    scale = spec.scale.astype(np.float64)
    log.warning(
        "%s: node %r (%s): scale %s is not a power of two: computed as x times 1/scale rounded as float32 "
        "stores it, then the codes times the scale, exact; float QONNX execution also rounds the codes "
        "times the scale to float32 (relative 2**-24)",
        ctx.label,
        ctx.name,
        ctx.op,
        np.unique(scale).tolist()[:4],
    )
    mantissa, exponent = np.frexp(1.0 / scale)
    reciprocal = np.ldexp(np.round(np.ldexp(mantissa, _RECIPROCAL_BITS)), exponent - _RECIPROCAL_BITS)
    divide = _pinned(ctx, reciprocal, x.shape, 2 * _RECIPROCAL_BITS)
    scaled = ctx.graph.add(
        "affine",
        [x],
        name=f"{ctx.name}/divide",
        params={
            "scale": divide,
            "shift": Param(np.zeros(divide.data.shape)),
        },
    )
    lo, hi = int_range(spec.bits, spec.signed, spec.narrow)
    zeros = spec.zero_point.astype(np.float64)
    top = float(np.max(np.maximum(np.abs(lo - zeros + 0.5), np.abs(hi - zeros - 0.5))))  # outermost ties
    step = _float32_step(0.5)  # float32's step at the innermost ties: never wider than float32's window
    width = int(np.ceil(np.log2(top / step))) + 2
    snap = _Spec(step, np.zeros((), np.float32), width, True, False, "ROUND")
    stored = ctx.emit(
        "quant", [scaled.output], snap.attrs(), _params(ctx, scaled.output, snap), suffix="float32"
    )
    unit = _Spec(np.ones((), np.float32), spec.zero_point, spec.bits, spec.signed, spec.narrow, spec.rounding)
    codes = ctx.emit("quant", [stored], unit.attrs(), _params(ctx, stored, unit), suffix="codes")
    multiply = _pinned(ctx, scale, x.shape, 32)
    params = {"scale": multiply, "shift": Param(np.zeros(multiply.data.shape))}
    return ctx.graph.add(
        "affine", [codes], name=ctx.name, params=params, output_names=[ctx.outputs[0]]
    ).output


_TRUNC_INNER_BITS = 32  # Trunc's first rounding has no clamp: wider than any integer float32 holds exactly


def convert_trunc(ctx: NodeContext) -> list[Tensor]:
    """QONNX's Trunc, as qonnx computes it: ``n = round(x / s)`` (half to even, no clamp), then ``n``
    divided by ``T``, rounded by ``rounding_mode`` and rescaled. Version 2 (6 inputs: x, s, z, input bits,
    output scale ``so``, output bits; attrs signed, narrow) clamps to the output range and rescales by
    ``so`` with ``T = so / s``; version 1 (5 inputs: x, s, z, input bits, output bits) has no clamp,
    ``T = 2**(input bits - output bits)``, and rescales by ``s``.

    Two ``quant`` nodes, exact where ``T`` is a power of two: ``n * s`` (scale ``s``, 32 bits) and the
    second rounding on the grid ``s * T``; version 1 then multiplies by ``1 / T``, a power of two. The zero
    point must be 0.
    """
    x = ctx.act(0)
    inputs = _constants(ctx)
    version = 2 if len(ctx.inputs) >= 6 else 1
    try:
        scale = _input(inputs, 1, "scale").astype(np.float32)
        zero_point = _input(inputs, 2, "zero point").astype(np.float32)
        _checked("Trunc", scale, float(_input(inputs, 3, "input bit width").reshape(-1)[0]))
        out_bits = float(_input(inputs, 5 if version == 2 else 4, "output bit width").reshape(-1)[0])
        if version == 2:
            out_scale = _input(inputs, 4, "output scale").astype(np.float32)
            _checked("Trunc", out_scale, out_bits)
            signed, narrow = bool(ctx.attrs.get("signed", 1)), bool(ctx.attrs.get("narrow", 0))
        else:
            in_bits = float(_input(inputs, 3, "input bit width").reshape(-1)[0])
            _checked("Trunc", scale, out_bits)
            out_scale = (scale * np.float32(2.0 ** (in_bits - out_bits))).astype(np.float32)
            signed, narrow, out_bits = True, False, _TRUNC_INNER_BITS
    except ValueError as exc:
        raise ctx.error(str(exc)) from None
    if np.any(zero_point != 0):
        raise ctx.error("Trunc: a non-zero zero point is not supported")
    ratio = out_scale.astype(np.float64) / scale.astype(np.float64)
    if not np.all(np.frexp(ratio)[0] == 0.5):
        raise ctx.error("Trunc: the output scale over the input scale is not a power of two (no exact form)")
    rounding = str(ctx.attrs.get("rounding_mode", "FLOOR")).upper()
    if rounding not in ROUNDINGS:
        raise ctx.error(f"rounding_mode {rounding!r} is not one of QONNX's ({', '.join(ROUNDINGS)})")
    inner = _Spec(scale, zero_point, _TRUNC_INNER_BITS, True, False, "ROUND")
    n = ctx.emit("quant", [x], inner.attrs(), _params(ctx, x, inner), suffix="round")
    outer = _Spec(out_scale, zero_point, int(out_bits), signed, narrow, rounding)
    if version == 2:
        return [ctx.emit("quant", [n], outer.attrs(), _params(ctx, n, outer))]
    q = ctx.emit("quant", [n], outer.attrs(), _params(ctx, n, outer), suffix="trunc")
    back = _per_sample_param(ctx, (1 / ratio).astype(np.float32), x.shape, "scale")
    return [ctx.emit("affine", [q], {}, {"scale": back, "shift": np.zeros_like(back)})]


def _linear_on(ctx: NodeContext, inputs: Arrays) -> _Spec:
    return _linear_spec(inputs, ctx.attrs, len(ctx.act(0).shape) + 1)


def convert_quantize_linear(ctx: NodeContext) -> list[Tensor]:
    """QuantizeLinear rounds before it adds the zero point, ``clamp(R(x / s) + z)``, where QONNX's Quant
    (the IR's ``quant``) rounds ``x / s + z``: the same for an even ``z``, but an odd one would send ties
    to odd. Then the rounding is a ``quant`` of its own, with no zero point and one bit more (no clamp
    reached), and the pair's ``quant`` reads values already on its grid: it only clamps."""
    x = ctx.act(0)
    spec = _spec(ctx, lambda inputs: _linear_on(ctx, inputs))
    if np.any(spec.zero_point % 2):
        wide = _Spec(spec.scale, np.zeros((), np.float32), spec.bits + 1, True, False, "ROUND")
        x = ctx.emit("quant", [x], wide.attrs(), _params(ctx, x, wide), suffix="round")
    return [ctx.emit("quant", [x], spec.attrs(), _params(ctx, x, spec))]


def _range_attrs(lo: int, hi: int) -> dict[str, Any] | None:
    """QONNX's ``bits``/``signed``/``narrow`` whose integer range is exactly ``[lo, hi]``, or None."""
    for bits in range(1, 33):
        for signed in (False, True):
            for narrow in (False, True):
                # 1-bit signed is the bipolar sign, not the range [-1, 0]
                if int_range(bits, signed, narrow) == (lo, hi) and not (signed and bits == 1):
                    return {"bits": bits, "signed": signed, "narrow": narrow}
    return None


def convert_clip(ctx: NodeContext) -> list[Tensor]:
    """QCDQ's Clip (QuantizeLinear -> Clip -> DequantizeLinear, how qonnx and Brevitas write fewer than 8
    bits): integer bounds on the QuantizeLinear's integer codes. The codes are the ``quant`` node's value
    divided by its scale (plus the zero point), so clamping them is a ``quant`` on the same grid with the
    clamped range as its bit width: it reads values on its grid and only clamps. A real-valued Clip (float
    bounds) is the core converter's."""
    x = ctx.act(0)
    node = x.producer
    bounds = [ctx.const(i, "bound") if ctx.has(i) else None for i in (1, 2)] if ctx.opset >= 11 else []
    if node is None or node.op != "quant" or not any(b is not None and b.dtype.kind in "iu" for b in bounds):
        return convert_clip_values(ctx)
    lo, hi = int_range(node.attrs["bits"], node.attrs["signed"], node.attrs["narrow"])
    if bounds[0] is not None:
        lo = max(lo, int(bounds[0].reshape(-1)[0]))
    if bounds[1] is not None:
        hi = min(hi, int(bounds[1].reshape(-1)[0]))
    attrs = _range_attrs(lo, hi)
    if attrs is None:
        raise ctx.error(f"QCDQ Clip to [{lo}, {hi}] is no QONNX integer range (a bit width, signed, narrow)")
    params = {k: node.params[k].data for k in ("scale", "zero_point")}
    return [ctx.emit("quant", [x], {**node.attrs, **attrs}, params)]


def convert_dequantize_linear(ctx: NodeContext) -> list[Tensor]:
    """The second half of a pair: its QuantizeLinear's ``quant`` node already holds the real value."""
    x = ctx.act(0)
    node = x.producer
    if node is None or node.op != "quant":
        raise ctx.error("DequantizeLinear of an activation must read a QuantizeLinear")
    params = _params(ctx, x, _spec(ctx, lambda inputs: _linear_on(ctx, inputs)))
    for key, data in params.items():
        if not np.array_equal(
            np.broadcast_to(data, x.shape), np.broadcast_to(node.params[key].data, x.shape)
        ):
            raise ctx.error(
                "DequantizeLinear must use the scale and zero point of the QuantizeLinear it reads"
            )
    return [x]


def _per_domain(table: dict[str, T]) -> dict[str, T]:
    return {f"{domain}.{op}": fn for domain in QONNX_DOMAINS for op, fn in table.items()}


_quant = _converter(lambda ctx, inputs: _quant_spec(inputs, ctx.attrs))
QONNX_CONVERTERS: dict[str, Converter] = {
    **_per_domain(
        {
            "Quant": _quant,
            "IntQuant": _quant,
            "BipolarQuant": _converter(lambda ctx, inputs: _bipolar_spec(inputs, ctx.attrs)),
            "Trunc": convert_trunc,
        }
    ),
    "QuantizeLinear": convert_quantize_linear,
    "Clip": convert_clip,
    "DequantizeLinear": convert_dequantize_linear,
}
QONNX_FOLDERS: dict[str, Folder] = {
    **_per_domain({"Quant": _fold_quant, "IntQuant": _fold_quant, "BipolarQuant": _fold_bipolar}),
    "QuantizeLinear": _fold_quantize_linear,
    "DequantizeLinear": _fold_dequantize_linear,
}


PINNED_WIDTH = 16  # a weight on a grid of at most this many bits is taken as quantized in training
_SCALE_WIDTH = 32  # holds any float32 scale whose codes span at most 8 octaves
_MAX_CODE = 2**15  # integer codes of a factored weight (W = scale * codes)


def pin_weight_grids(graph: Graph, label: str) -> None:
    """Give each dense/conv weight of a quantized model the format of its grid (a 4-bit weight of scale
    2**-3 is ``ap_fixed<4,1>``), which the quantize pass keeps: the folded quantizer's exact values, in
    as few bits as they need, whatever the build's precision.

    A weight quantized with a scale that is not a power of two (Brevitas' binary weights: +-0.1) is on
    no grid; it is factored into integer codes, the layer's pinned weights, and the scale, moved into an
    ``affine`` node after the layer (with the bias), rounded to float32's resolution where a quantizer
    reads it: a declared rounding point, where float QONNX execution's summation order can make it
    deviate from the design (:mod:`fpgac.analysis.rounding_points` reports it).
    """
    for node in list(graph.nodes):
        weight = node.params.get("weight")
        if weight is None or OPS[node.op].kind not in (Kind.MATMUL, Kind.WINDOW):
            continue
        fmt = grid_format(weight.data, PINNED_WIDTH)
        if fmt is None:
            factored = _factor_scale(weight.data)
            if factored is None:
                continue
            codes, scale = factored
            fmt = grid_format(codes, PINNED_WIDTH)
            if fmt is None:
                continue
            _scale_after(graph, node, scale)
            weight.data = codes.astype(weight.data.dtype)
            log.warning(
                "%s: node %r (%s): weight scale %s is not a power of two: the layer computes with its "
                "integer weights and an affine node after it applies the scale, a rounding point where "
                "float QONNX execution's summation order can round ties differently (see report.md)",
                label,
                node.name,
                node.op,
                np.unique(scale).tolist()[:4],
            )
        weight.format = fmt


def _factor_scale(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes, scale)`` with ``weight == scale * codes`` (float32 rounding aside), integer codes and one
    scale per tensor or per output channel (the smallest non-zero magnitude), or None."""
    rows = np.abs(weight.reshape(len(weight), -1).astype(np.float64))
    nonzero = np.where(rows > 0, rows, np.inf)
    for scale in (np.full(len(rows), nonzero.min()), nonzero.min(axis=1)):
        scale = np.where(np.isfinite(scale), scale, 1.0)
        codes = weight.astype(np.float64) / scale.reshape((-1,) + (1,) * (weight.ndim - 1))
        rounded = np.round(codes)
        if np.all(np.abs(codes - rounded) <= 1e-2) and np.abs(rounded).max() < _MAX_CODE:
            return rounded, scale
    return None


def _scale_after(graph: Graph, layer: Node, scale: np.ndarray) -> None:
    """Insert ``affine(scale, bias)`` after ``layer`` (whose bias moves into it) and route its readers
    through it."""
    out = layer.output
    users = list(out.uses)
    quantizer = _quantizer_after(layer)
    channel_shape = (len(scale),) + (1,) * (len(out.shape) - 1) if layer.op == "conv" else (len(scale),)
    bias = layer.params.pop("bias", None)
    shift = np.zeros(len(scale), np.float32) if bias is None else bias.data
    scale32 = scale.astype(np.float32).reshape(channel_shape)
    # The scale's exact float32 value (24 significant bits) is its format: the design multiplies by the
    # scale the QONNX model holds, not by a rounding of it.
    params = {
        "scale": Param(scale32, grid_format(scale32, _SCALE_WIDTH) or FLOAT32),
        "shift": Param(np.asarray(shift, np.float32).reshape(channel_shape)),
    }
    affine = graph.add(
        "affine", [out], name=f"{layer.name}/scale", params=params, index=graph.index_of(layer) + 1
    )
    result = affine.output
    if quantizer is not None:
        result = _float32_rounding(graph, affine, quantizer).output
    for user, index in users:
        user.set_input(index, result)
    graph.set_outputs([result if v is out else v for v in graph.outputs])


_ORDER_PRESERVING = ("relu", "max_pool", "reshape", "transpose")  # between a scaled layer and its quantizer
_FLOAT32_BITS = 24  # float32's significand


def _quantizer_after(node: Node) -> Node | None:
    """The ``quant`` node ``node``'s result alone reaches through ops that keep order and round nothing."""
    while len(node.output.uses) == 1:
        node = node.output.uses[0][0]
        if node.op == "quant":
            return node
        if node.op not in _ORDER_PRESERVING:
            return None
    return None


def _float32_step(top: float) -> np.ndarray:
    """float32's step at ``top`` (in ``[2**e, 2**(e+1))``: ``2**(e-23)``), the grid a value is rounded to
    as float32 stores it near a quantizer's outermost ties (``top``). The 25-bit rounding saturates at
    ``+-2**(e+1)``, at or beyond every threshold (integers for FLOOR and CEIL): the clamp gives the same."""
    return np.array(2.0 ** (int(np.floor(np.log2(top))) + 1 - _FLOAT32_BITS), np.float32)


def _float32_rounding(graph: Graph, affine: Node, quantizer: Node) -> Node:
    """A ``quant`` node after ``affine`` that rounds its exact result to float32's resolution at the
    quantizer's largest threshold (round half to even, 25 bits: :func:`_float32_step`), as float QONNX
    execution stores it.

    Why: a non-power-of-two scale makes exact ties of the model's decimal scale (``0.1 * s == (k + 1/2)
    * step``) common, and float32's ``0.1`` lies just above 0.1, so the exact product ``0.1f * s`` falls
    a fraction of a float32 step above each tie and always rounds up, while float32 execution stores the
    tie itself and rounds it to even. Rounded to that step first, the design does the same: it computes
    the correctly rounded float32 product (the snap is below any gap between distinct products of a sum
    of fewer than 2**22 input steps).
    """
    scale = np.abs(quantizer.params["scale"].data.astype(np.float64)).max()
    lo, hi = int_range(quantizer.attrs["bits"], quantizer.attrs["signed"], quantizer.attrs["narrow"])
    top = (max(-lo, hi) - 0.5) * scale  # the outermost ties
    params = {"scale": Param(_float32_step(top)), "zero_point": Param(np.zeros((), np.float32))}
    attrs = {"bits": _FLOAT32_BITS + 1, "signed": True, "narrow": False, "rounding": "ROUND"}
    return graph.add(
        "quant",
        [affine.output],
        name=f"{affine.name}/float32",
        attrs=attrs,
        params=params,
        index=graph.index_of(affine) + 1,
    )
