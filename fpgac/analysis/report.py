"""Build reports: ``report.json`` for tools and ``report.md`` for people, from the built graph.

``weight_bits`` counts everything the hardware must store for a layer: every param (weights, biases,
lookup tables, reciprocals) at its format's width; a float param counts its float width; an XNOR layer's
weights are sign bits, one each (:mod:`fpgac.ir.bipolar`). A compressed
weight counts what its encoding stores (:func:`fpgac.ir.encoding.storage_bits`): kept values or codebook
indices, relative indices and fillers of a sparse tensor, the codebook, Huffman bitstreams and their
decoder tables; ``weight_storage`` lists those parts per layer. Next to it, ``float32_bits`` is what the
same params cost as float32, so the compression ratio is honest.
"""

from __future__ import annotations

import json
from typing import Any

from fpgac.analysis.cost import node_cost
from fpgac.analysis.estimate import memory_cost
from fpgac.analysis.fidelity import fidelity_markdown
from fpgac.analysis.level_report import levels_markdown
from fpgac.analysis.ood_report import ood_markdown
from fpgac.analysis.rounding_points import rounding_points_markdown
from fpgac.boards import Board
from fpgac.ir.bipolar import is_xnor_layer
from fpgac.ir.boundary import array_shape, layout_name, output_array_shape, output_layout_name
from fpgac.ir.encoding import storage_bits, streams
from fpgac.ir.graph import Graph, Node, Param, Value

NAMED = 8  # spilled FIFOs or moved line buffers report.md names (report.json lists all: DenseNet spills 114)


def node_weight_bits(node: Node) -> int:
    bits = {key: storage_bits(param)["total"] for key, param in node.params.items()}
    if is_xnor_layer(node):
        bits["weight"] = node.params["weight"].data.size
    return sum(bits.values())


def _coded(param: Param) -> bool:
    return param.encoding is not None and "index" in param.encoding.huffman


def _index_rom(param: Param, board: Board) -> dict[str, int]:
    """The index ROM of a Huffman-coded tensor (32-bit words, as the Vitis backend stores it) next to the
    packed fixed-width indices it replaces: bits and BRAM18s (0 when small enough for LUT ROM)."""
    assert param.encoding is not None
    plain = int(streams(param)["index"].size) * param.encoding.index_bits
    coded = storage_bits(param)["indices"]
    out = {}
    for key, bits in (("plain", plain), ("huffman", coded)):
        words = -(-bits // 32)
        out[f"{key}_bits"] = bits
        out[f"{key}_bram18"] = memory_cost(words, 32, board, allow_uram=False).bram18
    return out


def _weight_format(node: Node) -> str | None:
    for key in ("weight", "scale", "slope", "table"):
        if key in node.params:
            return str(node.params[key].format)
    return None


def build_report(graph: Graph, *, model: str, board: Board, options: dict[str, Any]) -> dict[str, Any]:
    """The content of ``report.json``."""
    layers: list[dict[str, Any]] = []
    for node in graph.nodes:
        cost = node_cost(node)
        layers.append(
            {
                "name": node.name,
                "op": node.op,
                "output_shape": list(node.output.shape),
                "macs": cost.macs,
                "params": cost.params,
                "weight_format": _weight_format(node),
                "output_format": str(node.output.type.format),
                "accumulator_format": str(node.attrs["acc"]) if "acc" in node.attrs else None,
                "weight_bits": node_weight_bits(node),
            }
        )
        compressed = {k: storage_bits(p) for k, p in node.params.items() if p.encoding is not None}
        if compressed:
            layers[-1]["weight_storage"] = compressed
            roms = {k: _index_rom(p, board) for k, p in node.params.items() if _coded(p)}
            if roms:
                layers[-1]["index_rom"] = roms
    params = sum(layer["params"] for layer in layers)
    monitor = {"ood": graph.metadata["ood"]} if "ood" in graph.metadata else {}
    tuned = {"finetune": graph.metadata["finetune"]} if "finetune" in graph.metadata else {}
    return {
        "model": model,
        "board": board.name,
        "part": board.part,
        "clock_mhz": board.clock_mhz,
        "macs": sum(layer["macs"] for layer in layers),
        "params": params,
        "weight_bits": sum(layer["weight_bits"] for layer in layers),
        "float32_bits": 32 * sum(p.data.size for n in graph.nodes for p in n.params.values()),
        "inputs": {v.name: _input(graph, v) for v in graph.inputs},
        "outputs": {v.name: _output(graph, i) for i, v in enumerate(graph.outputs)},
        "options": options,
        "layers": layers,
        "compression": graph.metadata.get("compression", []),
        **monitor,
        **tuned,
    }


def _input(graph: Graph, value: Value) -> dict[str, Any]:
    """A graph input's shape and format, and the layout of the arrays it takes (``NHWC`` for a tf2onnx
    or Keras image model, whose transpose to channels first the build absorbed: fpgac.ir.boundary)."""
    return {
        "shape": list(value.shape),
        "format": str(value.type.format),
        "layout": layout_name(graph, value),
        "array_shape": ["N", *array_shape(graph, value)],
    }


def _output(graph: Graph, index: int) -> dict[str, Any]:
    """A graph output's shape and format, and the layout of the arrays it gives (``NHWC`` for a tf2onnx
    feature map, whose transpose back to channels last the build absorbed: fpgac.ir.boundary)."""
    value = graph.outputs[index]
    return {
        "shape": list(value.shape),
        "format": str(value.type.format),
        "layout": output_layout_name(graph, index),
        "array_shape": ["N", *output_array_shape(graph, index)],
    }


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def report_markdown(report: dict[str, Any]) -> str:
    """A readable summary: totals, then one table row per layer."""
    ratio = report["float32_bits"] / report["weight_bits"] if report["weight_bits"] else 1.0
    lines = [
        f"# fpgac build of `{report['model']}`",
        "",
        f"- board: **{report['board']}** (`{report['part']}`, {report['clock_mhz']:g} MHz)",
        f"- MACs per sample: {report['macs']:,}",
        f"- parameters: {report['params']:,}",
        f"- weight storage: {report['weight_bits']:,} bits ({ratio:.2f}x smaller than float32)",
        f"- options: `{json.dumps(report['options'], sort_keys=True)}`",
        *_inputs_markdown(report["inputs"]),
        *_outputs_markdown(report["outputs"]),
        *_passes_markdown(report.get("compression", [])),
        "",
        "| # | layer | op | output | MACs | params | weights | output format | accumulator |",
        "|---:|---|---|---|---:|---:|---|---|---|",
    ]
    for i, layer in enumerate(report["layers"]):
        shape = "x".join(map(str, layer["output_shape"]))
        name = layer["name"].replace("|", "\\|")
        weights, acc = layer["weight_format"] or "", layer["accumulator_format"] or ""
        lines.append(
            f"| {i} | `{name}` | {layer['op']} | {shape} | {layer['macs']:,} | {layer['params']:,} | "
            f"{weights} | {layer['output_format']} | {acc} |"
        )
    lines += _design_markdown(report)
    lines += levels_markdown(report.get("rank_levels"))
    lines += _storage_markdown(report)
    lines += ood_markdown(report.get("ood"))
    lines += fidelity_markdown(report.get("fidelity"))
    lines += rounding_points_markdown(report.get("rounding_points", []))
    return "\n".join(lines) + "\n"


def _design_markdown(report: dict[str, Any]) -> list[str]:
    """The estimate of the fitted design: fit, frame rate, utilisation, and per layer its folding."""
    if "resources" not in report:
        return []
    fit = report.get("fit", {})
    used, budget, util = report["resources"], report["budget"], report["utilization"]
    verdict = "fits" if report["fits"] else "does **not** fit"
    bound = fit.get("limit", "")
    if fit.get("limit_layer"):
        bound += f" (`{fit['limit_layer']}`)"
    lines = [
        "",
        "## Design estimate",
        "",
        f"- {verdict} {report['board']} (io {report['io']}); {report['fps']:,.1f} frames/s at "
        f"{report['clock_mhz']:g} MHz (ii {report['ii']:,} cycles), latency {report['latency_us']:,.2f} us",
        f"- fitted within {fit.get('util', 1):.0%} of each resource; faster is bounded by: {bound}"
        + (f"; target {fit['target_fps']:g} fps" if fit.get("target_fps") else ""),
        "- "
        + ", ".join(
            f"{k} {used[k]:,}/{budget[k]:,} ({util[k]:.0%})" if util[k] is not None else f"{k} {used[k]:,}"
            for k in ("dsp", "lut", "ff", "bram18", "uram")
        ),
    ]
    if report.get("offchip"):
        lines.append(
            f"- weights off chip: {len(report['offchip'])} layers, {report['offchip_bits']:,} bits a frame"
        )
    spills = report.get("spills") or []
    if spills:  # all of them in report.json
        named = _named(spills)
        lines.append(
            f"- FIFOs in external memory: {len(spills)} ({', '.join(named)}), "
            f"{report.get('spill_bits', 0):,} bits a frame"
        )
    for key, what in (("uram_rows", "URAM"), ("lutram_rows", "LUT RAM")):
        if fit.get(key):  # the fitting's choices for line buffers (report.json's fit lists them)
            lines.append(f"- line buffers in {what}: {len(fit[key])} layers ({', '.join(_named(fit[key]))})")
    lines += [f"- warning: {w}" for w in report.get("warnings", [])]
    lines += [
        "",
        "| layer | reuse | ii | bound | weights in | DSP | LUT | FF | BRAM18 | URAM |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for layer in report["layers"]:
        name = layer["name"].replace("|", "\\|")
        res = layer["resources"]
        lines.append(
            f"| `{name}` | {layer['reuse']} | {layer['ii']:,} | {layer['bound']} | {layer['memory']} | "
            + " | ".join(f"{res[k]:,}" for k in ("dsp", "lut", "ff", "bram18", "uram"))
            + " |"
        )
    return lines


def _inputs_markdown(inputs: dict[str, dict[str, Any]]) -> list[str]:
    """One line per input: the arrays it takes, in which layout, and its format."""
    return [
        f"- input `{name}`: ({', '.join(map(str, entry['array_shape']))}), input layout {entry['layout']}, "
        f"`{entry['format']}`"
        for name, entry in inputs.items()
    ]


def _outputs_markdown(outputs: dict[str, dict[str, Any]]) -> list[str]:
    """One line per output: the arrays it gives, in which layout, and its format."""
    return [
        f"- output `{name}`: ({', '.join(map(str, entry['array_shape']))}), output layout {entry['layout']}, "
        f"`{entry['format']}`"
        for name, entry in outputs.items()
    ]


def _passes_markdown(entries: list[dict[str, Any]]) -> list[str]:
    """One line per compression pass and one per layer it changed (rank or kept units, MACs)."""
    lines: list[str] = []
    for entry in entries:
        options = ", ".join(f"{k}={v}" for k, v in entry.get("options", {}).items())
        before, after = entry.get("macs_before"), entry.get("macs_after")
        total = f": MACs {before:,} -> {after:,}" if before and after is not None else ""
        lines += ["", f"Compression `{entry['pass']}({options})`{total}:", ""]
        for name, facts in entry.get("layers", {}).items():
            shown = {k: v for k, v in facts.items() if k not in ("macs_before", "macs_after", "profile")}
            what = ", ".join(f"{k} {v}" for k, v in shown.items())
            lines.append(
                f"- `{name}`: {what}; MACs {facts.get('macs_before', 0):,} -> {facts.get('macs_after', 0):,}"
            )
    return lines


def _storage_markdown(report: dict[str, Any]) -> list[str]:
    """Per compressed tensor, the bits of each stored part (what ``weight_bits`` adds up)."""
    rows = [
        (layer, key, parts)
        for layer in report["layers"]
        for key, parts in layer.get("weight_storage", {}).items()
    ]
    if not rows:
        return []
    lines = [
        "",
        "## Compressed weights",
        "",
        f"Passes: {', '.join(e['pass'] for e in report.get('compression', [])) or 'none'}. "
        "Bits per stored part (fillers: count of filler entries, included in the index and gap bits).",
        "",
        "| layer | param | values | codebook | indices | gaps | Huffman tables | fillers | total "
        "| index ROM BRAM18, packed -> Huffman |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for layer, key, parts in rows:
        name = layer["name"].replace("|", "\\|")
        tables = parts.get("index_table", 0) + parts.get("gap_table", 0)
        cells = [parts.get(k, 0) for k in ("values", "codebook", "indices", "gaps")] + [
            tables,
            parts.get("fillers", 0),
        ]
        rom = layer.get("index_rom", {}).get(key)
        bram = f"{rom['plain_bram18']} -> {rom['huffman_bram18']}" if rom else ""
        lines.append(
            f"| `{name}` | {key} | "
            + " | ".join(f"{c:,}" for c in cells)
            + f" | {parts['total']:,} | {bram} |"
        )
    return lines


def _named(names: list[str]) -> list[str]:
    """The first ``NAMED`` of ``names`` in backticks, and an ellipsis for the rest."""
    return [f"`{n}`" for n in names[:NAMED]] + (["..."] if len(names) > NAMED else [])
