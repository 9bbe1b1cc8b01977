"""One C++ emitter per fixed-point op: the body of a layer function, its types, constants and config.

Each emitter turns a quantized node into calls of the hand-written kernels in
``fpgac/hls_templates/fpgac_kernels.h`` (dense, conv, pools, reduce, softmax, lrn) or into one pipelined
loop of ``out_t y = expr;`` statements (elementwise ops), following :mod:`fpgac.interp.fixed_kernels` exactly:
the same exact expression types, the same single cast, the same tables and index arithmetic. Shapes are
per sample and arrays are flat in logical row-major order; broadcasting and data movement (transpose, pad,
concat, reduce) read through index ROMs computed here, so the C++ needs no shape logic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from fpgac.analysis.estimate import direct_lanes, direct_row_memories, offchip_lanes, pixel_reads
from fpgac.analysis.lanes import pixels_channels, stream_mode
from fpgac.analysis.pool_scan import PoolScan
from fpgac.backends.vitis.ccode import (
    Array,
    Ctx,
    ExternalArray,
    LayerCode,
    VitisError,
    c_int_array,
    c_int_type,
    config,
    literal,
    window_stream,
)
from fpgac.backends.vitis.levels import level_biases, ranked
from fpgac.backends.vitis.weights import conv_compressed, dense_compressed
from fpgac.interp.float_kernels import divisor_1d
from fpgac.ir import fixed
from fpgac.ir.bipolar import is_xnor_layer
from fpgac.ir.levels import is_levelled
from fpgac.ir.quant import ceil_offset, fixed_plan, odd_offset
from fpgac.ir.shapes import is_global_pool, patch_grid
from fpgac.ir.sign_weights import single_magnitude
from fpgac.ir.types import Fixed, Overflow

PARAM_KEYS = (
    "weight", "bias", "scale", "shift", "slope", "alpha", "beta", "gamma", "table", "recip", "basis", "tau",
)  # fmt: skip
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
    "_pixel",
    "_count_h",
    "_count_w",
    "_cells",
    "_ranks",
    "_weight_uram",
    "_uram_ready",
    *(f"_idx{k}" for k in range(8)),
    *(f"_g{k}_t" for k in range(16)),
    *(f"_off{k}_t" for k in range(16)),
    *(f"_{k}" for k in PARAM_KEYS),
    *(f"_{k}_t" for k in PARAM_KEYS),
)


def _param(
    ctx: Ctx, code: LayerCode, key: str, values: np.ndarray | None = None
) -> tuple[str, tuple[int, ...]]:
    """Declare param ``key``: its ap type and an array of its raw bits; returns the name and the shape.

    Raw bits rather than ``ap_fixed`` values: an integer array is initialized at compile time, while each
    element of an ``ap_fixed`` array is a constructor call (g++ needs minutes for a million weights);
    kernels read elements through ``fpgac::from_bits<type>``, which is wiring in hardware. ``values``
    replaces the param's data (same format: a ranked layer's bias per level).
    """
    param = ctx.node.params[key]
    fmt = param.format
    if not isinstance(fmt, Fixed):
        raise VitisError(f"{ctx.where()}: param {key!r} is not fixed point; quantize the graph first")
    data = np.asarray(param.data if values is None else values, dtype=np.float64)
    type_name, array, ctype = f"{ctx.name}_{key}_t", f"{ctx.name}_{key}", c_int_type(fmt)
    # Already on fmt's grid after quantize; quantizing again is a no-op that guards hand-made graphs. A
    # chunk at a time, kept in the C type's width: VGG-19's fc6 as int64 mantissas was its build's peak.
    flat, step = data.reshape(-1), fixed.QUANTIZE_CHUNK
    chunks = range(0, max(flat.size, 1), step)
    mantissas = np.concatenate([c_int_array(fixed.quantize(flat[i : i + step], fmt), ctype) for i in chunks])
    code.typedefs.append((type_name, fmt.ap_type()))
    comment = f"{key} {list(data.shape)}: raw bits of {type_name} = {fmt.ap_type()}"
    code.arrays.append(Array(ctype, array, mantissas, comment))
    return array, tuple(data.shape)


def _read(ctx: Ctx, key: str, index: str) -> str:
    """Element ``index`` of param ``key`` as its fixed-point value."""
    return f"fpgac::from_bits<{ctx.name}_{key}_t>({ctx.name}_{key}[{index}])"


def _param_types(ctx: Ctx, **types: str) -> dict[str, str]:
    """Config typedefs naming the params' ap types for a kernel (``weight_t = <layer>_weight_t``, ...)."""
    return {alias: f"{ctx.name}_{key}_t" for alias, key in types.items()}


def _index(code: LayerCode, ctx: Ctx, k: int, idx: np.ndarray, var: str = "i") -> str:
    """How element ``var`` of a loop reads through index map ``idx``: identity, constant, or a ROM.

    In a beat loop, a map that depends on the channel only (a per-channel param) is read by ``c``.
    """
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if np.array_equal(idx, np.arange(idx.size)):
        return var
    if np.all(idx == idx[0]):
        return str(int(idx[0]))
    if ctx.beats is not None and var == "i":
        per_channel = idx.reshape(ctx.beats[1], ctx.beats[0])
        if np.all(per_channel == per_channel[:, :1]):
            return _index(code, ctx, k, per_channel[:, 0], "c")
    name = f"{ctx.name}_idx{k}"
    code.arrays.append(Array("int", name, idx, "index map"))
    return f"{name}[{var}]"


def _broadcast_map(shape: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
    """For each output element, the flat index of the element of ``shape`` that broadcasts to it."""
    size = math.prod(shape)
    return np.broadcast_to(np.arange(size).reshape(shape), out).reshape(-1)


def _indent(body: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in body.strip().splitlines())


def _loop(ctx: Ctx, body: str, size: int | None = None, label: str = "elementwise") -> str:
    """``body`` for every element: one pipelined loop over the array, or (io_stream) over the beats.

    In a beat loop each input beat is read once, ``body`` runs for every channel ``c`` of the beat (with
    ``i``, the element's logical index, for params), and the output beat is written once.
    """
    if ctx.beats is None:
        n = ctx.size if size is None else size
        # io_parallel: every element at once on partitioned arrays; io_stream (a layer that gathered its
        # input): one element per cycle.
        pragma = "HLS PIPELINE II=1" if ctx.stream else "HLS UNROLL"
        return (
            f"  FPGAC_LOOP({label})\n  for (int i = 0; i < {n}; i++) {{\n"
            f"    FPGAC_PRAGMA({pragma})\n{_indent(body, 4)}\n  }}"
        )
    if ctx.groups > 1:
        return _folded_loop(ctx, body)
    beats, channels = ctx.beats
    reads = "".join(
        f"    const fpgac::pixel<{t}, {channels}> x{k}_px = x{k}.read();\n"
        for k, t in enumerate(ctx.in_types)
    )
    logical = f"      const int i = c * {beats} + p;\n" if re.search(r"\bi\b", body) else ""
    return (
        f"  FPGAC_LOOP(beats)\n  for (int p = 0; p < {beats}; p++) {{\n"
        f"    FPGAC_PRAGMA(HLS PIPELINE II=1)\n{reads}"
        f"    fpgac::pixel<{ctx.out_type}, {channels}> y_px;\n"
        f"    FPGAC_LOOP(channels)\n    for (int c = 0; c < {channels}; c++) {{\n"
        f"{logical}{_indent(body, 6)}\n    }}\n    y.write(y_px);\n  }}"
    )


def _folded_loop(ctx: Ctx, body: str) -> str:
    """The beat loop of a channel-folded stream: P pixels of G beats of L = C / G channels, one beat a
    cycle on L units; ``lane`` is the element's place in the beat, ``c`` its channel, ``i`` its logical
    index (declared when ``body`` reads them)."""
    assert ctx.beats is not None
    pixels, channels = ctx.beats
    groups = ctx.groups
    width = channels // groups
    reads = "".join(
        f"    const fpgac::pixel<{t}, {width}> x{k}_px = x{k}.read();\n" for k, t in enumerate(ctx.in_types)
    )
    logical = re.search(r"\bi\b", body) is not None
    by_channel = logical or re.search(r"\bc\b", body) is not None
    channel = f"      const int c = (b % {groups}) * {width} + lane;\n" if by_channel else ""
    index = f"      const int i = c * {pixels} + b / {groups};\n" if logical else ""
    return (
        f"  FPGAC_LOOP(beats)\n  for (int b = 0; b < {pixels * groups}; b++) {{\n"
        f"    FPGAC_PRAGMA(HLS PIPELINE II=1)\n{reads}"
        f"    fpgac::pixel<{ctx.out_type}, {width}> y_px;\n"
        f"    FPGAC_LOOP(lanes)\n    for (int lane = 0; lane < {width}; lane++) {{\n"
        f"{channel}{index}{_indent(body, 6)}\n    }}\n    y.write(y_px);\n  }}"
    )


# ------------------------------------------------------------------------------------------------------
# kernels from fpgac_kernels.h


def _acc(ctx: Ctx, code: LayerCode) -> dict[str, str]:
    acc = ctx.node.attrs.get("acc")
    if not isinstance(acc, Fixed) or acc.overflow is not Overflow.WRAP:
        raise VitisError(f"{ctx.where()}: needs a WRAP accumulator format (attrs['acc']), got {acc}")
    code.typedefs.append((f"{ctx.name}_acc_t", acc.ap_type()))
    return {"acc_t": f"{ctx.name}_acc_t"}


def _bias(ctx: Ctx, code: LayerCode) -> tuple[str, int]:
    if "bias" in ctx.node.params:
        name, shape = _param(ctx, code, "bias", level_biases(ctx.node) if is_levelled(ctx.node) else None)
        return name, math.prod(shape)
    code.typedefs.append((f"{ctx.name}_bias_t", "ap_fixed<2,2>"))
    code.arrays.append(Array("int8_t", f"{ctx.name}_bias", np.zeros(1, np.int8), "no bias (never read)"))
    return f"{ctx.name}_bias", 0


def _weight_shape(ctx: Ctx, code: LayerCode) -> tuple[str, tuple[int, ...]]:
    """The weight array (declared here unless the weight is compressed: weights.py stores those; an
    off-chip weight is the name of its memory port) and the weight's shape."""
    param = ctx.node.params["weight"]
    if ctx.offchip:
        return _external_weight(ctx, code, channels_last=bool(_direct_lanes(ctx))), param.shape
    if ctx.uram:
        _external_weight(ctx, code, "preloaded into URAM at start; ")
        return f"{ctx.name}_weight_uram", param.shape
    if param.encoding is not None:
        return "", param.shape
    return (_sign_bits(ctx, code), param.shape) if _xnor(ctx) else _param(ctx, code, "weight")


def _xnor(ctx: Ctx) -> bool:
    """Whether the layer's sums are XNOR-popcounts (:func:`fpgac.ir.bipolar.is_xnor_layer`); off-chip
    and URAM-preloaded weights keep their kernels, which read stored words."""
    return not ctx.offchip and not ctx.uram and is_xnor_layer(ctx.node)


def _sign_bits(ctx: Ctx, code: LayerCode) -> str:
    """An XNOR layer's weights as their sign bits (``bool``, 1 for ``+s``: one bit each, which HLS packs
    into the words its storage reads), and ``weight_t``, whose LSB is their magnitude."""
    param = ctx.node.params["weight"]
    fmt = param.format
    assert isinstance(fmt, Fixed)  # single_magnitude: the 2-bit format
    type_name, array = f"{ctx.name}_weight_t", f"{ctx.name}_weight"
    code.typedefs.append((type_name, fmt.ap_type()))
    bits = (np.asarray(param.data).reshape(-1) > 0).astype(np.uint8)
    comment = f"weight {list(param.shape)}: sign bits (1: +s, 0: -s); s is the LSB of {type_name}"
    code.arrays.append(Array("bool", array, bits, comment))
    return array


def _count_bits(ctx: Ctx, fan_in: int) -> dict[str, int]:
    """``COUNT_BITS`` of an XNOR layer: its popcounts' width, unsigned (none for other layers)."""
    return {"COUNT_BITS": fan_in.bit_length()} if _xnor(ctx) else {}


def _external_weight(ctx: Ctx, code: LayerCode, how: str = "", channels_last: bool = False) -> str:
    """An off-chip weight: its type, and its raw words in row-major order (``[OUT][...]``: the order the
    off-chip kernels read them, and the on-chip array's; ``channels_last``: a conv's ``[OC][KH][KW][C/G]``,
    the order conv_offchip_stream reads its line buffer in) for the weight image; returns the name of its
    memory port (``how`` starts its comment)."""
    param = ctx.node.params["weight"]
    fmt = param.format
    if param.encoding is not None:
        raise VitisError(
            f"{ctx.where()}: compressed (pruned or shared) weights stay on chip; off-chip storage "
            "holds dense weights only, so keep this layer on chip or build without compression"
        )
    if not isinstance(fmt, Fixed):
        raise VitisError(f"{ctx.where()}: param 'weight' is not fixed point; quantize the graph first")
    data = np.asarray(param.data, dtype=np.float64)
    data = (np.moveaxis(data, 1, -1) if channels_last else data).reshape(-1)
    type_name, port, ctype = f"{ctx.name}_weight_t", f"{ctx.name}_weight", c_int_type(fmt)
    code.typedefs.append((type_name, fmt.ap_type()))
    comment = f"{how}weight {list(param.shape)}: raw bits of {type_name} = {fmt.ap_type()}"
    code.external = ExternalArray(ctype, port, np.asarray(fixed.quantize(data, fmt)), comment)
    return port


def _preload(ctx: Ctx, code: LayerCode) -> str:
    """A URAM layer (``ctx.uram``): declares its weight memory and ready flag after its config (file scope:
    the pixel function reads them) and returns the statement that fills it on the first call (none for
    other layers)."""
    if not ctx.uram or code.external is None:
        return ""
    port, size, name = code.external.name, code.external.words.size, ctx.name
    code.config += (
        f"\nstatic {code.external.ctype} {name}_weight_uram[{size}];  // preloaded from {port}"
        f"\nstatic bool {name}_uram_ready = false;"
    )
    return f"  fpgac::preload<{size}>({port}, {name}_weight_uram, {name}_uram_ready);\n"


def _lanes(ctx: Ctx, fan_in: int) -> dict[str, int]:
    """``LANES`` of an off-chip layer: its products a cycle, as the estimate counts them (none on chip)."""
    fmt = ctx.node.params["weight"].format
    assert isinstance(fmt, Fixed)  # _external_weight refused a float weight first
    if not ctx.offchip:
        return {}
    return {"LANES": _direct_lanes(ctx) or offchip_lanes(fmt.width, fan_in, ctx.reuse)}


def _direct_lanes(ctx: Ctx) -> int:
    """Lanes of an off-chip stream conv that reads its line buffer (conv_offchip_stream), as the estimate
    counts them; 0 for any other layer."""
    param = ctx.node.params["weight"]
    if not (ctx.offchip and ctx.stream and ctx.node.op == "conv" and isinstance(param.format, Fixed)):
        return 0
    shape = param.shape
    return direct_lanes(param.format.width, shape[1], math.prod(shape[2:]), ctx.reuse)


def _weight_types(ctx: Ctx, code: LayerCode) -> dict[str, str]:
    return {**_acc(ctx, code), **_param_types(ctx, weight_t="weight", bias_t="bias")}


def dense(ctx: Ctx, code: LayerCode) -> None:
    weight, (n_out, n_in) = _weight_shape(ctx, code)
    bias, bias_size = _bias(ctx, code)
    rows = ctx.node.inputs[0].type.size // n_in
    values = {
        "ROWS": rows,
        "IN": n_in,
        "OUT": n_out,
        "HAS_BIAS": int(bias_size > 0),
        "BIAS_SIZE": max(bias_size, 1),
    }
    types = _weight_types(ctx, code)
    if is_levelled(ctx.node):  # rank levels: fpgac/backends/vitis/levels.py
        ranked(ctx, code, values, types)
        return
    if not weight:  # pruned / shared / Huffman-coded storage: fpgac/backends/vitis/weights.py
        dense_compressed(ctx, code, values, types, bias)
        return
    code.config = config(ctx, {**values, **_lanes(ctx, n_in), **_count_bits(ctx, n_in)}, types)
    kernel = "dense_offchip" if ctx.offchip else "dense_xnor" if _xnor(ctx) else "dense"
    code.body = _preload(ctx, code)
    code.body += f"  fpgac::{kernel}<{_signs(ctx)}>({ctx.ins[0]}, {ctx.out}, {weight}, {bias});"


def _signs(ctx: Ctx) -> str:
    """The kernel's template arguments: the config, and ``true`` for binary/ternary weights of one
    magnitude (their 2-bit format: :func:`fpgac.ir.sign_weights.single_magnitude`), whose products the
    kernel adds or subtracts instead of multiplying (``fpgac::mac``); the XNOR kernels take the config."""
    if ctx.offchip or _xnor(ctx) or single_magnitude(ctx.node.params["weight"]) is None:
        return f"{ctx.name}_config"
    return f"{ctx.name}_config, true"


def _row_memories(ctx: Ctx, values: dict[str, int]) -> str:
    """conv_offchip_stream's line buffer and output row, declared where the estimate puts them
    (:func:`~fpgac.analysis.estimate.direct_row_memories`: URAM or LUT RAM where the fitting put them, else
    block RAM or LUT RAM as HLS maps them)."""
    lanes = _direct_lanes(ctx)
    span, out_lanes = (values["KH"] - 1) * values["DH"] + 1, values["OC"] // ctx.groups
    where = (
        direct_row_memories(ctx.node, lanes, ctx.groups, ctx.board, ctx.uram_rows, ctx.lutram_rows)
        if ctx.board
        else None
    )
    lines = [
        f"  static {ctx.in_types[0]} rows[{span}][{values['W']}][{values['C']}];",
        f"  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=rows cyclic factor={lanes} dim=3)",
    ]
    if where and where.line_buffer_uram:
        lines.append("  FPGAC_PRAGMA(HLS BIND_STORAGE variable=rows type=ram_2p impl=uram)")
    if where and where.lutram:
        lines.append("  FPGAC_PRAGMA(HLS BIND_STORAGE variable=rows type=ram_2p impl=lutram)")
    lines.append(f"  static {ctx.out_type} out[{values['OW'] * values['OC']}];")
    if where and where.out_uram:
        lines.append(f"  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=out cyclic factor={where.out_words})")
        lines.append("  FPGAC_PRAGMA(HLS BIND_STORAGE variable=out type=ram_2p impl=uram)")
    else:
        lines.append(f"  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=out cyclic factor={out_lanes})")
    if where and where.lutram:
        lines.append("  FPGAC_PRAGMA(HLS BIND_STORAGE variable=out type=ram_2p impl=lutram)")
    return "\n".join(lines) + "\n"


def _spatial_2d(x_shape: tuple[int, ...], out_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """(H, W, OH, OW) of a 1-d or 2-d window op; 1-d maps onto H = OH = 1."""
    if len(x_shape) == 2:
        return 1, x_shape[1], 1, out_shape[1]
    if len(x_shape) == 3:
        return x_shape[1], x_shape[2], out_shape[1], out_shape[2]
    raise VitisError(f"{where}: only 1-d and 2-d windows are supported, input is {x_shape}")


def _window(attrs: dict[str, Any], key: str, default: int, nd: int) -> tuple[int, int]:
    """(H, W) components of a per-axis attribute; 1-d ops get the neutral value on H."""
    values = attrs.get(key) or [default] * nd
    return (default, values[0]) if nd == 1 else (values[0], values[1])


def conv(ctx: Ctx, code: LayerCode) -> None:
    weight, w_shape = _weight_shape(ctx, code)
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
    if ctx.stream:
        values = {**values, "OUT_C": w_shape[0], "TAPS": math.prod(w_shape[1:])}
    types = _weight_types(ctx, code)
    if is_levelled(ctx.node):  # rank levels: fpgac/backends/vitis/levels.py
        ranked(ctx, code, values, types)
        return
    if not weight:  # pruned / shared / Huffman-coded storage: fpgac/backends/vitis/weights.py
        conv_compressed(ctx, code, values, types, bias)
        return
    fan_in = math.prod(w_shape[1:])
    code.config = config(ctx, {**values, **_lanes(ctx, fan_in), **_count_bits(ctx, fan_in)}, types)
    code.body = _preload(ctx, code)
    if ctx.stream:
        if _direct_lanes(ctx):  # a whole output row per read of the weights, from the line buffer
            code.body += _row_memories(ctx, values)
            call = f"{ctx.ins[0]}, {ctx.out}, {weight}, {bias}, rows, out"
            code.body += f"  fpgac::conv_offchip_stream<{ctx.name}_config>({call});"
            return
        if ctx.offchip:  # a row per read of the weights, its windows copied first (fpgac_offchip.h)
            row = f"fpgac::conv_row_offchip<{ctx.name}_config>(rows, oh, y, {weight}, {bias});"
            window_stream(ctx, code, row, weight)
            return
        if _xnor(ctx):  # padding cells are no taps: the kernel reads valid
            pixel = f"fpgac::conv_xnor_pixel<{ctx.name}_config>(win, valid, {weight}, {bias}, y);"
            window_stream(ctx, code, pixel)
            return
        pixel = f"fpgac::conv_pixel<{_signs(ctx)}>(win, {weight}, {bias}, y);"
        window_stream(ctx, code, pixel, reads=pixel_reads(ctx.node))  # may read its line buffer in place
        return
    conv2d = "conv2d_xnor" if _xnor(ctx) else "conv2d"
    code.body = f"  fpgac::{conv2d}<{_signs(ctx)}>({ctx.ins[0]}, {ctx.out}, {weight}, {bias});"


def _pool_values(ctx: Ctx, dilated: bool) -> dict[str, int]:
    a = ctx.node.attrs
    x_shape, out_shape = ctx.node.inputs[0].shape, ctx.node.output.shape
    h, w, oh, ow = _spatial_2d(x_shape, out_shape, ctx.where())
    nd = len(x_shape) - 1
    kh, kw = _window(a, "kernel", 1, nd)
    sh, sw = _window(a, "strides", 1, nd)
    ph, pw = (0, a["pads"][0]) if nd == 1 else (a["pads"][0], a["pads"][1])
    values = {"C": x_shape[0], "H": h, "W": w, "KH": kh, "KW": kw, "SH": sh, "SW": sw, "PH": ph, "PW": pw}
    values["DH"], values["DW"] = _window(a, "dilations", 1, nd) if dilated else (1, 1)
    return {**values, "OH": oh, "OW": ow}


def _scan_values(ctx: Ctx) -> dict[str, int]:
    """io stream: the scan's constants (fpgac_pool.h, fpgac/analysis/pool_scan.py)."""
    scan = PoolScan.of(ctx.node)
    if not scan.covers_input():
        raise VitisError(f"{ctx.where()}: a window of padding only (pads reach past the kernel)")
    return scan.config()


def max_pool(ctx: Ctx, code: LayerCode) -> None:
    values = _pool_values(ctx, True)
    if ctx.stream:  # a scan, a beat of lanes a cycle (fpgac_pool.h)
        code.config = config(ctx, {**values, **_scan_values(ctx)})
        code.body = f"  fpgac::max_pool_scan<{ctx.name}_config>({ctx.ins[0]}, {ctx.out});"
        return
    code.config = config(ctx, values)
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
        per_window = np.asarray(c).reshape(-1)
        code.arrays.append(Array("int", f"{ctx.name}_{suffix}", per_window, "cells per window"))
    if int(np.max(count_h[0]) * np.max(count_w[0])) >= recip_size:
        raise VitisError(f"{ctx.where()}: reciprocal table of {recip_size} entries is too short")
    values = {**values, "RECIP_SIZE": recip_size}
    global_pool = is_global_pool(x_shape, a)
    if ctx.stream and not global_pool:
        values = {**values, **_scan_values(ctx)}
    code.config = config(ctx, values, {**_acc(ctx, code), **_param_types(ctx, recip_t="recip")})
    cells = [f"{ctx.name}_count_h", f"{ctx.name}_count_w"]
    if ctx.stream and global_pool:  # per-channel sums in an array, not a window
        count = f"{cells[0]}[0] * {cells[1]}[0]"
        kernel = f"fpgac::global_avg_stream<{ctx.name}_config>"
        code.body = f"  {kernel}({ctx.ins[0]}, {ctx.out}, {recip}, {count});"
        return
    kernel = (
        f"fpgac::avg_pool_scan<{ctx.name}_config>" if ctx.stream else f"fpgac::avg_pool2d<{ctx.name}_config>"
    )
    code.body = f"  {kernel}({ctx.ins[0]}, {ctx.out}, {recip}, {', '.join(cells)});"


def reduce(ctx: Ctx, code: LayerCode) -> None:
    a = ctx.node.attrs
    shape = ctx.node.inputs[0].shape
    axes = sorted(a["axes"])
    r = math.prod(shape[ax] for ax in axes)
    idx = np.moveaxis(np.arange(math.prod(shape)).reshape(shape), axes, range(-len(axes), 0)).reshape(-1)
    code.arrays.append(
        Array("int", f"{ctx.name}_cells", np.asarray(idx).reshape(-1), "input cells per output")
    )
    values = {"IN_SIZE": math.prod(shape), "OUT_SIZE": ctx.size, "R": r}
    if a["mode"] == "max":
        code.config = config(ctx, values)
        code.body = f"  fpgac::reduce_max<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {ctx.name}_cells);"
        return
    recip, _ = _param(ctx, code, "recip")
    code.config = config(ctx, values, {**_acc(ctx, code), **_param_types(ctx, recip_t="recip")})
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
    types = {**_acc(ctx, code), "diff_t": f"{ctx.name}_diff_t", **_param_types(ctx, table_t="table")}
    values = {
        "OUTER": math.prod(shape[:axis]), "N": shape[axis], "INNER": math.prod(shape[axis + 1 :]),
        "SHIFT": s, "OFFSET": offset, "TABLE_SIZE": size, "F": ctx.out_fmt.frac_bits,
    }  # fmt: skip
    if ctx.out_fmt.frac_bits < 0 or ctx.out_fmt.frac_bits > 40:
        raise VitisError(f"{ctx.where()}: softmax output of {ctx.out_fmt} is not supported")
    code.config = config(ctx, values, types)
    code.body = f"  fpgac::softmax<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {table});"


def lrn(ctx: Ctx, code: LayerCode) -> None:
    shape, size = ctx.node.inputs[0].shape, ctx.node.attrs["size"]
    acc = ctx.node.attrs.get("acc")
    if not isinstance(acc, Fixed):
        raise VitisError(f"{ctx.where()}: needs an accumulator format (attrs['acc']), got {acc}")
    table, args = _table_args(ctx, code, acc)
    s, offset, table_size = (int(v) for v in args.split(", "))
    types = {**_acc(ctx, code), **_param_types(ctx, table_t="table")}
    values = {
        "C": shape[0], "INNER": math.prod(shape[1:]), "SIZE": size, "BEFORE": (size - 1) // 2,
        "SHIFT": s, "OFFSET": offset, "TABLE_SIZE": table_size,
    }  # fmt: skip
    code.config = config(ctx, values, types)
    code.body = f"  fpgac::lrn<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {table});"


# ------------------------------------------------------------------------------------------------------
# elementwise ops: one pipelined loop of `out_t y = expr;`


def _value_reads(ctx: Ctx, code: LayerCode) -> list[str]:
    out = ctx.node.output.shape
    reads = []
    for k, (name, v) in enumerate(zip(ctx.ins, ctx.node.inputs, strict=True)):
        if v.shape == out:
            reads.append(f"{name}[{ctx.elem}]")
        else:  # broadcasting: never beat by beat (vitis_stream buffers such layers)
            reads.append(f"{name}[{_index(code, ctx, k, _broadcast_map(v.shape, out))}]")
    return reads


def _param_read(ctx: Ctx, code: LayerCode, key: str, k: int) -> str:
    _, shape = _param(ctx, code, key)
    return _read(ctx, key, _index(code, ctx, k, _broadcast_map(shape, ctx.node.output.shape)))


def affine(ctx: Ctx, code: LayerCode) -> None:
    scale, shift = _param_read(ctx, code, "scale", 1), _param_read(ctx, code, "shift", 2)
    code.body = _loop(ctx, f"{ctx.y} = {ctx.x(0)} * {scale} + {shift};")


def _binary(symbol: str) -> Callable[[Ctx, LayerCode], None]:
    def emit(ctx: Ctx, code: LayerCode) -> None:
        reads = _value_reads(ctx, code)
        code.body = _loop(ctx, f"{ctx.y} = {f' {symbol} '.join(reads)};")

    return emit


def relu(ctx: Ctx, code: LayerCode) -> None:
    t = ctx.in_types[0]
    code.body = _loop(ctx, f"{t} v = {ctx.x(0)};\nif (v < 0) v = 0;\n{ctx.y} = v;")


def _negative_side(key: str) -> Callable[[Ctx, LayerCode], None]:
    def emit(ctx: Ctx, code: LayerCode) -> None:
        slope = _param_read(ctx, code, key, 1)
        t = ctx.in_types[0]
        body = f"const {t} v = {ctx.x(0)};\nif (v < 0) {ctx.y} = v * {slope};\nelse {ctx.y} = v;"
        code.body = _loop(ctx, body)

    return emit


def clip(ctx: Ctx, code: LayerCode) -> None:
    """Clamp on exact values in a type holding the input and both bounds, then one cast.

    As ``fixed_kernels.clip`` does.
    """
    fx, out = ctx.in_fmts[0], ctx.out_fmt
    frac = max(fx.frac_bits, out.frac_bits)
    int_bits = max(fx.int_bits, out.int_bits) + 1
    code.typedefs.append((f"{ctx.name}_clamp_t", Fixed(int_bits + frac, int_bits, True).ap_type()))
    nearest = Fixed(out.width, out.int_bits, out.signed, out.rounding, Overflow.SAT)
    code.typedefs.append((f"{ctx.name}_bound_t", nearest.ap_type()))
    lines = [f"{ctx.name}_clamp_t v = {ctx.x(0)};"]
    for key, op in (("min", "<"), ("max", ">")):
        bound = ctx.node.attrs[key]
        if bound is not None:
            lines.append(
                f"if (v {op} {ctx.name}_bound_t({literal(bound)})) v = {ctx.name}_bound_t({literal(bound)});"
            )
    lines.append(f"{ctx.y} = v;")
    code.body = _loop(ctx, "\n".join(lines))


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
        f"{ctx.name}_clamp_t t = {ctx.x(0)} * {alpha} + {beta};\n"
        f"if (t < 0) t = 0;\nif (t > 1) t = 1;\n{ctx.y} = t;"
    )
    code.body = _loop(ctx, body)


_MAX_QUANT_GROUPS = 16  # distinct per-channel scales of one quant node (a typedef each)


def quant(ctx: Ctx, code: LayerCode) -> None:
    """QONNX's quantizer, as ``fixed_kernels.quant``: per group of elements sharing a power-of-two scale,
    ``g_t q = v`` (CEIL adds one step of ``g_t`` less one of ``v`` first, then truncates), the clamp to
    QONNX's integer range where ``g_t``'s own range is wider, then ``y = q`` (exact)."""
    node = ctx.node
    try:
        plan = fixed_plan(
            node.attrs, node.params["scale"].data, node.params["zero_point"].data, node.output.shape
        )
    except ValueError as exc:
        raise VitisError(f"{ctx.where()}: {exc}") from None
    if len(plan.groups) > _MAX_QUANT_GROUPS:
        raise VitisError(f"{ctx.where()}: {len(plan.groups)} distinct scales (at most {_MAX_QUANT_GROUPS})")
    fx = ctx.in_fmts[0]
    branches = []
    for k, group in enumerate(plan.groups):
        g_t = f"{ctx.name}_g{k}_t"
        code.typedefs.append((g_t, group.fmt.ap_type()))
        step = math.ldexp(1.0, -group.frac)
        if group.bipolar:
            branches.append(f"{g_t} q = {g_t}({literal(step)});\nif (v < 0) q = -q;\n{ctx.y} = q;")
            continue
        offset, source = ceil_offset(fx, group) or odd_offset(fx, group), "v"
        if offset:
            shift = fx.frac_bits - group.frac + int(odd_offset(fx, group) > 0)  # bits holding the offset
            code.typedefs.append(
                (f"{ctx.name}_off{k}_t", Fixed(shift, shift - fx.frac_bits, False).ap_type())
            )
            source = f"v + {ctx.name}_off{k}_t({literal(math.ldexp(offset, -fx.frac_bits))})"
        step = 1 if odd_offset(fx, group) else 0  # ties to odd: one step up before, taken off after
        lines = [f"{g_t} q = {source};"]
        if group.lo + step > group.fmt.min_mantissa:
            bound = f"{g_t}({literal(math.ldexp(group.lo + step, -group.frac))})"
            lines.append(f"if (q < {bound}) q = {bound};")
        if group.hi + step < group.fmt.max_mantissa:
            bound = f"{g_t}({literal(math.ldexp(group.hi + step, -group.frac))})"
            lines.append(f"if (q > {bound}) q = {bound};")
        result = f"q - {g_t}({literal(math.ldexp(1, -group.frac))})" if step else "q"
        branches.append("\n".join([*lines, f"{ctx.y} = {result};"]))
    body = f"const {ctx.in_types[0]} v = {ctx.x(0)};\n"
    if len(branches) == 1:
        body += branches[0]
    else:
        body += f"const int g = {_index(code, ctx, 1, plan.group_of)};\n"
        body += " else ".join(f"if (g == {k}) {{\n{_indent(b, 2)}\n}}" for k, b in enumerate(branches))
    code.body = _loop(ctx, body)


def table(ctx: Ctx, code: LayerCode) -> None:
    _, args = _table_args(ctx, code, ctx.in_fmts[0])
    code.body = _loop(ctx, f"{ctx.y} = {_read(ctx, 'table', f'fpgac::table_index<{args}>({ctx.x(0)})')};")


def elu(ctx: Ctx, code: LayerCode) -> None:
    """``x >= 0 ? out_t(x) : out_t(table[x])``; selu multiplies the positive side by gamma."""
    _, args = _table_args(ctx, code, ctx.in_fmts[0])
    positive = "v"
    if "gamma" in ctx.node.params:
        positive = f"v * {_param_read(ctx, code, 'gamma', 1)}"
    t = ctx.in_types[0]
    body = (
        f"const {t} v = {ctx.x(0)};\n"
        f"if (v < 0) {ctx.y} = {_read(ctx, 'table', f'fpgac::table_index<{args}>(v)')};\n"
        f"else {ctx.y} = {positive};"
    )
    code.body = _loop(ctx, body)


# ------------------------------------------------------------------------------------------------------
# data movement: copies with one cast, through index maps


def reshape(ctx: Ctx, code: LayerCode) -> None:
    code.body = _loop(ctx, f"{ctx.y} = {ctx.x(0)};")


def transpose(ctx: Ctx, code: LayerCode) -> None:
    shape = ctx.node.inputs[0].shape
    idx = np.arange(math.prod(shape)).reshape(shape).transpose(ctx.node.attrs["perm"])
    if ctx.stream and stream_mode(ctx.node) == "permute":
        code.body = _permute_pixels(ctx, code, idx)
        return
    code.body = _loop(ctx, f"{ctx.y} = {ctx.ins[0]}[{_index(code, ctx, 0, idx)}];")


def _permute_pixels(ctx: Ctx, code: LayerCode, idx: np.ndarray) -> str:
    """io_stream channel shuffle: each pixel's channels reordered (``permute_stream``); output channel k
    takes input channel ``src[k]``, read off the logical index map (c * P + p) at pixel 0."""
    pixels, channels = pixels_channels(ctx.node.output)
    src = idx.reshape(channels, pixels)[:, 0] // pixels
    name = f"{ctx.name}_idx0"
    code.arrays.append(Array("int", name, src, "input channel of each output channel"))
    return f"  fpgac::permute_stream<{pixels}, {ctx.groups}>({ctx.ins[0]}, {ctx.out}, {name});"


def concat(ctx: Ctx, code: LayerCode) -> None:
    if ctx.stream and stream_mode(ctx.node) == "pixel":
        code.body = _concat_pixels(ctx)
        return
    axis = ctx.node.attrs["axis"]
    positions = np.arange(ctx.size).reshape(ctx.node.output.shape)
    bounds = np.cumsum([v.shape[axis] for v in ctx.node.inputs])[:-1]
    loops = []
    for k, (name, part) in enumerate(zip(ctx.ins, np.split(positions, bounds, axis=axis), strict=True)):
        dst = _index(code, ctx, k, part)
        loops.append(_loop(ctx, f"{ctx.out}[{dst}] = {name}[i];", part.size, f"part{k}"))
    code.body = "\n".join(loops)


def _concat_pixels(ctx: Ctx) -> str:
    """io_stream concatenation over channels, no tensor buffer: each pixel's beats of input 0, then of
    input 1, ... (``copy_beats``: beats of L lanes, G_k = C_k / L of input k), or, unfolded, one beat of
    each input placed at its channels in the output pixel (``place_pixel``)."""
    pixels, channels = pixels_channels(ctx.node.output)
    loop = f"  FPGAC_LOOP(concat_pixels)\n  for (int p = 0; p < {pixels}; p++) {{\n"
    if ctx.groups > 1:
        width = channels // ctx.groups
        copies = "".join(
            f"    fpgac::copy_beats<{pixels_channels(v)[1] // width}>({name}, {ctx.out});\n"
            for name, v in zip(ctx.ins, ctx.node.inputs, strict=True)
        )
        return f"{loop}{copies}  }}"
    offsets = np.cumsum([0] + [pixels_channels(v)[1] for v in ctx.node.inputs])
    places = "".join(
        f"    fpgac::place_pixel<{int(offset)}>({name}, y_px);\n"
        for name, offset in zip(ctx.ins, offsets, strict=False)
    )
    return (
        f"{loop}    FPGAC_PRAGMA(HLS PIPELINE II=1)\n"
        f"    fpgac::pixel<{ctx.out_type}, {channels}> y_px;\n{places}    {ctx.out}.write(y_px);\n  }}"
    )


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
            f"if (src < 0) {ctx.y} = {ctx.out_type}({literal(a['value'])});\n"
            f"else {ctx.y} = {ctx.ins[0]}[src];"
        )
    else:
        body = f"{ctx.y} = {ctx.ins[0]}[{read}];"
    code.body = _loop(ctx, body)


# ------------------------------------------------------------------------------------------------------
# the OOD monitor (fpgac_ood.h)


def patch_energy(ctx: Ctx, code: LayerCode) -> None:
    a = ctx.node.attrs
    x_shape = ctx.node.inputs[0].shape
    grid, taps = patch_grid(x_shape, a)
    values = {"IN_SIZE": math.prod(x_shape), "PATCHES": math.prod(grid), "TAPS": taps}
    if a["kernel"]:  # a conv's windows: its geometry, 1-d mapped onto H = 1 as conv does
        nd = len(x_shape) - 1
        h, w, _, ow = _spatial_2d(x_shape, (0, *grid), ctx.where())
        kh, kw = _window(a, "kernel", 1, nd)
        sh, sw = _window(a, "strides", 1, nd)
        dh, dw = _window(a, "dilations", 1, nd)
        ph, pw = (0, a["pads"][0]) if nd == 1 else (a["pads"][0], a["pads"][1])
        geometry = {"H": h, "W": w, "KH": kh, "KW": kw, "SH": sh, "SW": sw, "PH": ph, "PW": pw, "DH": dh}
        values |= {**geometry, "DW": dw, "OW": ow, "ROWS": 0}
    else:  # a dense layer's input rows (patch_index reads ROWS only)
        values |= {k: 1 for k in ("H", "W", "KH", "KW", "SH", "SW", "DH", "DW", "OW")}
        values |= {"PH": 0, "PW": 0, "ROWS": 1}
    if "basis" not in ctx.node.params:
        code.config = config(ctx, values)
        code.body = f"  fpgac::patch_energy<{ctx.name}_config>({ctx.ins[0]}, {ctx.out});"
        return
    basis, (k, _) = _param(ctx, code, "basis")
    code.config = config(ctx, {**values, "K": k}, {**_acc(ctx, code), **_param_types(ctx, basis_t="basis")})
    code.body = f"  fpgac::patch_energy_projected<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {basis});"


def ood_flag(ctx: Ctx, code: LayerCode) -> None:
    """``num < tau * den``: an exact product and comparison of ap_fixed values, 1 or 0."""
    tau = _param_read(ctx, code, "tau", 2)
    code.body = _loop(ctx, f"{ctx.y} = ({ctx.x(0)} < {tau} * {ctx.x(1)}) ? 1 : 0;")


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
    "quant": quant,
    "sigmoid": table,
    "hard_sigmoid": hard_sigmoid,
    "tanh": table,
    "elu": elu,
    "selu": elu,
    "softmax": softmax,
    "lrn": lrn,
    "reshape": reshape,
    "transpose": transpose,
    "concat": concat,
    "pad": pad,
    "patch_energy": patch_energy,
    "ood_flag": ood_flag,
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
