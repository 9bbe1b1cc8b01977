"""The hls4ml backend: a lowered graph -> an hls4ml project (``hls4ml/`` in the build folder).

The graph is first put into hls4ml's semantics by :func:`fpgac.backends.hls4ml.lower.lower`; this module
maps each lowered node onto one hls4ml layer through hls4ml's public Python API
(``ModelGraph.from_layer_list`` with a layer list and a config dict, as its converters build them) and
never edits hls4ml's output. Every layer gets its types from the IR: weight, bias, accumulator
(``accum_t``) and result formats with their rounding and overflow modes, table types for activations;
plus reuse factor, strategy (Latency at reuse 1, Resource otherwise) and I/O type. Layers are
channels-last (``data_format='channels_last'``, weights transposed here), matching the explicit layouts
of the lowered graph; hls4ml's own channels-first conversion pass never runs.

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


@dataclass
class Design:
    """What hls4ml is given, and where each IR value ends up in its project."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    layer_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensors: dict[str, str] = field(default_factory=dict)  # IR value name -> hls4ml tensor (layer) name
    shapes: dict[str, list[int]] = field(default_factory=dict)  # hls4ml tensor name -> its shape
    traced: dict[str, str] = field(default_factory=dict)  # hls4ml layer name -> IR value name


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


def design(graph: Graph, reuse: int = 1) -> Design:
    """The hls4ml layer list and per-layer config of a lowered graph (only its types come from hls4ml)."""
    d = Design()
    names = CNames(_RESERVED)
    for value in graph.inputs:
        name = names.claim(value.name)
        d.layers.append({"class_name": "InputLayer", "name": name, "input_shape": _hls_shape(value)})
        d.layer_config[name] = {"Precision": {"result": precision(value.type.format)}}
        d.tensors[value.name], d.shapes[name] = name, _hls_shape(value)
    for node in graph.nodes:
        src = d.tensors[node.inputs[0].name]
        if node.op == "transpose" or (node.op == "reshape" and d.shapes[src] == _hls_shape(node.output)):
            d.tensors[node.output.name] = src  # the memory order is unchanged: no hls4ml layer
            continue
        name = names.claim(node.name)
        layer, prec = _layer(node, d, reuse)
        layer.update(name=name, inputs=[d.tensors[v.name] for v in node.inputs])
        prec["result"] = precision(node.output.type.format)
        d.layers.append(layer)
        d.layer_config[name] = {"Precision": prec, "ReuseFactor": reuse, "Trace": True}
        d.tensors[node.output.name], d.shapes[name] = name, _hls_shape(node.output)
        d.traced[name] = node.output.name
    return d


def _layer(node: Node, d: Design, reuse: int) -> tuple[dict[str, Any], dict[str, Any]]:
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
        return _pool(node), {"accum": precision(fx)}
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
    if node.op == "relu":
        return {"class_name": "Activation", "activation": "relu"}, {}
    if node.op == "clip":
        return {"class_name": "Activation", "activation": f"relu{int(a['max'])}"}, {}
    if node.op == "leaky_relu":
        alpha = node.params["alpha"]
        layer = {"class_name": "LeakyReLU", "activation": "leaky_relu", "activ_param": float(alpha.data)}
        return layer, {"param": precision(alpha.format)}
    if node.op == "add":
        return {"class_name": "Merge", "op": "add"}, {}
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


def _pool(node: Node) -> dict[str, Any]:
    """hls4ml pools floor-mode windows over the padded input; ceil mode becomes extra end padding (the
    padding of max pooling is the type's minimum, which never beats a real value in the window)."""
    a, x = node.attrs, node.inputs[0]
    c, h, w = x.shape
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    out_h, out_w = node.output.shape[1:]
    top, left, bottom, right = a["pads"]
    bottom = max(bottom, (out_h - 1) * sh + kh - h - top)
    right = max(right, (out_w - 1) * sw + kw - w - left)
    return {
        "class_name": "MaxPooling2D", "data_format": "channels_last", "in_height": h, "in_width": w,
        "n_filt": c, "pool_height": kh, "pool_width": kw, "stride_height": sh, "stride_width": sw,
        "pad_top": top, "pad_bottom": bottom, "pad_left": left, "pad_right": right,
        "out_height": out_h, "out_width": out_w, "count_pad": False,
    }  # fmt: skip


def config(
    d: Design, board: Board, io: str, output_dir: str, reuse: int = 1, weights_txt: bool = False
) -> dict[str, Any]:
    """The hls4ml configuration dict: the Vitis backend for the board's part and clock.

    Weights are in headers (``weights_txt=False``), so the project is self-contained and can be moved;
    hls4ml's text weights compile much faster for large layers but are read from an absolute path.
    """
    import hls4ml

    if io not in IO_TYPES:
        raise Hls4mlError(f"hls4ml backend: --io {io} is not implemented yet; use --io parallel")
    backend = hls4ml.backends.get_backend("Vitis")
    cfg = backend.create_initial_config(
        part=board.part,
        clock_period=round(board.clock_period_ns, 6),
        io_type=IO_TYPES[io],
        write_weights_txt=False,
    )
    # TraceOutput: every layer's output is kept for trace() (only in C-simulation: #ifndef __SYNTHESIS__).
    cfg.update(Backend="Vitis", OutputDir=output_dir, ProjectName=PROJECT, TraceOutput=True)
    cfg["HLSConfig"] = {
        "Model": {
            "Precision": "ap_fixed<16,6>",  # every layer's types are set below; this default is never used
            "ReuseFactor": reuse,
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
    (kernel = stride, no padding), and relu6/relu1 have no stream kernel (its C++ does not compile). Conv
    padding is fine: hls4ml inserts zero-padding layers itself."""
    if io != "stream":
        return
    for node in graph.nodes:
        a = node.attrs
        if node.op == "clip":
            raise Hls4mlError(
                f"hls4ml backend: node {node.name!r} ({node.op}): hls4ml has no io_stream relu6/relu1; "
                "use --io parallel"
            )
        if node.op == "max_pool" and (any(a["pads"]) or a["ceil_mode"] or a["kernel"] != a["strides"]):
            raise Hls4mlError(
                f"hls4ml backend: node {node.name!r} ({node.op}): hls4ml's io_stream pooling needs "
                "kernel = stride and no padding; use --io parallel"
            )


def model_graph(
    graph: Graph, board: Board, io: str, output_dir: str, reuse: int = 1, weights_txt: bool = False
) -> Any:
    """The hls4ml ``ModelGraph`` of a lowered graph, with ``output_dir`` as its project folder."""
    from hls4ml.model.graph import ModelGraph

    check_io(graph, io)
    d = design(graph, reuse)
    outputs = [d.tensors[v.name] for v in graph.outputs]
    inputs = [d.tensors[v.name] for v in graph.inputs]
    try:
        cfg = config(d, board, io, output_dir, reuse, weights_txt)
        return ModelGraph.from_layer_list(cfg, d.layers, inputs, outputs)
    except (ValueError, KeyError, AttributeError, TypeError, RuntimeError, AssertionError) as exc:
        raise Hls4mlError(f"hls4ml rejected the model: {type(exc).__name__}: {exc}") from exc


def tensor_map(graph: Graph, reuse: int = 1) -> dict[str, Any]:
    """``fpgac.json``: how IR values map onto the project's inputs, outputs and traced layers."""
    d = design(graph, reuse)
    value = {v.name: v for v in graph.values()}

    def entry(name: str) -> dict[str, Any]:
        v = value[name]
        return {"value": name, "tensor": d.tensors[name], "layout": list(v.type.layout or range(v.type.rank))}

    return {
        "project": PROJECT,
        "inputs": [entry(v.name) for v in graph.inputs],
        "outputs": [entry(v.name) for v in graph.outputs],
        "traced": {layer: entry(name) for layer, name in d.traced.items()},
    }


def hls4ml_plan(graph: Graph, board: Board, io: str, reuse: int = 1) -> BuildPlan:
    """The hls4ml project of a lowered graph as a plan (written by hls4ml into a temporary folder)."""
    plan = BuildPlan()
    with tempfile.TemporaryDirectory(prefix="fpgac-hls4ml-") as tmp:
        # hls4ml records OutputDir in its hls4ml_config.yml: written from the temporary folder as the
        # relative "hls4ml", it is right for the build folder (no temporary path leaks into the project).
        model = model_graph(graph, board, io, PROJECT_DIR, reuse)
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
    plan.add(MAP_FILE, json.dumps(tensor_map(graph, reuse), indent=1) + "\n")
    return plan
