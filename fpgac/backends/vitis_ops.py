"""One C++ emitter per fixed-point op: the body of a layer function, its types, constants and config.

Each emitter turns a quantized node into calls of the hand-written kernels in
``fpgac/hls_templates/fpgac_kernels.h`` (dense, conv, pools, reduce, softmax) or into one pipelined loop of
``out_t y = expr;`` statements (elementwise ops), following :mod:`fpgac.backends.sim.fixed_ops` exactly:
the same exact expression types, the same single cast, the same tables and index arithmetic. Shapes are
per sample and arrays are flat in logical row-major order; broadcasting and data movement (transpose, pad,
concat, reduce) read through index ROMs computed here, so the C++ needs no shape logic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fpgac.backends.sim.float_ops import divisor_1d
from fpgac.errors import FpgacError
from fpgac.ir import fixed
from fpgac.ir.graph import Node
from fpgac.ir.types import Fixed, Overflow

# Params are written as decimal double literals, which are exact only while a mantissa fits a double.
_MAX_LITERAL_BITS = 53
PARAM_KEYS = ("weight", "bias", "scale", "shift", "slope", "alpha", "beta", "gamma", "table", "recip")
# Every name a layer may derive from its identifier (claimed up front, see cnames.CNames).
LAYER_SUFFIXES = (
    "_out",
    "_out_t",
    "_acc_t",
    "_diff_t",
    "_clamp_t",
    "_bound_t",
    "_zero_t",
    "_config",
    "_count_h",
    "_count_w",
    "_cells",
    *(f"_idx{k}" for k in range(8)),
    *(f"_{k}" for k in PARAM_KEYS),
    *(f"_{k}_t" for k in PARAM_KEYS),
)


class VitisError(FpgacError):
    """A quantized graph the Vitis backend cannot express."""


@dataclass(frozen=True)
class Array:
    """A constant array (weights, a table, an index ROM) written into the layer's weights header."""

    ctype: str
    name: str
    values: list[str]
    comment: str


@dataclass
class LayerCode:
    """What one layer contributes to the project."""

    typedefs: list[tuple[str, str]] = field(default_factory=list)
    arrays: list[Array] = field(default_factory=list)
    config: str = ""
    body: str = ""


@dataclass(frozen=True)
class Ctx:
    """A node and the C names around it."""

    node: Node
    name: str
    ins: list[str]
    in_types: list[str]
    in_fmts: list[Fixed]
    out: str
    out_type: str
    out_fmt: Fixed

    @property
    def size(self) -> int:
        return self.node.output.type.size

    def where(self) -> str:
        return f"node {self.node.name!r} ({self.node.op})"


def literal(value: float) -> str:
    """A C++ double literal that parses back to exactly ``value`` (Python's repr round-trips)."""
    value = float(value)
    if not math.isfinite(value):
        raise VitisError(f"constant {value} has no fixed-point value")
    text = repr(value)
    return text if any(c in text for c in ".e") else text + ".0"


def _param(ctx: Ctx, code: LayerCode, key: str) -> tuple[str, tuple[int, ...]]:
    """Declare param ``key`` (typedef + array); returns the array name and the param's shape."""
    param = ctx.node.params[key]
    fmt = param.format
    if not isinstance(fmt, Fixed):
        raise VitisError(f"{ctx.where()}: param {key!r} is not fixed point; quantize the graph first")
    if fmt.width > _MAX_LITERAL_BITS:
        raise VitisError(f"{ctx.where()}: param {key!r} is {fmt.width} bits wide (at most 53 supported)")
    data = np.asarray(param.data, dtype=np.float64)
    # Values as the hardware stores them: already on fmt's grid after quantize; quantizing again is a no-op
    # that guards against a hand-made graph whose params are not.
    values = fixed.to_float(np.asarray(fixed.quantize(data.reshape(-1), fmt)), fmt)
    type_name, array = f"{ctx.name}_{key}_t", f"{ctx.name}_{key}"
    code.typedefs.append((type_name, fmt.ap_type()))
    code.arrays.append(Array(type_name, array, [literal(v) for v in values], f"{key} {list(data.shape)}"))
    return array, tuple(data.shape)


def _index(code: LayerCode, ctx: Ctx, k: int, idx: np.ndarray, var: str = "i") -> str:
    """How element ``var`` of a loop reads through index map ``idx``: identity, constant, or a ROM."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if np.array_equal(idx, np.arange(idx.size)):
        return var
    if np.all(idx == idx[0]):
        return str(int(idx[0]))
    name = f"{ctx.name}_idx{k}"
    code.arrays.append(Array("int", name, [str(int(v)) for v in idx], "index map"))
    return f"{name}[{var}]"


def _broadcast_map(shape: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
    """For each output element, the flat index of the element of ``shape`` that broadcasts to it."""
    size = math.prod(shape)
    return np.broadcast_to(np.arange(size).reshape(shape), out).reshape(-1)


def _loop(size: int, body: str) -> str:
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return (
        f"  FPGAC_LOOP(elementwise)\n  for (int i = 0; i < {size}; i++) {{\n"
        f"    FPGAC_PRAGMA(HLS PIPELINE II=1)\n{lines}\n  }}"
    )


# ------------------------------------------------------------------------------------------------------
# kernels from fpgac_kernels.h


def _config(ctx: Ctx, values: dict[str, int], types: dict[str, str] | None = None) -> str:
    lines = [f"struct {ctx.name}_config {{"]
    lines += [f"  static const int {k} = {int(v)};" for k, v in values.items()]
    lines += [f"  typedef {t} {k};" for k, t in (types or {}).items()]
    return "\n".join(lines) + "\n};"


def _acc(ctx: Ctx, code: LayerCode) -> dict[str, str]:
    acc = ctx.node.attrs.get("acc")
    if not isinstance(acc, Fixed) or acc.overflow is not Overflow.WRAP:
        raise VitisError(f"{ctx.where()}: needs a WRAP accumulator format (attrs['acc']), got {acc}")
    code.typedefs.append((f"{ctx.name}_acc_t", acc.ap_type()))
    return {"acc_t": f"{ctx.name}_acc_t"}


def _bias(ctx: Ctx, code: LayerCode) -> tuple[str, int]:
    if "bias" in ctx.node.params:
        name, shape = _param(ctx, code, "bias")
        return name, math.prod(shape)
    code.typedefs.append((f"{ctx.name}_bias_t", "ap_fixed<2,2>"))
    code.arrays.append(Array(f"{ctx.name}_bias_t", f"{ctx.name}_bias", ["0.0"], "no bias (never read)"))
    return f"{ctx.name}_bias", 0


def dense(ctx: Ctx, code: LayerCode) -> None:
    compressed = ctx.node.params["weight"].encoding is not None
    if compressed:
        weight, (n_out, n_in) = "", ctx.node.params["weight"].shape
    else:
        weight, (n_out, n_in) = _param(ctx, code, "weight")
    bias, bias_size = _bias(ctx, code)
    rows = ctx.node.inputs[0].type.size // n_in
    values = {
        "ROWS": rows,
        "IN": n_in,
        "OUT": n_out,
        "HAS_BIAS": int(bias_size > 0),
        "BIAS_SIZE": max(bias_size, 1),
    }
    code.config = _config(ctx, values, _acc(ctx, code))
    code.body = f"  fpgac::dense<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {weight}, {bias});"
    if compressed:  # pruned / shared / Huffman-coded storage: fpgac/backends/vitis_weights.py
        from fpgac.backends.vitis_weights import dense_compressed

        code.body = ""
        dense_compressed(ctx, code, values, bias)


def _spatial_2d(x_shape: tuple[int, ...], out_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """(H, W, OH, OW) of a 1-d or 2-d window op; 1-d maps onto H = OH = 1."""
    if len(x_shape) == 2:
        return 1, x_shape[1], 1, out_shape[1]
    if len(x_shape) == 3:
        return x_shape[1], x_shape[2], out_shape[1], out_shape[2]
    raise VitisError(f"{where}: only 1-d and 2-d windows are supported, input is {x_shape}")


def _window(attrs: dict, key: str, default: int, nd: int) -> tuple[int, int]:
    """(H, W) components of a per-axis attribute; 1-d ops get the neutral value on H."""
    values = attrs.get(key) or [default] * nd
    return (default, values[0]) if nd == 1 else (values[0], values[1])


def conv(ctx: Ctx, code: LayerCode) -> None:
    compressed = ctx.node.params["weight"].encoding is not None
    if compressed:
        weight, w_shape = "", ctx.node.params["weight"].shape
    else:
        weight, w_shape = _param(ctx, code, "weight")
    bias, bias_size = _bias(ctx, code)
    a = ctx.node.attrs
    x_shape, out_shape = ctx.node.inputs[0].shape, ctx.node.output.shape
    h, w, oh, ow = _spatial_2d(x_shape, out_shape, ctx.where())
    nd = len(x_shape) - 1
    kernel = w_shape[2:]
    kh, kw = (1, kernel[0]) if nd == 1 else kernel
    sh, sw = _window(a, "strides", 1, nd)
    dh, dw = _window(a, "dilations", 1, nd)
    ph, pw = (0, a["pads"][0]) if nd == 1 else (a["pads"][0], a["pads"][1])
    values = {
        "C": x_shape[0], "H": h, "W": w, "OC": w_shape[0], "CG": w_shape[1], "G": a["groups"],
        "KH": kh, "KW": kw, "SH": sh, "SW": sw, "PH": ph, "PW": pw, "DH": dh, "DW": dw, "OH": oh, "OW": ow,
        "HAS_BIAS": int(bias_size > 0), "BIAS_SIZE": max(bias_size, 1),
    }  # fmt: skip
    code.config = _config(ctx, values, _acc(ctx, code))
    code.body = f"  fpgac::conv2d<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {weight}, {bias});"
    if compressed:  # pruned / shared / Huffman-coded storage: fpgac/backends/vitis_weights.py
        from fpgac.backends.vitis_weights import conv_compressed

        code.body = ""
        conv_compressed(ctx, code, values, bias)


def _pool_values(ctx: Ctx, dilated: bool) -> dict[str, int]:
    a = ctx.node.attrs
    x_shape, out_shape = ctx.node.inputs[0].shape, ctx.node.output.shape
    h, w, oh, ow = _spatial_2d(x_shape, out_shape, ctx.where())
    nd = len(x_shape) - 1
    kh, kw = _window(a, "kernel", 1, nd)
    sh, sw = _window(a, "strides", 1, nd)
    ph, pw = (0, a["pads"][0]) if nd == 1 else (a["pads"][0], a["pads"][1])
    values = {"C": x_shape[0], "H": h, "W": w, "KH": kh, "KW": kw, "SH": sh, "SW": sw, "PH": ph, "PW": pw}
    if dilated:
        values["DH"], values["DW"] = _window(a, "dilations", 1, nd)
    return {**values, "OH": oh, "OW": ow}


def max_pool(ctx: Ctx, code: LayerCode) -> None:
    code.config = _config(ctx, _pool_values(ctx, True))
    code.body = f"  fpgac::max_pool2d<{ctx.name}_config>({ctx.ins[0]}, {ctx.out});"


def avg_pool(ctx: Ctx, code: LayerCode) -> None:
    a = ctx.node.attrs
    values = _pool_values(ctx, False)
    recip, (recip_size,) = _param(ctx, code, "recip")
    x_shape, nd = ctx.node.inputs[0].shape, len(ctx.node.inputs[0].shape) - 1
    counts = []
    for i in range(nd):
        k, s, pb, pe = a["kernel"][i], a["strides"][i], a["pads"][i], a["pads"][nd + i]
        out = ctx.node.output.shape[1 + i]
        counts.append(divisor_1d(x_shape[1 + i], k, s, pb, pe, out, a["count_include_pad"]))
    count_h, count_w = ([np.ones(1, np.int64)], counts) if nd == 1 else ([counts[0]], [counts[1]])
    for suffix, c in (("count_h", count_h[0]), ("count_w", count_w[0])):
        code.arrays.append(Array("int", f"{ctx.name}_{suffix}", [str(int(v)) for v in c], "cells per window"))
    if int(np.max(count_h[0]) * np.max(count_w[0])) >= recip_size:
        raise VitisError(f"{ctx.where()}: reciprocal table of {recip_size} entries is too short")
    code.config = _config(ctx, {**values, "RECIP_SIZE": recip_size}, _acc(ctx, code))
    code.body = (
        f"  fpgac::avg_pool2d<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {recip}, "
        f"{ctx.name}_count_h, {ctx.name}_count_w);"
    )


def reduce(ctx: Ctx, code: LayerCode) -> None:
    a = ctx.node.attrs
    shape = ctx.node.inputs[0].shape
    axes = sorted(a["axes"])
    r = math.prod(shape[ax] for ax in axes)
    idx = np.moveaxis(np.arange(math.prod(shape)).reshape(shape), axes, range(-len(axes), 0)).reshape(-1)
    code.arrays.append(
        Array("int", f"{ctx.name}_cells", [str(int(v)) for v in idx], "input cells per output")
    )
    values = {"IN_SIZE": math.prod(shape), "OUT_SIZE": ctx.size, "R": r}
    if a["mode"] == "max":
        code.config = _config(ctx, values)
        code.body = f"  fpgac::reduce_max<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {ctx.name}_cells);"
        return
    recip, _ = _param(ctx, code, "recip")
    code.config = _config(ctx, values, _acc(ctx, code))
    code.body = (
        f"  fpgac::reduce_mean<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {recip}, {ctx.name}_cells);"
    )


def _table_args(ctx: Ctx, code: LayerCode, fmt: Fixed) -> tuple[str, str]:
    """The table array and the ``table_index<S, OFFSET, SIZE>`` template arguments for inputs of ``fmt``."""
    table, (size,) = _param(ctx, code, "table")
    a = ctx.node.attrs
    if fmt.width > 62:
        raise VitisError(f"{ctx.where()}: table input of {fmt.width} bits (at most 62 supported)")
    return table, f"{fmt.frac_bits + a['table_shift']}, {a['table_offset']}, {size}"


def softmax(ctx: Ctx, code: LayerCode) -> None:
    shape, axis = ctx.node.inputs[0].shape, ctx.node.attrs["axis"]
    diff = fixed.sub_format(ctx.in_fmts[0], ctx.in_fmts[0])
    table, args = _table_args(ctx, code, diff)
    s, offset, size = (int(v) for v in args.split(", "))
    code.typedefs.append((f"{ctx.name}_diff_t", diff.ap_type()))
    types = {**_acc(ctx, code), "diff_t": f"{ctx.name}_diff_t"}
    values = {
        "OUTER": math.prod(shape[:axis]), "N": shape[axis], "INNER": math.prod(shape[axis + 1 :]),
        "SHIFT": s, "OFFSET": offset, "TABLE_SIZE": size, "F": ctx.out_fmt.frac_bits,
    }  # fmt: skip
    if ctx.out_fmt.frac_bits < 0 or ctx.out_fmt.frac_bits > 40:
        raise VitisError(f"{ctx.where()}: softmax output of {ctx.out_fmt} is not supported")
    code.config = _config(ctx, values, types)
    code.body = f"  fpgac::softmax<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {table});"


# ------------------------------------------------------------------------------------------------------
# elementwise ops: one pipelined loop of `out_t y = expr;`


def _value_reads(ctx: Ctx, code: LayerCode) -> list[str]:
    out = ctx.node.output.shape
    return [
        f"{name}[{_index(code, ctx, k, _broadcast_map(v.shape, out))}]"
        for k, (name, v) in enumerate(zip(ctx.ins, ctx.node.inputs, strict=True))
    ]


def _param_read(ctx: Ctx, code: LayerCode, key: str, k: int) -> str:
    name, shape = _param(ctx, code, key)
    return f"{name}[{_index(code, ctx, k, _broadcast_map(shape, ctx.node.output.shape))}]"


def affine(ctx: Ctx, code: LayerCode) -> None:
    scale, shift = _param_read(ctx, code, "scale", 1), _param_read(ctx, code, "shift", 2)
    code.body = _loop(ctx.size, f"{ctx.out}[i] = {ctx.ins[0]}[i] * {scale} + {shift};")


def _binary(symbol: str) -> Callable[[Ctx, LayerCode], None]:
    def emit(ctx: Ctx, code: LayerCode) -> None:
        reads = _value_reads(ctx, code)
        code.body = _loop(ctx.size, f"{ctx.out}[i] = {f' {symbol} '.join(reads)};")

    return emit


def relu(ctx: Ctx, code: LayerCode) -> None:
    t = ctx.in_types[0]
    code.body = _loop(ctx.size, f"{t} v = {ctx.ins[0]}[i];\nif (v < 0) v = 0;\n{ctx.out}[i] = v;")


def _negative_side(key: str) -> Callable[[Ctx, LayerCode], None]:
    def emit(ctx: Ctx, code: LayerCode) -> None:
        slope = _param_read(ctx, code, key, 1)
        t = ctx.in_types[0]
        body = (
            f"const {t} v = {ctx.ins[0]}[i];\nif (v < 0) {ctx.out}[i] = v * {slope};\nelse {ctx.out}[i] = v;"
        )
        code.body = _loop(ctx.size, body)

    return emit


def clip(ctx: Ctx, code: LayerCode) -> None:
    """Clamp on exact values in a type holding the input and both bounds, then one cast (fixed_ops.clip)."""
    fx, out = ctx.in_fmts[0], ctx.out_fmt
    frac = max(fx.frac_bits, out.frac_bits)
    int_bits = max(fx.int_bits, out.int_bits) + 1
    code.typedefs.append((f"{ctx.name}_clamp_t", Fixed(int_bits + frac, int_bits, True).ap_type()))
    nearest = Fixed(out.width, out.int_bits, out.signed, out.rounding, Overflow.SAT)
    code.typedefs.append((f"{ctx.name}_bound_t", nearest.ap_type()))
    lines = [f"{ctx.name}_clamp_t v = {ctx.ins[0]}[i];"]
    for key, op in (("min", "<"), ("max", ">")):
        bound = ctx.node.attrs[key]
        if bound is not None:
            lines.append(
                f"if (v {op} {ctx.name}_bound_t({literal(bound)})) v = {ctx.name}_bound_t({literal(bound)});"
            )
    lines.append(f"{ctx.out}[i] = v;")
    code.body = _loop(ctx.size, "\n".join(lines))


def hard_sigmoid(ctx: Ctx, code: LayerCode) -> None:
    """``t = x * alpha + beta`` exact, clamped to [0, 1] in a type that holds t and 1, then one cast."""
    alpha, beta = _param_read(ctx, code, "alpha", 1), _param_read(ctx, code, "beta", 2)
    fa, fb = ctx.node.params["alpha"].format, ctx.node.params["beta"].format
    assert isinstance(fa, Fixed) and isinstance(fb, Fixed)
    ft = fixed.add_format(fixed.mul_format(ctx.in_fmts[0], fa), fb)
    int_bits = max(ft.int_bits, 2) + 1
    clamp = Fixed(int_bits + max(ft.frac_bits, 0), int_bits, True)
    code.typedefs.append((f"{ctx.name}_clamp_t", clamp.ap_type()))
    body = (
        f"{ctx.name}_clamp_t t = {ctx.ins[0]}[i] * {alpha} + {beta};\n"
        f"if (t < 0) t = 0;\nif (t > 1) t = 1;\n{ctx.out}[i] = t;"
    )
    code.body = _loop(ctx.size, body)


def table(ctx: Ctx, code: LayerCode) -> None:
    name, args = _table_args(ctx, code, ctx.in_fmts[0])
    code.body = _loop(ctx.size, f"{ctx.out}[i] = {name}[fpgac::table_index<{args}>({ctx.ins[0]}[i])];")


def elu(ctx: Ctx, code: LayerCode) -> None:
    """``x >= 0 ? out_t(x) : out_t(table[x])``; selu multiplies the positive side by gamma."""
    name, args = _table_args(ctx, code, ctx.in_fmts[0])
    positive = "v"
    if "gamma" in ctx.node.params:
        positive = f"v * {_param_read(ctx, code, 'gamma', 1)}"
    t = ctx.in_types[0]
    body = (
        f"const {t} v = {ctx.ins[0]}[i];\n"
        f"if (v < 0) {ctx.out}[i] = {name}[fpgac::table_index<{args}>(v)];\nelse {ctx.out}[i] = {positive};"
    )
    code.body = _loop(ctx.size, body)


# ------------------------------------------------------------------------------------------------------
# data movement: copies with one cast, through index maps


def reshape(ctx: Ctx, code: LayerCode) -> None:
    code.body = _loop(ctx.size, f"{ctx.out}[i] = {ctx.ins[0]}[i];")


def transpose(ctx: Ctx, code: LayerCode) -> None:
    shape = ctx.node.inputs[0].shape
    idx = np.arange(math.prod(shape)).reshape(shape).transpose(ctx.node.attrs["perm"])
    code.body = _loop(ctx.size, f"{ctx.out}[i] = {ctx.ins[0]}[{_index(code, ctx, 0, idx)}];")


def concat(ctx: Ctx, code: LayerCode) -> None:
    axis = ctx.node.attrs["axis"]
    positions = np.arange(ctx.size).reshape(ctx.node.output.shape)
    bounds = np.cumsum([v.shape[axis] for v in ctx.node.inputs])[:-1]
    loops = []
    for k, (name, part) in enumerate(zip(ctx.ins, np.split(positions, bounds, axis=axis), strict=True)):
        dst = _index(code, ctx, k, part)
        loops.append(
            _loop(part.size, f"{ctx.out}[{dst}] = {name}[i];").replace("(elementwise)", f"(part{k})")
        )
    code.body = "\n".join(loops)


def pad(ctx: Ctx, code: LayerCode) -> None:
    a = ctx.node.attrs
    shape = ctx.node.inputs[0].shape
    rank = len(shape)
    widths = [(a["pads"][i], a["pads"][rank + i]) for i in range(rank)]
    src = np.arange(math.prod(shape)).reshape(shape)
    if a["mode"] == "constant":
        idx = np.pad(src, widths, mode="constant", constant_values=-1)
    else:
        idx = np.pad(src, widths, mode=a["mode"])
    read = _index(code, ctx, 0, idx)
    if a["mode"] == "constant" and (idx < 0).any():
        body = (
            f"const int src = {read};\n"
            f"if (src < 0) {ctx.out}[i] = {ctx.out_type}({literal(a['value'])});\n"
            f"else {ctx.out}[i] = {ctx.ins[0]}[src];"
        )
    else:
        body = f"{ctx.out}[i] = {ctx.ins[0]}[{read}];"
    code.body = _loop(ctx.size, body)


EMITTERS: dict[str, Callable[[Ctx, LayerCode], None]] = {
    "dense": dense,
    "conv": conv,
    "max_pool": max_pool,
    "avg_pool": avg_pool,
    "reduce": reduce,
    "affine": affine,
    "add": _binary("+"),
    "sub": _binary("-"),
    "mul": _binary("*"),
    "relu": relu,
    "leaky_relu": _negative_side("alpha"),
    "prelu": _negative_side("slope"),
    "clip": clip,
    "sigmoid": table,
    "hard_sigmoid": hard_sigmoid,
    "tanh": table,
    "elu": elu,
    "selu": elu,
    "softmax": softmax,
    "reshape": reshape,
    "transpose": transpose,
    "concat": concat,
    "pad": pad,
}


def emit_layer(ctx: Ctx) -> LayerCode:
    """The code of one layer; raises :class:`VitisError` naming the node when it cannot be expressed."""
    fn = EMITTERS.get(ctx.node.op)
    if fn is None:
        raise VitisError(f"{ctx.where()}: the Vitis backend has no kernel for this op")
    code = LayerCode()
    try:
        fn(ctx, code)
    except VitisError as exc:
        raise VitisError(f"{exc}; build with --backend none to skip the HLS project") from None
    return code
