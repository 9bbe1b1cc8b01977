"""The Vitis HLS backend: a quantized graph -> a C++ project (``hls/`` in the build folder).

``vitis_plan(graph, board, io)`` reads the IR (never mutates it) and returns a :class:`BuildPlan` with a
top function calling one function per layer, every type as an ``ap_fixed`` typedef named after its layer,
constants in per-layer headers (the weights of layers named in ``offchip``: in ``weights.bin``, read
through m_axi ports; see weight_image.py), a C++ testbench, ``build.tcl`` for ``vitis_hls``, a README,
and ``fpgac.json`` (IR value -> C identifier -> trace label, read by the C-simulation as hls4ml builds'
map is). Text comes from the Jinja2 templates in ``fpgac/hls_templates`` (``StrictUndefined``: a missing
variable is an error, not an empty string); the kernels are the hand-written ``fpgac_kernels.h``, copied
verbatim. Model names pass through :mod:`fpgac.backends.cnames` before reaching any generated text.
Output is deterministic: nothing depends on time, paths or dict order beyond the graph's own.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, BinaryIO

import jinja2
import numpy as np

from fpgac import __version__
from fpgac.analysis.estimate import OFFCHIP_WORD_BITS, SPILL_BURST, rom_word, uram_word, weight_memory
from fpgac.backends.cnames import CNames, c_identifier, comment_text
from fpgac.backends.plan import BuildPlan
from fpgac.backends.vitis import levels as vitis_levels
from fpgac.backends.vitis import stream as vitis_stream
from fpgac.backends.vitis import weight_image
from fpgac.backends.vitis.ccode import Array, Ctx, ExternalArray, VitisError
from fpgac.backends.vitis.layers import LAYER_SUFFIXES, emit_layer
from fpgac.backends.vitis.testbench import testbench_data
from fpgac.backends.vitis.weights import COMPRESSED_SUFFIXES
from fpgac.boards import Board
from fpgac.ir.graph import Graph, Node, Value
from fpgac.ir.levels import is_levelled, level_count
from fpgac.ir.types import Fixed

TOP = "fpgac_top"
IO_STYLES = ("parallel", "stream")
KERNEL_HEADERS = ("fpgac_kernels.h", "fpgac_trace.h")
STREAM_HEADERS = ("fpgac_stream.h", "fpgac_pool.h")
COMPRESSED_HEADER = "fpgac_compressed.h"  # only in projects with compressed weights (weights.py)
OFFCHIP_HEADER = "fpgac_offchip.h"  # only in projects with off-chip weights (weight_image.py)
SPILL_HEADER = "fpgac_spill.h"  # only in projects with spilled FIFOs (stream.py)
OOD_HEADER = "fpgac_ood.h"  # only in projects with an OOD monitor (passes/ood.py)
MAP_FILE = "fpgac.json"  # the name map, named as in hls4ml projects
# Names the generated code defines itself; model names never take them.
_RESERVED = (
    TOP, "main", "defines", "layers", "read_double", "count", "in", "out", "trace", "argc", "argv", "token",
    "y", "i", "n", "v", "t", "src", "best", "acc", *(f"x{k}" for k in range(64)), *vitis_stream.RESERVED,
)  # fmt: skip


@dataclass(frozen=True)
class ValueInfo:
    """A graph value as the C++ sees it: array name, type name, size."""

    name: str
    type: str
    size: int
    fmt: Fixed


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("fpgac", "hls_templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _fixed(value: Value) -> Fixed:
    fmt = value.type.format
    if not isinstance(fmt, Fixed):
        raise VitisError(f"value {value.name!r} is {fmt}, not fixed point: quantize the graph first")
    return fmt


def _shape(value: Value) -> str:
    return "(" + ", ".join(str(d) for d in value.shape) + ")"


def design(
    graph: Graph,
    io: str = "parallel",
    reuse: Mapping[str, int] | None = None,
    board: Board | None = None,
    offchip: Set[str] = frozenset(),
    lanes: vitis_stream.Lanes | None = None,
    uram: Set[str] = frozenset(),
    uram_rows: Set[str] = frozenset(),
    spills: frozenset[str] = frozenset(),
    lutram_rows: Set[str] = frozenset(),
) -> dict[str, Any]:
    """Everything the templates need, as plain data (the name map, :func:`name_map`, is made from it).

    ``lanes`` maps the names of channel-folded stream values to the channels each beat carries; ``uram``
    names the layers whose weights are preloaded into UltraRAM; ``spills`` the fork FIFOs kept in
    external memory (io stream); ``lutram_rows`` the window layers whose line buffers are in LUT RAM."""
    if io not in IO_STYLES:
        raise VitisError(f"unknown io style {io!r}; use one of {list(IO_STYLES)}")
    stream = io == "stream"
    _check_offchip(graph, io, offchip)
    _check_uram(graph, io, offchip, uram)
    names = CNames(_RESERVED)
    if level_count(graph) > 1:
        names.claim(vitis_levels.LEVEL_PORT)  # the top's rank level port: no model name may take it
    values: dict[int, ValueInfo] = {}
    inputs = []
    for v in graph.inputs:
        name = names.claim(v.name, ("_t",))
        values[id(v)] = ValueInfo(name, f"{name}_t", v.type.size, _fixed(v))
        inputs.append(
            {
                "name": name,
                "type": f"{name}_t",
                "size": v.type.size,
                "ap_type": _fixed(v).ap_type(),
                "comment": comment_text(v.name),
                "shape": _shape(v),
                "value_name": v.name,
                "beats": vitis_stream.beats(v)[0],
                "channels": vitis_stream.beats(v)[1],
                "stream_type": vitis_stream.port_stream_type(f"{name}_t", v),
            }
        )
    layers = []
    external: list[ExternalArray] = []  # off-chip weights, in graph order
    external_nodes: list[str] = []
    for node in graph.nodes:
        layer = names.claim(node.name, LAYER_SUFFIXES + COMPRESSED_SUFFIXES)
        out_fmt = _fixed(node.output)
        out = ValueInfo(f"{layer}_out", f"{layer}_out_t", node.output.type.size, out_fmt)
        ins = [values[id(v)] for v in node.inputs]
        args: list[vitis_stream.LayerArg] = [
            {"name": f"x{k}", "type": i.type, "size": i.size, "value": i.name, "v": v}
            for k, (i, v) in enumerate(zip(ins, node.inputs, strict=True))
        ]
        mode = vitis_stream.layer_mode(node) if stream else "array"
        layer_reuse = (reuse or {}).get(node.name, 1)
        memories = (node.name in offchip, node.name in uram_rows)  # its weights off chip, rows in URAM
        ctx = _context(node, layer, args, ins, out, mode, layer_reuse, memories, lanes, board)
        ctx = replace(ctx, uram=node.name in uram, lutram_rows=node.name in lutram_rows)
        code = emit_layer(ctx)
        memory = [code.external] if code.external else []
        external += memory
        external_nodes += [node.name for _ in memory]
        values[id(node.output)] = out
        body = code.body.rstrip()
        scalars = [vitis_levels.LEVEL_PORT] if is_levelled(node) else []  # run-time rank level
        if mode == "array":
            signature = (
                f"static void {layer}("
                + "".join(f"const {a['type']} {a['name']}[{a['size']}], " for a in args)
                + f"{out.type} y[{out.size}]"
                + "".join(f", int {s}" for s in scalars)
                + ")"
            )
        else:
            pointers = [f"const {m.ctype}* {m.name}" for m in memory] + [f"int {s}" for s in scalars]
            signature = vitis_stream.signature(layer, mode, args, out.type, node.output, pointers, lanes)
            if mode == "buffered":
                body = vitis_stream.buffered_body(body, args, out.type, node.output, lanes)
        pragmas = storage_pragmas(node, code.arrays, io, layer_reuse, board)
        pragmas += uram_pragmas(node, layer, layer_reuse) if ctx.uram else []
        layers.append(
            {
                "name": layer,
                "op": node.op,
                "mode": mode,
                "comment": comment_text(node.name),
                "shape": _shape(node.output),
                "size": out.size,
                "out": out.name,
                "out_type": out.type,
                "out_ap_type": out_fmt.ap_type(),
                "typedefs": code.typedefs,
                "arrays": code.arrays,
                "config": code.config,
                "signature": signature,
                "body": "\n".join([*pragmas, body]),
                "args": [{k: a[k] for k in ("name", "type", "size", "value")} for a in args],
                "value_name": node.output.name,
                "memory": memory,
                "scalars": scalars,
            }
        )
    outputs: list[dict[str, Any]] = []
    ports: list[dict[str, Any]] = []
    for p in inputs:
        doc = f'input "{p["comment"]}" {p["shape"]} {p["ap_type"]}'
        decl = f"{p['stream_type']}& {p['name']}" if stream else f"const {p['type']} {p['name']}[{p['size']}]"
        ports.append({"name": p["name"], "decl": decl, "doc": doc, "memory": False})
    for k, v in enumerate(graph.outputs):
        info = values[id(v)]
        port = names.claim(f"out_{v.name}")
        beat_count, channels = vitis_stream.beats(v)
        outputs.append(
            {
                "port": port,
                "value": info.name,
                "type": info.type,
                "size": info.size,
                "index": k,
                "beats": beat_count,
                "channels": channels,
            }
        )
        doc = f'output "{comment_text(v.name)}" {_shape(v)} {info.fmt.ap_type()}'
        s_type = vitis_stream.port_stream_type(info.type, v)
        decl = f"{s_type}& {port}" if stream else f"{info.type} {port}[{info.size}]"
        outputs[-1]["stream_type"] = s_type
        ports.append({"name": port, "decl": decl, "doc": doc, "memory": False})
    blocks = weight_image.layout(external)
    memory_ports = [{**b.to_json(), "node": n} for b, n in zip(blocks, external_nodes, strict=True)]
    for m in external:
        decl, doc = f"const {m.ctype}* {m.name}", f"off chip (m_axi): {m.comment}"
        ports.append({"name": m.name, "decl": decl, "doc": doc, "memory": True})
    if spills and not stream:
        raise VitisError("spilled FIFOs need io stream (io parallel has no FIFOs)")
    parts = {"inputs": inputs, "layers": layers, "outputs": outputs}
    wiring = vitis_stream.wire(graph, parts, names, lanes, spills) if stream else vitis_stream.Wiring([], [])
    for s in wiring.spills:  # after the weights' ports: the testbench passes them in this order
        ctype = s.region.ctype
        doc = f"spilled FIFOs {comment_text(', '.join(s.fifos))}: their region of scratch memory (m_axi)"
        ports.append({"name": s.write, "decl": f"{ctype}* {s.write}", "doc": doc, "memory": True})
        for read, fifo in zip(s.reads, s.fifos, strict=True):
            doc = f"spilled FIFO {comment_text(fifo)}: read back from its region (the write port's address)"
            ports.append({"name": read, "decl": f"const {ctype}* {read}", "doc": doc, "memory": True})
    levels = level_count(graph)
    if levels > 1:
        doc = f"rank level 0..{levels - 1} (0: the largest), read at the start of each sample (s_axilite)"
        ports.append({"name": vitis_levels.LEVEL_PORT, "decl": vitis_levels.LEVEL_ARG, "doc": doc,
                      "memory": False, "scalar": True})  # fmt: skip
    compressed = any(p.encoding is not None for n in graph.nodes for p in n.params.values())
    data = {
        "inputs": inputs,
        "layers": layers,
        "outputs": outputs,
        "ports": ports,
        "top": TOP,
        "io": io,
        "compressed": compressed,
        "levels": levels,
        "ood": any(n.op == "patch_energy" for n in graph.nodes),
        "memory_ports": memory_ports,
        "memory_word_bits": OFFCHIP_WORD_BITS,
        "external": external,
        "weights_file": weight_image.WEIGHTS_FILE,
        "weights_bytes": blocks[-1].end if blocks else 0,
        "weights_align": weight_image.ALIGN,
        "spill_ports": [s.to_json() for s in wiring.spills],
        "spill_bytes": wiring.spills[-1].region.end if wiring.spills else 0,
        "spill_burst": SPILL_BURST,
    }
    return {**data, "stream_top": wiring.lines, "forks": wiring.forks}


def _check_offchip(graph: Graph, io: str, offchip: Set[str]) -> None:
    """Off-chip weights: layers with a weight, in io stream (its kernels, fpgac_offchip.h, read their
    weights through m_axi ports of a dataflow design; the io parallel style wires weights into
    multipliers, which is what it is for)."""
    if not offchip:
        return
    if io != "stream":
        raise VitisError(f"off-chip weights need --io stream (io {io} keeps every weight on chip)")
    weighted = {n.name for n in graph.nodes if "weight" in n.params}
    unknown = sorted(set(offchip) - weighted)
    if unknown:
        raise VitisError(f"off-chip weights asked for {unknown}: not layers with a weight in this graph")


def _check_uram(graph: Graph, io: str, offchip: Set[str], uram: Set[str]) -> None:
    """URAM weights: plain (uncompressed, not rank-levelled) dense and conv weights kept on chip, in io
    stream (they are preloaded through an m_axi port, as off-chip weights are read)."""
    if not uram:
        return
    if io != "stream":
        raise VitisError(f"URAM weights need --io stream (io {io} wires its weights into the multipliers)")
    for name in sorted(uram):
        node = next((n for n in graph.nodes if n.name == name), None)
        weight = node.params.get("weight") if node is not None else None
        if node is None or weight is None or node.op not in ("dense", "conv"):
            raise VitisError(f"URAM weights asked for {name!r}: not a dense or conv layer of this graph")
        if weight.encoding is not None or is_levelled(node) or name in offchip:
            what = "only plain on-chip weights can be preloaded into URAM"
            raise VitisError(f"node {name!r} ({node.op}): {what}")


def uram_pragmas(node: Node, layer: str, reuse: int) -> list[str]:
    """A URAM layer's weight memory (``<layer>_weight_uram``): words of :func:`uram_word` weights, as
    :func:`uram_memory` counts them, bound to UltraRAM."""
    weight = node.params["weight"]
    assert isinstance(weight.format, Fixed)  # the emitter refuses a float weight
    memory, factor = f"{layer}_weight_uram", uram_word(weight.data.size, weight.format.width, reuse)
    return [
        f"  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable={memory} cyclic factor={factor})",
        f"  FPGAC_PRAGMA(HLS BIND_STORAGE variable={memory} type=ram_1p impl=uram)",
    ]


def _context(
    node: Node,
    layer: str,
    args: list[vitis_stream.LayerArg],
    ins: list[ValueInfo],
    out: ValueInfo,
    mode: str,
    reuse: int,
    memories: tuple[bool, bool],
    lanes: vitis_stream.Lanes | None,
    board: Board | None,
) -> Ctx:
    """The emitter's view of a layer: array names, or (beat mode) the beats' data and the channel index.

    A beat layer's inputs and output travel in the same beats (one fold). ``memories``: its weights off
    chip, its line buffer in URAM."""
    offchip, uram_rows = memories
    in_types, in_fmts = [i.type for i in ins], [i.fmt for i in ins]
    if mode == "beat":
        p, g, w = vitis_stream.fold(node.output, lanes)
        if any(vitis_stream.fold(v, lanes)[1] != g for v in node.inputs):
            raise VitisError(f"node {node.name!r} ({node.op}): its inputs and output must be folded alike")
        in_names = [f"{a['name']}_px.data" for a in args]
        elem = "c" if g == 1 else "lane"
        y_data, beats = "y_px.data", (p, g * w)
        return Ctx(node, layer, in_names, in_types, in_fmts, y_data, out.type, out.fmt, reuse, beats, g, elem)
    if mode in ("pixel", "permute"):
        _check_pixel_lanes(node, lanes)
    names = [a["name"] for a in args]
    stream = mode != "array"
    groups = vitis_stream.fold(node.output, lanes)[1] if stream else 1  # a window layer's output beats
    in_groups = vitis_stream.fold(node.inputs[0], lanes)[1] if stream and node.inputs else 1
    out_name, elem = "y", "i"
    return Ctx(node, layer, names, in_types, in_fmts, out_name, out.type, out.fmt, reuse, None, groups, elem,
               stream, offchip, board, uram_rows, in_groups=in_groups)  # fmt: skip


def _check_pixel_lanes(node: Node, lanes: vitis_stream.Lanes | None) -> None:
    """A pixel layer (a concatenation over channels) copies beats and a permute layer reorders them: its
    inputs and output carry the same lanes, or all travel whole (the fitting's groups,
    :mod:`fpgac.analysis.lanes`, make it so)."""
    folds = [vitis_stream.fold(v, lanes) for v in (*node.inputs, node.output)]
    if len({w for _, _, w in folds}) > 1 and any(g > 1 for _, g, _ in folds):
        raise VitisError(f"node {node.name!r} ({node.op}): its inputs and output must carry equal lanes")


def storage_pragmas(node: Node, arrays: list[Array], io: str, reuse: int, board: Board | None) -> list[str]:
    """Where a layer's weights live: the storage the estimate counts (:func:`weight_memory`).

    Reuse 1: every weight is a constant wired into its own multiplier (partitioned completely). Reuse R > 1:
    one word of :func:`rom_word` weights feeds all multipliers per cycle, so the array is reshaped
    cyclically into :func:`rom_depth` words, bound to LUT ROM or block RAM as :func:`weight_memory` decides
    (block RAM only when the ROM fills its blocks, so a shallow, wide ROM at a small R is LUT ROM).
    """
    pragmas = []
    for array in arrays:
        if not array.name.endswith("_weight"):
            continue
        size = len(array.values)
        if reuse == 1:
            pragmas.append(f"  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable={array.name} complete)")
            continue
        fmt = node.params["weight"].format
        assert isinstance(fmt, Fixed)  # the emitter refuses a float weight
        bits = 1 if array.ctype == "bool" else fmt.width  # an XNOR layer's sign bits (layers._sign_bits)
        impl = "lutram"
        if board is not None:
            impl, _ = weight_memory(size, bits, reuse, io, board)
        factor = rom_word(size, reuse)
        pragmas.append(f"  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable={array.name} cyclic factor={factor})")
        pragmas.append(f"  FPGAC_PRAGMA(HLS BIND_STORAGE variable={array.name} type=rom_1p impl={impl})")
    return pragmas


def vitis_plan(
    graph: Graph,
    board: Board,
    io: str = "parallel",
    reuse: Mapping[str, int] | None = None,
    *,
    model: str = "",
    samples: Sequence[np.ndarray] | None = None,
    offchip: frozenset[str] = frozenset(),
    lanes: vitis_stream.Lanes | None = None,
    uram: frozenset[str] = frozenset(),
    uram_rows: frozenset[str] = frozenset(),
    spills: frozenset[str] = frozenset(),
    lutram_rows: frozenset[str] = frozenset(),
) -> BuildPlan:
    """The ``hls/`` project for ``graph`` on ``board`` (paths relative to ``hls/``).

    The testbench checks the outputs of ``samples`` (the calibration batch; one zero sample without), see
    testbench.py. The layers named in ``offchip`` keep their weights in external memory: the top function
    reads them through m_axi ports (bundle ``gmem_w``) from the image written as ``weights.bin``
    (weight_image.py). The layers named in ``uram`` copy theirs from the same image into UltraRAM once, at
    start (``fpgac::preload``); the off-chip convs named in ``uram_rows`` keep their line buffers in URAM
    and the window layers named in ``lutram_rows`` theirs in LUT RAM (the fitting's choices); the fork
    FIFOs named in ``spills`` live in scratch memory the testbench allocates (``fpgac_spill.h``).
    """
    env = _templates()
    # The expected outputs first: simulating a large model's samples takes memory for its largest layer,
    # which the project's weights (the image, the layers' arrays) should not be holding alongside.
    tb_data = testbench_data(graph, samples)
    data = design(
        graph, io, reuse, board, offchip, lanes, uram, uram_rows, spills=spills, lutram_rows=lutram_rows
    )
    common = {
        "version": __version__,
        "model": comment_text(model or graph.name),
        "graph_name": comment_text(graph.name),
        "mark": "//",
        **data,
    }
    plan = BuildPlan()
    plan.add("firmware/defines.h", env.get_template("defines.h.j2").render(common))
    plan.add("firmware/layers.h", env.get_template("layers.h.j2").render(common))
    plan.add(f"firmware/{TOP}.h", env.get_template("top.h.j2").render(common))
    plan.add(f"firmware/{TOP}.cpp", env.get_template("top.cpp.j2").render(common))
    weights = env.get_template("weights.h.j2")
    for layer in data["layers"]:
        if layer["arrays"]:
            # Rendered as the file is written: a big model's literals would be gigabytes of text.
            write = functools.partial(_write_streamed, weights, {**common, "layer": layer})
            plan.add(f"firmware/weights/{layer['name']}.h", write)
    kernels = resources.files("fpgac").joinpath("hls_templates")
    headers = KERNEL_HEADERS + (STREAM_HEADERS if io == "stream" else ())
    headers += (COMPRESSED_HEADER,) if data["compressed"] else ()
    headers += (OFFCHIP_HEADER,) if data["memory_ports"] else ()
    headers += (SPILL_HEADER,) if data["spill_ports"] else ()
    headers += (vitis_levels.LEVELS_HEADER,) if data["levels"] > 1 else ()
    headers += (OOD_HEADER,) if data["ood"] else ()
    for header in headers:
        plan.add(f"firmware/{header}", kernels.joinpath(header).read_bytes())
    if data["external"]:
        plan.add(weight_image.WEIGHTS_FILE, weight_image.pack(data["external"]))
    plan.add("tb/testbench.cpp", env.get_template("testbench.cpp.j2").render(common))
    for name, text in tb_data.items():
        plan.add(f"tb/{name}", text)
    project = f"fpgac_{c_identifier(graph.name or 'model')}"
    tcl = {
        **common,
        "mark": "#",
        "project": project,
        "part": board.part,
        "period_ns": f"{board.clock_period_ns:.4g}",
    }
    plan.add("build.tcl", env.get_template("build.tcl.j2").render(tcl))
    readme = {**tcl, "mark": ">", "board": board.name, "clock_mhz": f"{board.clock_mhz:g}"}
    plan.add("README.md", env.get_template("README.md.j2").render(readme))
    plan.add(MAP_FILE, json.dumps(name_map(graph, data), indent=1, sort_keys=True) + "\n")
    return plan


def _write_streamed(template: jinja2.Template, context: dict[str, Any], file: BinaryIO) -> None:
    """Render ``template`` into ``file`` piece by piece (the pieces :meth:`Array.rows` yields)."""
    template.stream(context).dump(file, encoding="utf-8")


def name_map(graph: Graph, data: Mapping[str, Any]) -> dict[str, Any]:
    """``fpgac.json``: each IR value's C identifier and the label of its trace lines (the same text).

    The C-simulation reads it to key the traced values by IR name, so it never regenerates the code.
    """
    inputs = [{"value": p["value_name"], "c_name": p["name"], "port": p["name"]} for p in data["inputs"]]
    outputs = [
        {"value": v.name, "c_name": o["value"], "port": o["port"]}
        for v, o in zip(graph.outputs, data["outputs"], strict=True)
    ]
    traced = {p["name"]: {"value": p["value_name"], "c_name": p["name"]} for p in data["inputs"]}
    traced.update(
        {layer["out"]: {"value": layer["value_name"], "c_name": layer["out"]} for layer in data["layers"]}
    )
    names = {"top": TOP, "inputs": inputs, "outputs": outputs, "traced": traced}
    if data["memory_ports"]:
        names["weights"] = {
            "file": data["weights_file"],
            "bytes": data["weights_bytes"],
            "align": data["weights_align"],
            "blocks": data["memory_ports"],
        }
    if data["spill_ports"]:
        names["spills"] = {"bytes": data["spill_bytes"], "regions": data["spill_ports"]}
    return names
