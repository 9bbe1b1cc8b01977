"""Calibrated fixed-point quantization: a format for every value, param and accumulator.

Formats follow three rules.

* **Activations** get ``precision`` bits; the integer bits come from the value's range — measured on
  calibration data plus ``headroom`` bits, or, without data, bounded by interval arithmetic from
  ``input_range`` (sound: nothing can overflow, but wider; the bounds use the quantized constants and
  cover each value's rounding into its format; on deep nets they are capped, see
  :mod:`fpgac.analysis.ranges`, and only capped values can saturate). They round to nearest (RND, one
  adder) and saturate. Ops that only move or compare values (max pooling, reshapes, padding) keep their
  input's format, ReLU drops the sign bit, and bounded ops (sigmoid, tanh, softmax, hard sigmoid, clip) get
  formats from their bounds, not from data.
* **Weights, biases and constants** get ``precision`` bits sized to their largest magnitude, rounded to
  nearest-even (RND_CONV) with saturation. hls4ml's default truncation biases every weight downwards;
  measured there, it gave a small CNN a 40x larger mean output error.
* **Accumulators** (dense, conv, pooling sums, softmax sums) are exact: their fraction holds every
  product, and their integer bits the worst-case sum over the input format's whole range, so a dot
  product never overflows whatever the input.

Formats a frontend declared stay as they are: a QKeras quantizer is the format of the weight or value it
quantizes (fixed formats on the float graph), so the design rounds where the trained model did.

Non-linear functions become lookup tables indexed by the input's raw bits (see
:mod:`fpgac.interp.fixed_kernels` for the exact kernel semantics the HLS implements).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from fpgac.analysis.ranges import GROWTH_BITS, Range, calibrated_ranges, interval_ranges
from fpgac.errors import FpgacError
from fpgac.ir import fixed
from fpgac.ir.graph import Graph, Node, Param, Value
from fpgac.ir.levels import LEVEL_BIAS, at_level, level_count
from fpgac.ir.ops import OPS
from fpgac.ir.quant import fixed_plan, zero_points
from fpgac.ir.sign_weights import sign_weights
from fpgac.ir.types import Fixed, Float, Overflow, Rounding
from fpgac.passes.ood_formats import energy_format, flag_format

log = logging.getLogger(__name__)

MIN_PRECISION, MAX_PRECISION = 4, 32
# Internal widths of the table-based kernels (independent of the model's precision).
_TABLE_ENTRIES = 1024
_EXP_ENTRIES = 2048
_EXP_DOMAIN = 16.0  # exp(-16) = 1.1e-7: smaller probabilities are not worth a table entry
_EXP_FORMAT = Fixed(18, 0, False, Rounding.RND_CONV, Overflow.SAT)
_TABLE_WIDTH = 18  # LRN's power table: the width of a BRAM word
# Reciprocals round down (TRN): sum * recip[c] <= sum / c, so the mean of values inside a format stays
# inside it. Rounded to nearest, 1/9 rounds up and a 3x3 mean of 16-bit inputs at max saturated.
_RECIP_FORMAT = Fixed(18, 1, False, Rounding.TRN, Overflow.SAT)


class QuantizeError(FpgacError):
    """The graph cannot be quantized as asked."""


def _int_bits(magnitude: float, signed: bool) -> int:
    """Fewest integer bits (sign included) whose range holds ``magnitude``."""
    if not magnitude > 0:
        return 1 if signed else 0
    return math.floor(math.log2(magnitude)) + 1 + int(signed)


def activation_format(lo: float, hi: float, width: int, headroom: int, signed: bool | None = None) -> Fixed:
    signed = lo < 0 if signed is None else signed
    magnitude = max(abs(lo), abs(hi))
    return Fixed(width, _int_bits(magnitude, signed) + headroom, signed, Rounding.RND, Overflow.SAT)


def constant_format(data: np.ndarray | np.float64, width: int) -> Fixed:
    return Fixed(
        width, _int_bits(float(np.abs(data).max(initial=0.0)), True), True, Rounding.RND_CONV, Overflow.SAT
    )


def declared(value: Value) -> Fixed | None:
    """The format a frontend declared on a value of the float graph (a QKeras quantizer's), if any:
    the pass keeps it instead of sizing one from the value's range."""
    fmt = value.type.format
    return fmt if isinstance(fmt, Fixed) else None


def _param_format(param: Param, width: int) -> Fixed:
    """A weight's declared format (a QKeras quantizer's), else ``width`` bits sized to its data."""
    if isinstance(param.format, Fixed):
        return param.format
    return constant_format(param.data, width)


def _weight_format(param: Param, width: int) -> Fixed:
    """A dense/conv weight's format: declared, or the narrow exact one of binary/ternary weights
    (:mod:`fpgac.ir.sign_weights`: no multiplier needs more), else ``width`` bits."""
    if isinstance(param.format, Fixed):
        return param.format
    signs = sign_weights(param.data)
    return signs.format() if signs is not None else constant_format(param.data, width)


def _quantized(data: np.ndarray | np.float64, fmt: Fixed) -> Param:
    """The param as the hardware stores it: values exactly representable in ``fmt`` (float64).

    Chunk by chunk into the result, so a big weight needs no full-size float64 copy of its float32 data
    nor a full-size array of mantissas on the way (quantize reads float32 exactly).
    """
    data = np.asarray(data)
    flat, out = data.reshape(-1), np.empty(data.size, np.float64)
    for start in range(0, flat.size, fixed.QUANTIZE_CHUNK):
        part = slice(start, start + fixed.QUANTIZE_CHUNK)
        out[part] = fixed.to_float(fixed.quantize(flat[part], fmt), fmt)
    return Param(out.reshape(data.shape), fmt)  # scalar params (alpha, gamma) stay scalar


@dataclass(frozen=True)
class Quantize:
    """Assign fixed-point formats everywhere and build the kernels' tables.

    Options: ``precision`` (bits of activations and weights, default 16), ``layer_precision``
    (per-node override, from the build config), ``edge_precision`` (bits of the first and the last
    dense/conv layer, see :func:`_edge_layers`; a ``layer_precision`` entry still wins),
    ``headroom`` (extra integer bits over the calibrated range), ``input_range`` (bounds of every
    input element when there is no calibration data).
    ``calib`` is the calibration batch (one array per graph input), given by the pipeline.
    """

    name: ClassVar[str] = "quantize"
    precision: int = 16
    headroom: int = 1
    input_range: tuple[float, float] = (-1.0, 1.0)
    layer_precision: Mapping[str, int] = field(default_factory=dict)
    edge_precision: int | None = None
    calib: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = [("", self.precision)] + [(f" for layer {k!r}", v) for k, v in self.layer_precision.items()]
        if self.edge_precision is not None:
            where.append((" (edge_precision)", self.edge_precision))
        for what, bits in where:
            if (
                isinstance(bits, bool)
                or not isinstance(bits, int)
                or not MIN_PRECISION <= bits <= MAX_PRECISION
            ):
                raise QuantizeError(
                    f"quantize: precision {bits!r}{what} is out of range ({MIN_PRECISION}..{MAX_PRECISION})"
                )
        if not 0 <= self.headroom <= 8:
            raise QuantizeError(f"quantize: headroom {self.headroom} is out of range (0..8)")

    def run(self, graph: Graph) -> Graph:
        if self.edge_precision is not None:
            edges = dict.fromkeys(_edge_layers(graph), self.edge_precision)
            return replace(self, layer_precision={**edges, **self.layer_precision}, edge_precision=None).run(
                graph
            )
        _check_quantizable(graph)
        ranges, headroom = self._ranges(graph)
        formats: dict[int, Fixed] = {}
        for value in graph.inputs:
            lo, hi = ranges[value.name]
            formats[id(value)] = declared(value) or activation_format(lo, hi, self.precision, headroom)
            value.type = value.type.with_format(formats[id(value)])
        for node in graph.nodes:
            width = self.layer_precision.get(node.name, self.precision)
            ins = [formats[id(v)] for v in node.inputs]
            lo, hi = ranges[node.output.name]
            try:
                out = _RULES[node.op](node, ins, (lo, hi), width, headroom)
            except (ValueError, ZeroDivisionError, OverflowError) as exc:
                raise QuantizeError(f"quantize failed on node {node.name!r} ({node.op}): {exc}") from exc
            out = declared(node.output) or out
            formats[id(node.output)] = out
            node.output.type = node.output.type.with_format(out)
        graph.metadata["quantize"] = {
            "precision": self.precision,
            "ranges": "calibration" if self.calib is not None else "interval",
        }
        return graph

    def _ranges(self, graph: Graph) -> tuple[dict[str, Range], int]:
        if self.calib is not None:
            for value, array in zip(graph.inputs, self.calib, strict=False):
                if not np.all(np.isfinite(array)):
                    raise QuantizeError(f"calibration data for input {value.name!r} contains NaN or Inf")
            ranges = calibrated_ranges(graph, list(self.calib))
            for level in range(1, level_count(graph)):  # formats hold every rank level's activations
                at = calibrated_ranges(at_level(graph, level), list(self.calib))
                ranges = {k: (min(lo, at[k][0]), max(hi, at[k][1])) for k, (lo, hi) in ranges.items()}
            for value in graph.inputs:
                if ranges[value.name] == (0.0, 0.0):
                    log.warning(
                        "calibration data for input %r is all zeros: its format cannot be sized from it, "
                        "and real inputs will saturate",
                        value.name,
                    )
            return ranges, self.headroom
        lo, hi = self.input_range
        ranges, capped = interval_ranges(self._with_quantized_constants(graph), (lo, hi), self._widen)
        if capped:
            first = graph.node(capped[0])
            log.warning(
                "no calibration data, and interval bounds from the input range [%g, %g] run away from layer "
                "%r (%s) on: %d layers capped at 2^%d times the input range, where values beyond it "
                "saturate; pass --calib",
                lo,
                hi,
                first.name,
                first.op,
                len(capped),
                GROWTH_BITS,
            )
        else:
            log.warning(
                "no calibration data: formats are bounded by interval arithmetic from the input range "
                "[%g, %g], so nothing can overflow, but they are wider than calibrated ones; pass --calib",
                lo,
                hi,
            )
        return ranges, 0

    def _width(self, value: Value) -> int:
        node = value.producer
        return self.precision if node is None else self.layer_precision.get(node.name, self.precision)

    def _with_quantized_constants(self, graph: Graph) -> Graph:
        """A copy whose constants hold the values the hardware will store.

        Interval bounds from the float weights are not sound for the quantized design: RND_CONV rounds
        some weights up in magnitude (at 4-8 bits, enough to overflow a layer sized from the float bound).
        Every constant's format depends only on its data and width, so it can be quantized up front.
        """
        copy = graph.clone()
        for node in copy.nodes:
            width = self.layer_precision.get(node.name, self.precision)
            for key, param in node.params.items():
                node.params[key] = _quantized(param.data, _param_format(param, width))
            for key in OPS[node.op].quantized_attrs:
                data = np.float64(node.attrs[key])
                node.attrs[key] = float(_quantized(data, constant_format(data, width)).data)
        return copy

    def _widen(self, value: Value, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cover the rounding of ``value`` into its format (at most one LSB of the format its range asks
        for; a bound crossing a power of two doubles the LSB, which the one-LSB slack still covers) and
        float32 rounding in the interval ops (2**-20 of the magnitude). Zero stays a bound: rounding a
        non-negative value never makes it negative, so ReLU outputs keep unsigned formats."""
        top = max(abs(float(lo.min(initial=0.0))), abs(float(hi.max(initial=0.0))))
        fmt = declared(value) or activation_format(
            float(lo.min(initial=0.0)), float(hi.max(initial=0.0)), self._width(value), 0
        )
        slack = fmt.lsb + top * 2.0**-20
        return np.where(lo < 0, lo - slack, lo), np.where(hi > 0, hi + slack, hi)


def _edge_layers(graph: Graph) -> list[str]:
    """The names of the first and the last node with a weight matrix (dense, conv), in graph order.

    At 4 bits the layers at the ends lose the most: the first sees the raw input through few weight
    levels, and the last one's outputs are the logits, whose coarse grid turns close calls into ties for
    the top class. Keeping those two at 8 bits is the common practice of low-bit quantization (DoReFa-Net,
    PACT, LSQ all do it); ``edge_precision`` makes that one option instead of two node names.
    """
    weighted = [node.name for node in graph.nodes if "weight" in OPS[node.op].weights]
    return list(dict.fromkeys(weighted[:1] + weighted[-1:]))


def _check_quantizable(graph: Graph) -> None:
    """Refuse a graph quantized before; fixed formats a frontend declared (QKeras's quantizers) stay."""
    if "quantize" in graph.metadata:
        fixed_values = [v for v in graph.values() if not isinstance(v.type.format, Float)]
        where = f"value {fixed_values[0].name!r} is" if fixed_values else "the graph is"
        raise QuantizeError(f"quantize: {where} already quantized")
    for node in graph.nodes:
        if node.op not in _RULES:
            reason = OPS[node.op].float_only
            raise QuantizeError(
                f"quantize failed on node {node.name!r} ({node.op}): no fixed-point kernel for {node.op}"
                f"{f' ({reason})' if reason else ''}; keep this part of the model in software"
            )
        for key, param in node.params.items():
            if not np.all(np.isfinite(param.data)):
                raise QuantizeError(f"node {node.name!r} ({node.op}): param {key!r} contains NaN or Inf")


Rule = Callable[[Node, list[Fixed], Range, int, int], Fixed]


def _linear(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """dense/conv: quantized weight and bias, an exact accumulator, a calibrated output.

    The accumulator's width comes from the worst-case ``|sum|`` computed exactly on stored mantissas
    (Python ints): a float bound can round below a power of two that the true sum reaches.
    """
    (fx,) = ins
    weight = node.params["weight"]
    fw = _weight_format(weight, width)
    node.params["weight"] = _quantized_encoded(weight, fw)
    frac = fx.frac_bits + fw.frac_bits
    w_m = _abs_row_sums(node.params["weight"])
    terms = [(w_m * max(-fx.min_mantissa, fx.max_mantissa), frac)]
    if "bias" in node.params:
        # One format for every rank level's bias (fpgac/ir/levels.py), the accumulator sized for the largest.
        biases = node.params.get(LEVEL_BIAS, node.params["bias"])
        fb = _param_format(biases, width)
        node.params["bias"] = _quantized(node.params["bias"].data, fb)
        if LEVEL_BIAS in node.params:
            node.params[LEVEL_BIAS] = _quantized(biases.data, fb)
        all_biases = node.params.get(LEVEL_BIAS, node.params["bias"])
        terms.append((np.abs(_mantissas(all_biases)).reshape(-1, w_m.shape[0]).max(axis=0), fb.frac_bits))
        frac = max(frac, fb.frac_bits)
    bound = sum(m * 2 ** (frac - f) for m, f in terms)  # exact mantissa bound on the accumulator's grid
    acc_width = int(max(bound, default=0)).bit_length() + 1  # holds -bound..bound, sign included
    node.attrs["acc"] = Fixed(acc_width, acc_width - frac, True, Rounding.TRN, Overflow.WRAP)
    if _feeds_quant_only(node):
        return node.attrs["acc"]
    return activation_format(*r, width, headroom)


def _feeds_quant_only(node: Node) -> bool:
    """Whether every path from the output reaches a QONNX quantizer through ops that keep values exactly
    (ReLU, max pooling, reshapes): the quantizer then gets the exact result and rounds once, as QONNX
    does, instead of after a calibrated rounding of its own."""
    users = node.output.consumers
    graph_outputs = node.graph.outputs if node.graph is not None else ()
    if not users or node.output in graph_outputs:
        return False
    return all(
        u.op == "quant"
        or (_RULES[u.op] in (_same, _relu) and _feeds_quant_only(u))
        or (_pinned_affine(u) and _feeds_quant_only(u))  # a QONNX quantizer's exact division by its scale
        for u in users
    )


def _pinned_affine(node: Node) -> bool:
    """An affine whose scale has a pinned format (a QONNX scale the frontend put on its exact grid)."""
    return node.op == "affine" and isinstance(node.params["scale"].format, Fixed)


def _quant(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """QONNX's quantizer: its power-of-two grid is the format (:func:`fpgac.ir.quant.fixed_plan`)."""
    plan = fixed_plan(
        node.attrs, node.params["scale"].data, node.params["zero_point"].data, node.output.shape
    )
    fracs = [g.frac for g in plan.groups]
    # Scales are powers of two (fixed_plan checked): a format spanning their exponents holds each exactly.
    node.params["scale"] = _quantized(
        node.params["scale"].data, Fixed(max(fracs) - min(fracs) + 2, 2 - min(fracs), True, Rounding.RND_CONV)
    )
    zero = int(np.abs(zero_points(node.params["zero_point"].data)).max(initial=0))  # fixed_plan checked
    width = zero.bit_length() + 1
    node.params["zero_point"] = _quantized(node.params["zero_point"].data, Fixed(width, width, True))
    return plan.out


def _quantized_encoded(param: Param, fmt: Fixed) -> Param:
    """``_quantized``, keeping a compressed tensor's encoding: a shared tensor's codebook is rounded into
    ``fmt`` and ``data`` rebuilt from it, so the codebook ROM holds exactly the values the layer computes
    with (rounding is elementwise, so this equals quantizing ``data``). Indices, sparsity and Huffman codes
    depend on indices only and are kept as they are."""
    enc = param.encoding
    if enc is None:
        return _quantized(param.data, fmt)
    if not enc.shared:
        return Param(_quantized(param.data, fmt).data, fmt, enc)
    assert enc.codebook is not None and enc.indices is not None
    codebook = _quantized(enc.codebook, fmt).data
    data = codebook[enc.indices.astype(np.int64)].reshape(param.data.shape)
    return Param(data, fmt, enc.with_codebook(codebook))


def _abs_row_sums(param: Param) -> np.ndarray:
    """Per output unit (first axis), the sum of the absolute stored mantissas of a quantized ``param``,
    as Python ints.

    The values are on the format's grid, ``m * 2**-F``, so where no sum of ``|m|`` can reach 2**53 (a row
    of ``n`` mantissas of a ``W``-bit format sums below ``2**(W + n.bit_length())``) float64 sums them
    exactly, a block of rows at a time: no Python int per weight (VGG-19: 143M of them, 5 GB), no
    second quantization.
    """
    fmt = param.format
    assert isinstance(fmt, Fixed)
    rows = param.data.reshape(param.data.shape[0], -1)
    if fmt.width + rows.shape[1].bit_length() > 52:
        return np.abs(_mantissas(param)).reshape(rows.shape[0], -1).sum(axis=1)
    step = max(1, fixed.QUANTIZE_CHUNK // max(rows.shape[1], 1))
    sums = [np.abs(rows[i : i + step]).sum(axis=1) for i in range(0, len(rows), step)]
    return np.array([int(v) for v in np.ldexp(np.concatenate(sums), fmt.frac_bits)], dtype=object)


def _mantissas(param: Param) -> np.ndarray:
    """A quantized param's stored integers as Python ints (exact products and sums at any width)."""
    assert isinstance(param.format, Fixed)
    return np.asarray(fixed.quantize(param.data, param.format)).reshape(param.data.shape).astype(object)


def _rescales_codes(node: Node) -> bool:
    """An affine with a pinned (exact) scale reading a ``quant`` node: a QONNX quantizer's integer codes
    times its non-power-of-two float32 scale, whose exact product is the quantizer's value."""
    producer = node.inputs[0].producer
    return producer is not None and producer.op == "quant" and _pinned_affine(node)


def _affine(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    for key in ("scale", "shift"):
        param = node.params[key]
        fmt = param.format if isinstance(param.format, Fixed) else constant_format(param.data, width)
        node.params[key] = _quantized(param.data, fmt)  # a pinned format (a QONNX scale) is kept
    if _feeds_quant_only(node) or _rescales_codes(node):  # the exact x * scale + shift
        fs, ft = (node.params[k].format for k in ("scale", "shift"))
        assert isinstance(fs, Fixed) and isinstance(ft, Fixed)
        return fixed.add_format(fixed.mul_format(ins[0], fs), ft)
    return activation_format(*r, width, headroom)


def _calibrated(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    return activation_format(*r, width, headroom)


def _sum(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """add/sub: calibrated, or exact where a QONNX quantizer reads it (see :func:`_feeds_quant_only`)."""
    if not _feeds_quant_only(node):
        return activation_format(*r, width, headroom)
    combine = fixed.add_format if node.op == "add" else fixed.sub_format
    out = ins[0]
    for fmt in ins[1:]:
        out = combine(out, fmt)
    return out


def _with_constant(key: str, attr: str | None = None) -> Rule:
    """Ops with a scalar/per-channel constant (leaky ReLU's alpha, PReLU's slope) quantized as a param."""

    def rule(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
        data = np.asarray(node.attrs[attr] if attr else node.params[key].data, dtype=np.float64)
        node.params[key] = _quantized(data, constant_format(data, width))
        return activation_format(*r, width, headroom)

    return rule


def _same(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    return ins[0]


def _relu(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """The non-negative half of the input format: exact, and one bit narrower."""
    (fx,) = ins
    if not fx.signed:
        return fx
    return Fixed(max(fx.width - 1, 1), fx.int_bits - 1, False, Rounding.RND, Overflow.SAT)


def _clip(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    lo, hi = node.attrs["min"], node.attrs["max"]
    if lo is None or hi is None:
        return activation_format(*r, width, headroom, signed=None if lo is None else lo < 0)
    return activation_format(min(lo, 0.0), max(hi, 0.0), width, 0, signed=lo < 0)


def _union(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """concat: a format that holds every input exactly."""
    signed = any(f.signed for f in ins)
    int_bits = max(f.int_bits + (signed and not f.signed) for f in ins)
    frac = max(f.frac_bits for f in ins)
    return Fixed(int_bits + frac, int_bits, signed, Rounding.RND, Overflow.SAT)


def _mean(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """avg_pool/reduce mean: exact sum in ``acc``, times a reciprocal; the mean keeps the input's format."""
    (fx,) = ins
    if node.op == "avg_pool":
        count = math.prod(node.attrs["kernel"])
        recip = np.array([0.0] + [1.0 / c for c in range(1, count + 1)])
    elif node.attrs["mode"] == "mean":
        count = math.prod(node.inputs[0].shape[a] for a in node.attrs["axes"])
        recip = np.array([1.0 / count])
    else:
        return fx
    grow = max(math.ceil(math.log2(count)), 0)
    node.attrs["acc"] = Fixed(fx.width + grow, fx.int_bits + grow, fx.signed, Rounding.TRN, Overflow.WRAP)
    node.params["recip"] = _quantized(recip, _RECIP_FORMAT)
    return Fixed(fx.width, fx.int_bits, fx.signed, Rounding.RND, Overflow.SAT)


def _table(
    node: Node,
    fx: Fixed,
    domain: tuple[float, float],
    entries: int,
    fn: Callable[[np.ndarray], np.ndarray],
    out: Fixed,
) -> None:
    """A lookup table of ``fn`` over ``domain``, indexed by ``floor(x / 2**shift) + offset``.

    The step is a power of two (so the index is a shift of the raw bits), no finer than the input's
    LSB, and each entry holds ``fn`` at the centre of the input values that reach it. On an input grid
    coarser than the domain (uncalibrated formats of deep nets), the domain grows to a bin below zero and
    one beyond the bin of zero, so the table is never empty and ``x = lsb`` does not read ``fn(0)``.
    """
    lo, hi = domain
    fx_lsb = 2.0**-fx.frac_bits
    step = max((hi - lo) / entries, fx_lsb)
    shift = math.ceil(math.log2(step))
    step = 2.0**shift
    lo = min(lo, -step) if lo < 0 else lo
    hi = max(hi, 2 * step) if hi > 0 else hi
    offset = round(-lo / step)
    size = round((hi - lo) / step)
    starts = (np.arange(size) - offset) * step
    centres = starts + max(step - fx_lsb, 0.0) / 2
    node.attrs["table_shift"], node.attrs["table_offset"] = shift, offset
    node.params["table"] = _quantized(fn(centres), out)


def _domain(fx: Fixed, limit: float) -> float:
    """Half-width of a symmetric table domain: ``limit``, or less if the input cannot reach it."""
    return min(limit, 2.0 ** (fx.int_bits - int(fx.signed)))


def _sigmoid(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    out = Fixed(width, 0, False, Rounding.RND, Overflow.SAT)
    half = _domain(ins[0], 8.0)
    with np.errstate(over="ignore"):  # exp(-c) of a coarse grid's far bins is inf: 1 / inf is the 0 wanted
        _table(node, ins[0], (-half, half), _TABLE_ENTRIES, lambda c: 1.0 / (1.0 + np.exp(-c)), out)
    return out


def _tanh(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    out = Fixed(width, 1, True, Rounding.RND, Overflow.SAT)
    half = _domain(ins[0], 4.0)
    _table(node, ins[0], (-half, half), _TABLE_ENTRIES, np.tanh, out)
    return out


def _elu(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """Identity (selu: times gamma) on the positive side, a table of the exponential side."""
    alpha = node.attrs["alpha"]
    gamma = node.attrs.get("gamma", 1.0)
    out = activation_format(*r, width, headroom)
    if node.op == "selu":
        node.params["gamma"] = _quantized(np.float64(gamma), constant_format(np.float64(gamma), width))
    depth = _domain(ins[0], 8.0)
    _table(node, ins[0], (-depth, 0.0), _TABLE_ENTRIES // 2, lambda c: gamma * alpha * np.expm1(c), out)
    return out


def _hard_sigmoid(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    for key in ("alpha", "beta"):
        data = np.float64(node.attrs[key])
        node.params[key] = _quantized(data, constant_format(data, width))
    return Fixed(width, 1, False, Rounding.RND, Overflow.SAT)


def _softmax(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """exp table over ``d = x - max``, an exact sum, one integer division per output."""
    _exp_table(node, fixed.sub_format(ins[0], ins[0]))
    n = node.inputs[0].shape[node.attrs["axis"]]
    grow = max(math.ceil(math.log2(n)), 0) if n > 1 else 0
    node.attrs["acc"] = Fixed(_EXP_FORMAT.width + grow, grow, False, Rounding.TRN, Overflow.WRAP)
    return Fixed(width, 1, False, Rounding.RND, Overflow.SAT)


def _exp_table(node: Node, fd: Fixed) -> None:
    """``exp(d)`` for ``d = x - max <= 0``: bins of ``2**shift`` from ``-_EXP_DOMAIN`` up to 0, and one
    last entry that only ``d = 0`` reaches.

    The index is ``floor(d / 2**shift) + offset`` with ``offset = size - 1``, so the max itself always
    reads ``exp(0)`` (saturated to the table's largest value): the sum is never 0 and the division is
    defined, whatever the logits' range. Values below the domain clamp onto entry 0. The bins are at least
    the input's LSB wide, so on a coarse grid (uncalibrated logits can have an LSB of ``2**87``) the table
    shrinks to two entries, ``exp(-lsb)`` and ``exp(0)``, but never to none.
    """
    lsb = 2.0**-fd.frac_bits
    shift = math.ceil(math.log2(max(_EXP_DOMAIN / _EXP_ENTRIES, lsb)))
    step = 2.0**shift
    below = math.ceil(_EXP_DOMAIN / step)  # bins below zero; at least one
    starts = (np.arange(below) - below) * step
    centres = np.append(starts + max(step - lsb, 0.0) / 2, 0.0)  # centre of the input values in each bin
    node.attrs["table_shift"], node.attrs["table_offset"] = shift, below
    node.params["table"] = _quantized(np.exp(centres), _EXP_FORMAT)


def _lrn(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """Squares summed exactly in ``acc``, a table of ``(bias + alpha / size * s)^-beta`` indexed by the sum
    ``s``, one product with ``x``, one cast.

    The table covers every sum the input format can produce (``size * max|x|^2``), in power-of-two bins
    of at most ``_TABLE_ENTRIES * 2`` entries; its format holds its largest entry (``bias^-beta`` for the
    usual positive constants) in ``_TABLE_WIDTH`` bits.
    """
    (fx,) = ins
    a = node.attrs
    frac = 2 * fx.frac_bits
    bound = a["size"] * max(-fx.min_mantissa, fx.max_mantissa) ** 2  # exact sum bound on the squares' grid
    acc_width = max(bound.bit_length(), 1)
    acc = Fixed(acc_width, acc_width - frac, False, Rounding.TRN, Overflow.WRAP)
    node.attrs["acc"] = acc
    scale, bias, beta = a["alpha"] / a["size"], a["bias"], a["beta"]

    def power(s: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.power(bias + scale * s, -beta)

    domain = (0.0, bound * acc.lsb)
    corners = power(np.array(domain))
    if not (np.all(np.isfinite(corners)) and np.all(bias + scale * np.array(domain) > 0)):
        raise ValueError(f"(bias + alpha / size * s)^-beta is not finite for s in [0, {domain[1]:g}]")
    top = float(np.max(corners))
    table_fmt = Fixed(_TABLE_WIDTH, _int_bits(top, False), False, Rounding.RND_CONV, Overflow.SAT)
    _table(node, acc, domain, 2 * _TABLE_ENTRIES, power, table_fmt)
    return activation_format(*r, width, headroom)


def _patch_energy(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    """The OOD monitor's energy: a quantized basis and an exact sum (see ood_formats.py)."""
    if "basis" in node.params:
        data = node.params["basis"].data
        node.params["basis"] = _quantized(data, constant_format(data, width))
    return energy_format(node, ins[0])


def _ood_flag(node: Node, ins: list[Fixed], r: Range, width: int, headroom: int) -> Fixed:
    return flag_format(node)


_RULES: dict[str, Rule] = {
    "dense": _linear,
    "conv": _linear,
    "affine": _affine,
    "add": _sum,
    "sub": _sum,
    "quant": _quant,
    "mul": _calibrated,
    "relu": _relu,
    "leaky_relu": _with_constant("alpha", "alpha"),
    "prelu": _with_constant("slope"),
    "clip": _clip,
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "elu": _elu,
    "selu": _elu,
    "hard_sigmoid": _hard_sigmoid,
    "softmax": _softmax,
    "lrn": _lrn,
    "max_pool": _same,
    "avg_pool": _mean,
    "reduce": _mean,
    "reshape": _same,
    "transpose": _same,
    "pad": _same,
    "concat": _union,
    "patch_energy": _patch_energy,
    "ood_flag": _ood_flag,
}
