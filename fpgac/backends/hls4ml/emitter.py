"""The hls4ml backend: a lowered graph -> an hls4ml project (``hls4ml/`` in the build folder).

The graph is first put into hls4ml's semantics by :func:`fpgac.backends.hls4ml.lower.lower`; this module
maps each lowered node onto one hls4ml layer through hls4ml's public Python API
(``ModelGraph.from_layer_list`` with a layer list and a config dict, as its converters build them) and
never edits hls4ml's output. Every layer gets its types from the IR: weight, bias, accumulator
(``accum_t``) and result formats with their rounding and overflow modes, table types for activations;
plus each layer's reuse factor and strategy (Latency at reuse 1, Resource otherwise) and the I/O type.
Layers are channels-last (``data_format='channels_last'``, weights transposed here), matching the
explicit layouts of the lowered graph; hls4ml's own channels-first conversion pass never runs.

hls4ml writes its project to disk itself, so the plan is made by writing into a temporary folder and
reading every file back: the build stays atomic (``write_plan``). ``fpgac.json`` beside the project maps
hls4ml's layer names back to IR values, for ``fpgac csim`` and ``fpgac verify``. hls4ml stamps each
write with a random id (its ``make_stamp`` pass, naming the compiled library); that id is the only
difference between two builds of the same model.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.backends.cnames import CNames
from fpgac.backends.hls4ml.lower import (
    CHANNELS_LAST,
    SOFTMAX_TABLE_BITS,
    TABLE_SIZE,
    Hls4mlError,
    pool_pads,
    softmax_formats,
)
from fpgac.backends.plan import BuildPlan
from fpgac.boards import Board
from fpgac.ir.graph import Graph, Node, Value
from fpgac.ir.types import Fixed

log = logging.getLogger(__name__)

PROJECT = "fpgac_hls4ml"
PROJECT_DIR = "hls4ml"  # the project's folder inside the build folder
MAP_FILE = "fpgac.json"
IO_TYPES = {"parallel": "io_parallel", "stream": "io_stream"}
_RESERVED = (PROJECT, "input", "x", "y", "main")
MERGES = {"add": "add", "sub": "subtract", "mul": "multiply"}  # fpgac op -> hls4ml Merge op


@dataclass
class Design:
    """What hls4ml is given, and where each IR value ends up in its project."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    layer_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensors: dict[str, str] = field(default_factory=dict)  # IR value name -> hls4ml tensor (layer) name
    shapes: dict[str, list[int]] = field(default_factory=dict)  # hls4ml tensor name -> its shape
    traced: dict[str, str] = field(default_factory=dict)  # hls4ml layer name -> IR value name
    reuse: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # IR node -> {asked, used} where they differ


def precision(fmt: object) -> Any:
    """An IR format as hls4ml's ``FixedPrecisionType`` (same width, integer bits, signedness and modes)."""
    from hls4ml.model.types import FixedPrecisionType

    if not isinstance(fmt, Fixed):
        raise Hls4mlError(f"hls4ml backend: format {fmt} is not fixed point; quantize the graph first")
    return FixedPrecisionType(fmt.width, fmt.int_bits, fmt.signed, fmt.rounding.value, fmt.overflow.value)


def _hls_shape(value: Value) -> list[int]:
    shape = value.shape
    if value.type.layout == CHANNELS_LAST:
        return [shape[i] for i in CHANNELS_LAST]
    return list(shape)


def design(graph: Graph, io: str, reuse: int = 1, layer_reuse: Mapping[str, int] | None = None) -> Design:
    """The hls4ml layer list and per-layer config of a lowered graph (only its types come from hls4ml).

    Each layer's reuse factor is ``layer_reuse[node name]``, else ``reuse``; dense and conv layers above 1
    take hls4ml's Resource strategy, moved to the nearest factor its ``io`` kernels accept
    (:func:`valid_reuse`). In io_stream, a max pool whose windows overlap becomes several layers
    (:func:`_overlapping_max_pool`).
    """
    d = Design()
    names = CNames(_RESERVED)
    for value in graph.inputs:
        name = names.claim(value.name)
        d.layers.append({"class_name": "InputLayer", "name": name, "input_shape": _hls_shape(value)})
        d.layer_config[name] = {"Precision": {"result": precision(value.type.format)}}
        d.tensors[value.name], d.shapes[name] = name, _hls_shape(value)
    for node in graph.nodes:
        src = d.tensors[node.inputs[0].name]
        moves = node.op == "transpose" and memory_perm(node) != list(range(node.output.type.rank))
        if (node.op == "transpose" and not moves) or (
            node.op == "reshape" and d.shapes[src] == _hls_shape(node.output)
        ):
            d.tensors[node.output.name] = src  # the memory order is unchanged: no hls4ml layer
            continue
        if io == "stream" and node.op == "max_pool" and overlapping(node):
            _overlapping_max_pool(node, names, d)
            continue
        name = names.claim(node.name)
        layer, prec = _layer(node, d)
        layer.update(name=name, inputs=[d.tensors[v.name] for v in node.inputs])
        prec["result"] = precision(node.output.type.format)
        d.layers.append(layer)
        asked = (layer_reuse or {}).get(node.name, reuse)
        used = valid_reuse(layer, asked, io)
        if used != asked:
            d.reuse[node.name] = {"asked": asked, "used": used}
        strategy = "Resource" if used > 1 and layer["class_name"] in _MULT_SIZE else "Latency"
        d.layer_config[name] = {"Precision": prec, "ReuseFactor": used, "Strategy": strategy, "Trace": True}
        d.tensors[node.output.name], d.shapes[name] = name, _hls_shape(node.output)
        d.traced[name] = node.output.name
        if layer["class_name"].startswith("Global") and node.output.type.rank == 3:
            _keep_dims(node, name, names, d)
    return d


def overlapping(node: Node) -> bool:
    """Whether a pool's windows overlap (stride < kernel on some axis)."""
    return any(s < k for k, s in zip(node.attrs["kernel"], node.attrs["strides"], strict=True))


def _overlapping_max_pool(node: Node, names: CNames, d: Design) -> None:
    """A max pool with overlapping windows (stride < kernel <= 2 * stride, no padding: :func:`check_io`)
    in hls4ml's io_stream, whose pooling asserts windows that tile the input (kernel = stride).

    On an axis, the window ``[s*i, s*i + k)`` is the union of the two tiles ``[s*i, s*i + s)`` and
    ``[s*i + k - s, s*i + k)`` (``k - s <= s``), so the pool is the elementwise maximum of (up to) four
    tiling pools (kernel = stride), each over the input cropped at offset 0 or ``k - s`` on each axis to
    whole tiles: hls4ml's Cropping2D, MaxPooling2D and Merge ``maximum`` layers, all in the input's format
    (exact: a maximum selects a value), and the last maximum casts to the pool's output format (rounding
    and saturation are monotone, so they commute with the maximum). The last layer carries the node's name
    and is the one traced.
    """
    x = node.inputs[0]
    c, h, w = x.shape
    (kh, kw), (sh, sw) = node.attrs["kernel"], node.attrs["strides"]
    out_h, out_w = node.output.shape[1:]
    fmt = precision(x.type.format)
    src = d.tensors[x.name]
    tiles: list[str] = []
    for top in sorted({0, kh - sh}):
        for left in sorted({0, kw - sw}):
            crop = names.claim(f"{node.name}_crop{top}{left}")
            d.layers.append({
                "class_name": "Cropping2D", "name": crop, "inputs": [src], "data_format": "channels_last",
                "in_height": h, "in_width": w, "out_height": out_h * sh, "out_width": out_w * sw, "n_chan": c,
                "crop_top": top, "crop_bottom": h - top - out_h * sh, "crop_left": left,
                "crop_right": w - left - out_w * sw,
            })  # fmt: skip
            d.layer_config[crop] = {"Precision": {"result": fmt}}
            pool = names.claim(f"{node.name}_tile{top}{left}")
            d.layers.append({
                "class_name": "MaxPooling2D", "name": pool, "inputs": [crop], "data_format": "channels_last",
                "in_height": out_h * sh, "in_width": out_w * sw, "n_filt": c, "pool_height": sh,
                "pool_width": sw, "stride_height": sh, "stride_width": sw, "pad_top": 0, "pad_bottom": 0,
                "pad_left": 0, "pad_right": 0, "out_height": out_h, "out_width": out_w, "count_pad": False,
            })  # fmt: skip
            d.layer_config[pool] = {"Precision": {"result": fmt, "accum": fmt}}
            tiles.append(pool)
    result = tiles[0]
    for i, tile in enumerate(tiles[1:], start=1):
        last = i == len(tiles) - 1
        name = names.claim(node.name if last else f"{node.name}_max{i}")
        d.layers.append({"class_name": "Merge", "op": "maximum", "name": name, "inputs": [result, tile]})
        out_fmt = precision(node.output.type.format) if last else fmt
        d.layer_config[name] = {"Precision": {"result": out_fmt}, "Trace": last}
        result = name
    d.tensors[node.output.name], d.shapes[result] = result, _hls_shape(node.output)
    d.traced[result] = node.output.name


def _keep_dims(node: Node, pooled: str, names: CNames, d: Design) -> None:
    """hls4ml's global pooling outputs a 1-d [C]; a (C, 1, 1) value (keepdims, read by a conv) becomes a
    free io_parallel Reshape of it to [1, 1, C] (the same memory order)."""
    d.shapes[pooled] = [node.output.shape[0]]
    name = names.claim(f"{node.name}_keepdims")
    shape = _hls_shape(node.output)
    d.layers.append({"class_name": "Reshape", "name": name, "inputs": [pooled], "target_shape": shape})
    d.layer_config[name] = {"Precision": {"result": precision(node.output.type.format)}}
    d.tensors[node.output.name], d.shapes[name] = name, shape


# The layers whose reuse factor hls4ml's Resource strategy constrains: their (n_in, n_out) as hls4ml's
# FPGABackend.get_layer_mult_size counts them.
_MULT_SIZE = {
    "Dense": lambda layer: (layer["n_in"], layer["n_out"]),
    "Conv2D": lambda layer: (layer["n_chan"] * layer["filt_height"] * layer["filt_width"], layer["n_filt"]),
    "DepthwiseConv2D": lambda layer: (
        layer["n_chan"] * layer["filt_height"] * layer["filt_width"],
        layer["n_filt"],
    ),
}


def valid_reuse(layer: dict[str, Any], asked: int, io: str) -> int:
    """The smallest reuse factor >= ``asked`` that hls4ml's Resource kernels for ``io`` accept for
    ``layer``, within the largest they accept (:func:`max_reuse`).

    hls4ml itself replaces an invalid factor by the *closest* valid one, possibly smaller (more
    multipliers than asked); fpgac moves up instead, so a layer never takes more of the board than the
    reuse factor it was given. Validity is hls4ml's own test (``FPGABackend._validate_reuse_factor``);
    the largest factor allowed always passes it. Other layers take any factor.
    """
    size = _MULT_SIZE.get(layer["class_name"])
    if size is None or asked <= 1:
        return asked
    import hls4ml

    n_in, n_out = size(layer)
    backend = hls4ml.backends.get_backend("Vitis")
    rf = min(asked, max_reuse(layer, io))
    while not backend._validate_reuse_factor(n_in, n_out, rf):
        rf = rf + 1 if rf < n_in else (rf // n_in + 1) * n_in  # at or above n_in only multiples of n_in pass
    return int(rf)


def max_reuse(layer: dict[str, Any], io: str) -> int:
    """The largest reuse factor hls4ml's kernels compute correctly for a layer of ``_MULT_SIZE``.

    In io_parallel a conv's Resource kernel (``conv_2d_resource_cl``, also behind 1x1 "pointwise" convs)
    asserts ``RF <= filt_height * filt_width * n_chan`` (n_in); beyond it the assertion is compiled out
    of C-simulation and the outputs are wrong (a 1x1 conv of ResNet's shortcut at 64 > 8 inputs: 4,607
    of 4,608 values), and there is no io_parallel Resource depthwise conv at all. io_stream convs and
    dense layers run hls4ml's dense Resource kernels, which take every factor up to ``n_in * n_out``.
    """
    n_in, n_out = _MULT_SIZE[layer["class_name"]](layer)
    if io == "parallel" and layer["class_name"] == "DepthwiseConv2D":
        return 1
    if io == "parallel" and layer["class_name"] == "Conv2D":
        return n_in
    return n_in * n_out


def _layer(node: Node, d: Design) -> tuple[dict[str, Any], dict[str, Any]]:
    """One hls4ml layer dict (as hls4ml's converters make them) and its precision config."""
    a, x = node.attrs, node.inputs[0]
    fx = x.type.format
    if node.op == "dense":
        w = node.params["weight"]
        b = node.params.get("bias")
        bias = b.data if b is not None else np.zeros(w.shape[0])
        layer = {"class_name": "Dense", "n_in": w.shape[1], "n_out": w.shape[0]}
        layer.update(weight_data=w.data.T.copy(), bias_data=bias, use_bias=True)
        return layer, _linear_precision(node)
    if node.op == "conv":
        return _conv(node), _linear_precision(node)
    if node.op == "max_pool":
        return _pool(node, "MaxPooling2D", count_pad=False), {"accum": precision(fx)}
    if node.op == "hls4ml_avg_pool":
        return _pool(node, "AveragePooling2D", a["count_include_pad"]), {"accum": precision(a["acc"])}
    if node.op == "affine":
        return _batchnorm(node)
    if node.op == "pad":
        return _zero_pad(node), {}
    if node.op == "hard_sigmoid":  # clip(slope * x + shift, 0, 1), slope and shift in their own types
        alpha, beta = node.params["alpha"], node.params["beta"]
        layer = {"class_name": "HardActivation", "activation": "hard_sigmoid"}
        layer.update(slope=float(alpha.data), shift=float(beta.data))
        layer.update(slope_prec=precision(alpha.format), shift_prec=precision(beta.format))
        return layer, {}
    if node.op == "prelu":
        slope = node.params["slope"]
        layer = {"class_name": "PReLU", "activation": "prelu", "n_in": x.type.size}
        layer["param_data"] = _per_element(slope.data, x)  # hls4ml's alpha: one per element
        return layer, {"param": precision(slope.format)}
    if node.op in ("hls4ml_mean", "reduce"):
        c, h, width = x.shape
        kind = "GlobalAveragePooling2D" if node.op == "hls4ml_mean" else "GlobalMaxPooling2D"
        layer = {
            "class_name": kind,
            "in_height": h,
            "in_width": width,
            "n_filt": c,
            "data_format": "channels_last",
        }
        return layer, {"accum": precision(a["acc"] if node.op == "hls4ml_mean" else fx)}
    if node.op == "reshape":
        return {"class_name": "Reshape", "target_shape": _hls_shape(node.output)}, {}
    if node.op == "transpose":
        return {"class_name": "Transpose", "perm": memory_perm(node)}, {}
    if node.op == "relu":
        return {"class_name": "Activation", "activation": "relu"}, {}
    if node.op == "clip":
        return {"class_name": "Activation", "activation": f"relu{int(a['max'])}"}, {}
    if node.op == "leaky_relu":
        alpha = node.params["alpha"]
        layer = {"class_name": "LeakyReLU", "activation": "leaky_relu", "activ_param": float(alpha.data)}
        return layer, {"param": precision(alpha.format)}
    if node.op in MERGES:
        return {"class_name": "Merge", "op": MERGES[node.op]}, {}
    if node.op == "concat":
        rank = x.type.rank
        axis = _hls_shape_axis(x, a["axis"]) + 1  # hls4ml counts the batch axis, as Keras does
        return {"class_name": "Concatenate", "op": f"concatenate{rank}d", "axis": axis}, {}
    if node.op in ("hls4ml_sigmoid", "hls4ml_tanh"):
        table = node.params["table"]
        activation = node.op.removeprefix("hls4ml_")
        layer = {"class_name": "Activation", "activation": activation, "table_size": TABLE_SIZE}
        layer["table_t"] = precision(table.format)
        return layer, {}
    if node.op in ("hls4ml_elu", "hls4ml_selu"):
        table = node.params["table"]
        layer = {"class_name": "Activation", "activation": "selu", "table_size": TABLE_SIZE}
        layer["table_t"] = precision(table.format)
        if node.op == "hls4ml_selu":
            return layer, {}
        alpha = node.params["alpha"]
        layer.update(class_name="ELU", activation="elu", activ_param=float(alpha.data))
        return layer, {"param": precision(alpha.format)}
    if node.op == "hls4ml_softmax":
        f = softmax_formats(x.shape[0])
        size = 1 << SOFTMAX_TABLE_BITS
        layer = {"class_name": "Softmax", "activation": "softmax", "implementation": "stable", "axis": -1}
        layer.update(table_size=size, exp_table_size=size, inv_table_size=size)
        for key in ("exp_table", "inv_table", "inv_inp", "inp_norm"):
            layer[f"{key}_t"] = precision(f[key])
        layer["accum_t"] = precision(f["acc"])
        return layer, {"accum": precision(f["acc"])}
    raise Hls4mlError(f"hls4ml backend: node {node.name!r} ({node.op}): no hls4ml layer for this op")


def memory_perm(node: Node) -> list[int]:
    """A transpose as a permutation of hls4ml's memory axes: output memory axis k holds input memory axis
    ``perm[k]`` (the relayout before a flatten, logical CHW -> HWC, is the identity: no layer)."""
    x, y = node.inputs[0].type, node.output.type
    in_mem = list(x.layout or range(x.rank))
    out_mem = list(y.layout or range(y.rank))
    return [in_mem.index(node.attrs["perm"][axis]) for axis in out_mem]


def _hls_shape_axis(value: Value, axis: int) -> int:
    if value.type.layout == CHANNELS_LAST:
        return list(CHANNELS_LAST).index(axis)
    return axis


def _linear_precision(node: Node) -> dict[str, Any]:
    w = node.params["weight"]
    b = node.params.get("bias")
    return {
        "weight": precision(w.format),
        "bias": precision(b.format if b is not None else w.format),
        "accum": precision(node.attrs["acc"]),
    }


def _conv(node: Node) -> dict[str, Any]:
    a, x = node.attrs, node.inputs[0]
    w = node.params["weight"]
    c, h, width = x.shape
    out_ch, _, kh, kw = w.shape
    b = node.params.get("bias")
    layer: dict[str, Any] = {
        "data_format": "channels_last", "in_height": h, "in_width": width, "n_chan": c, "n_filt": out_ch,
        "filt_height": kh, "filt_width": kw, "stride_height": a["strides"][0],
        "stride_width": a["strides"][1], "pad_top": a["pads"][0], "pad_left": a["pads"][1],
        "pad_bottom": a["pads"][2], "pad_right": a["pads"][3],
        "out_height": node.output.shape[1], "out_width": node.output.shape[2],
        "bias_data": b.data if b is not None else np.zeros(out_ch), "use_bias": True,
    }  # fmt: skip
    if a["groups"] == 1:
        layer.update(class_name="Conv2D", weight_data=w.data.transpose(2, 3, 1, 0).copy())
    else:  # depthwise (checked by the lowering): Keras' (kh, kw, channels, multiplier) kernel
        kernel = w.data.transpose(2, 3, 0, 1).copy()
        layer.update(class_name="DepthwiseConv2D", depth_multiplier=1, depthwise_data=kernel)
    return layer


def _pool(node: Node, class_name: str, count_pad: bool) -> dict[str, Any]:
    """A max or average pooling layer (its padding: :func:`fpgac.backends.hls4ml.lower.pool_pads`)."""
    a, x = node.attrs, node.inputs[0]
    c, h, w = x.shape
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    out_h, out_w = node.output.shape[1:]
    top, left, bottom, right = pool_pads(node)
    return {
        "class_name": class_name, "data_format": "channels_last", "in_height": h, "in_width": w,
        "n_filt": c, "pool_height": kh, "pool_width": kw, "stride_height": sh, "stride_width": sw,
        "pad_top": top, "pad_bottom": bottom, "pad_left": left, "pad_right": right,
        "out_height": out_h, "out_width": out_w, "count_pad": count_pad,
    }  # fmt: skip


def _zero_pad(node: Node) -> dict[str, Any]:
    c, h, w = node.inputs[0].shape
    _, top, left, _, bottom, right = node.attrs["pads"]
    out_h, out_w = node.output.shape[1:]
    return {
        "class_name": "ZeroPadding2D", "data_format": "channels_last", "in_height": h, "in_width": w,
        "out_height": out_h, "out_width": out_w, "n_chan": c, "pad_top": top, "pad_bottom": bottom,
        "pad_left": left, "pad_right": right,
    }  # fmt: skip


def _per_element(param: np.ndarray, x: Value) -> np.ndarray:
    """A param broadcast to every element of ``x``, flat in hls4ml's memory order (channels last)."""
    order = CHANNELS_LAST if x.type.layout == CHANNELS_LAST else tuple(range(x.type.rank))
    return np.broadcast_to(param, x.shape).transpose(order).ravel().copy()


def _batchnorm(node: Node) -> tuple[dict[str, Any], dict[str, Any]]:
    """An affine as hls4ml's BatchNormalization (``res = x * scale + bias``: an exact product and sum, one
    cast, as fpgac's affine). Per-channel params of a (C, H, W) value index the channels-last channel
    (``n_filt`` = C); any other broadcast is written out per element in hls4ml's memory order."""
    x = node.inputs[0]
    scale, shift = node.params["scale"], node.params["shift"]
    full = [np.broadcast_to(p.data, x.shape) for p in (scale, shift)]
    if x.type.rank == 3 and all(np.array_equal(f, np.broadcast_to(f[:, :1, :1], f.shape)) for f in full):
        n_filt, data = x.shape[0], [f[:, 0, 0].copy() for f in full]
    else:
        n_filt, data = -1, [_per_element(f, x) for f in full]
    layer = {"class_name": "BatchNormalization", "n_in": x.type.size, "n_filt": n_filt}
    layer.update(scale_data=data[0], bias_data=data[1])
    return layer, {"scale": precision(scale.format), "bias": precision(shift.format)}


def config(d: Design, board: Board, io: str, output_dir: str, reuse: int = 1) -> dict[str, Any]:
    """The hls4ml configuration dict: the Vitis backend for the board's part and clock.

    Weights are written twice, as hls4ml does by default: as header initializers (what synthesis reads)
    and as text files that C-simulation loads at run time, so that compiling it does not cost minutes and
    gigabytes (see :mod:`fpgac.backends.hls4ml.csim`). Both are in the project, which stays movable.
    """
    import hls4ml

    if io not in IO_TYPES:
        raise Hls4mlError(f"hls4ml backend: --io {io} is not implemented yet; use --io parallel")
    backend = hls4ml.backends.get_backend("Vitis")
    cfg = backend.create_initial_config(
        part=board.part,
        clock_period=round(board.clock_period_ns, 6),
        io_type=IO_TYPES[io],
        write_weights_txt=True,
    )
    # TraceOutput: every layer's output is kept for trace() (only in C-simulation: #ifndef __SYNTHESIS__).
    cfg.update(Backend="Vitis", OutputDir=output_dir, ProjectName=PROJECT, TraceOutput=True)
    cfg["HLSConfig"] = {
        "Model": {
            "Precision": "ap_fixed<16,6>",  # every layer's types are set below; this default is never used
            "ReuseFactor": reuse,  # every layer sets its own factor and strategy below
            "Strategy": "Latency" if reuse == 1 else "Resource",
            "TraceOutput": True,
        },
        "LayerName": {
            name: {**lc, "Precision": {k: _ap(v) for k, v in lc["Precision"].items()}}
            for name, lc in d.layer_config.items()
        },
    }
    return cfg


def _ap(p: Any) -> str:
    sign = "" if p.signed else "u"
    return f"ap_{sign}fixed<{p.width},{p.integer},AP_{p.rounding_mode.name},AP_{p.saturation_mode.name}>"


def check_io(graph: Graph, io: str) -> None:
    """What hls4ml's io_stream kernels cannot do: its pooling streams assert windows that tile the input
    (kernel = stride, no padding), its average pooling divides as ``sum / N`` in a type of its own, and
    relu6/relu1 have no stream kernel (its C++ does not compile). Conv padding is fine: hls4ml inserts
    zero-padding layers itself."""
    if io != "stream":
        return
    for node in graph.nodes:
        a = node.attrs
        if node.op == "clip":
            raise Hls4mlError(
                f"hls4ml backend: node {node.name!r} ({node.op}): hls4ml has no io_stream relu6/relu1; "
                "use --io parallel"
            )
        if node.op == "hls4ml_avg_pool":
            raise Hls4mlError(
                f"hls4ml backend: node {node.name!r} (avg_pool): hls4ml's io_stream average pooling divides "
                "in its own types (sum / N), which fpgac does not model; use --io parallel"
            )
        if node.op == "max_pool" and (
            any(a["pads"])
            or a["ceil_mode"]
            or any(k > 2 * s for k, s in zip(a["kernel"], a["strides"], strict=True))
        ):
            raise Hls4mlError(
                f"hls4ml backend: node {node.name!r} ({node.op}): hls4ml's io_stream pooling needs windows "
                "without padding and kernel <= 2 * stride (fpgac builds overlapping ones from tiling "
                "pools); use --io parallel"
            )


def model_graph(
    graph: Graph,
    board: Board,
    io: str,
    output_dir: str,
    reuse: int = 1,
    layer_reuse: Mapping[str, int] | None = None,
) -> Any:
    """The hls4ml ``ModelGraph`` of a lowered graph, with ``output_dir`` as its project folder."""
    from hls4ml.model.graph import ModelGraph

    check_io(graph, io)
    d = design(graph, io, reuse, layer_reuse)
    outputs = [d.tensors[v.name] for v in graph.outputs]
    inputs = [d.tensors[v.name] for v in graph.inputs]
    try:
        cfg = config(d, board, io, output_dir, reuse)
        return ModelGraph.from_layer_list(cfg, d.layers, inputs, outputs)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError, RuntimeError, AssertionError) as exc:
        raise Hls4mlError(f"hls4ml rejected the model: {type(exc).__name__}: {exc}") from exc


def tensor_map(
    graph: Graph, io: str, reuse: int = 1, layer_reuse: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """``fpgac.json``: how IR values map onto the project's inputs, outputs and traced layers, and the
    reuse factors hls4ml needed changed (``{node: {asked, used}}``)."""
    d = design(graph, io, reuse, layer_reuse)
    value = {v.name: v for v in graph.values()}

    def entry(name: str) -> dict[str, Any]:
        v = value[name]
        return {"value": name, "tensor": d.tensors[name], "layout": list(v.type.layout or range(v.type.rank))}

    return {
        "project": PROJECT,
        "inputs": [entry(v.name) for v in graph.inputs],
        "outputs": [entry(v.name) for v in graph.outputs],
        "traced": {layer: entry(name) for layer, name in d.traced.items()},
        "reuse": d.reuse,
    }


def hls4ml_plan(
    graph: Graph, board: Board, io: str, reuse: int = 1, layer_reuse: Mapping[str, int] | None = None
) -> BuildPlan:
    """The hls4ml project of a lowered graph as a plan (written by hls4ml into a temporary folder).

    ``layer_reuse`` maps node names to reuse factors (the build's decisions); other layers get ``reuse``.
    """
    plan = BuildPlan()
    with tempfile.TemporaryDirectory(prefix="fpgac-hls4ml-") as tmp:
        # hls4ml records OutputDir in its hls4ml_config.yml: written from the temporary folder as the
        # relative "hls4ml", it is right for the build folder (no temporary path leaks into the project).
        model = model_graph(graph, board, io, PROJECT_DIR, reuse, layer_reuse)
        cwd = Path.cwd()
        try:
            os.chdir(tmp)
            model.write()
        except Exception as exc:  # hls4ml raises bare Exceptions for what it cannot write
            raise Hls4mlError(f"hls4ml could not write the project: {type(exc).__name__}: {exc}") from exc
        finally:
            os.chdir(cwd)
        root = Path(tmp) / PROJECT_DIR
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            plan.add(path.relative_to(root).as_posix(), path.read_bytes())
    plan.add(MAP_FILE, json.dumps(tensor_map(graph, io, reuse, layer_reuse), indent=1) + "\n")
    return plan
