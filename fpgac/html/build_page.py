"""report.html of a build folder: the estimate, the folding, the formats and the weights, as pictures.

Drawn from report.json (the same facts report.md lists) and, for the weight histograms, the built graph.
Sections for facts this page knows are drawn; every other top-level key of report.json (added by passes
such as rank allocation or an OOD monitor) gets a section of its own, rendered generically, and so do
per-layer keys this page does not show, so nothing a newer pass reports is hidden.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.atomic import write_atomic
from fpgac.errors import FpgacError
from fpgac.html import plots
from fpgac.html.page import Raw, document, esc, facts, generic, section, table
from fpgac.ir.graph import Graph
from fpgac.ir.serialize import load_graph

REPORT_JSON, REPORT_HTML = "report.json", "report.html"
RESOURCES = ("dsp", "lut", "ff", "bram18", "uram")
MAX_HISTOGRAMS = 32


class ReportError(FpgacError):
    """A folder that has no report to draw."""


# The report.json keys the sections below draw; any other key gets a generic section.
KNOWN = {
    "model", "board", "part", "clock_mhz", "macs", "params", "weight_bits", "float32_bits", "inputs",
    "outputs", "options", "layers", "compression", "backend", "io", "reuse", "io_choice", "fit",
    "resources", "latency_cycles", "ii", "latency_us", "fps", "offchip", "offchip_bits", "budget",
    "utilization", "fits", "recommended_io", "warnings", "fidelity",
}  # fmt: skip
KNOWN_LAYER = {
    "name", "op", "output_shape", "macs", "params", "weight_format", "output_format", "accumulator_format",
    "weight_bits", "weight_storage", "index_rom", "reuse", "resources", "latency_cycles", "ii", "memory",
    "bound", "offchip_bits",
}  # fmt: skip


def write_folder(folder: Path) -> Path:
    """(Re)write ``folder``/report.html from the build folder's report.json and saved graph."""
    plots.require()
    if not (folder / REPORT_JSON).is_file():
        raise ReportError(f"{folder}: neither a build folder nor a sweep folder (no {REPORT_JSON})")
    report = json.loads((folder / REPORT_JSON).read_text())
    page = render(report, load_graph(folder), source=REPORT_JSON)  # as `fpgac build` writes it
    write_atomic(folder / REPORT_HTML, page)
    return folder / REPORT_HTML


def render(report: dict[str, Any], graph: Graph | None, *, source: str) -> str:
    """The page of one build: ``report`` is report.json's content, ``graph`` the built IR (weights)."""
    plots.require()
    layers = report["layers"]
    names = [layer["name"] for layer in layers]
    body = [section("Summary", _summary(report))]
    if "resources" in report:
        body.append(section("Board utilization", _utilization(report)))
        series = {k.upper(): [float(layer["resources"][k]) for layer in layers] for k in RESOURCES}
        series = {k: v for k, v in series.items() if any(v) or k in ("DSP", "LUT")}
        body.append(section("Resources per layer (estimate)", plots.bars(names, series, xlabel="count")))
        cycles = {
            "initiation interval": [float(layer["ii"]) for layer in layers],
            "latency": [float(layer["latency_cycles"]) for layer in layers],
        }
        body.append(section("Cycles per layer", plots.bars(names, cycles, xlabel="cycles", log=True)))
    body.append(section("Formats and folding", _formats(layers)))
    if graph is not None:
        histograms = _histograms(graph)
        if histograms:
            body.append(section("Weights (values as stored)", histograms))
    body.append(section("Compression per layer", *_compression(report)))
    if report.get("fidelity"):
        body.append(section("Fidelity vs the float model", _fidelity(report["fidelity"])))
    if report.get("warnings"):
        body.append(section("Warnings", "<ul>" + "".join(f"<li>{esc(w)}</li>" for w in report["warnings"])
                            + "</ul>"))  # fmt: skip
    extra_layer = sorted({k for layer in layers for k in layer} - KNOWN_LAYER)
    if extra_layer:
        rows = [[layer["name"], *(Raw(generic(layer.get(k))) for k in extra_layer)] for layer in layers]
        body.append(section("More per-layer facts", table(["layer", *extra_layer], rows)))
    for key, value in report.items():
        if key not in KNOWN:
            body.append(section(key.replace("_", " "), generic(value)))
    return document(f"fpgac build of {report['model']}", body, source)


def _summary(report: dict[str, Any]) -> str:
    ratio = report["float32_bits"] / max(report["weight_bits"], 1)
    items: dict[str, object] = {
        "board": f"{report['board']} ({report['part']}, {report['clock_mhz']:g} MHz)",
        "MACs per sample": f"{report['macs']:,}",
        "parameters": f"{report['params']:,}",
        "weight storage": f"{report['weight_bits']:,} bits ({ratio:.1f}x below float32)",
        "passes": report.get("options", {}).get("passes", ""),
    }
    if "resources" in report:
        items["io"] = f"{report['io']} ({report.get('io_choice', '')})"
        items["estimate"] = (
            f"{'fits' if report['fits'] else 'does NOT fit'}; {report['fps']:,.1f} frames/s, "
            f"latency {report['latency_us']:,.2f} us "
            f"({report['latency_cycles']:,} cycles, ii {report['ii']:,})"
        )
    return facts(items)


def _utilization(report: dict[str, Any]) -> str:
    used, budget, util = report["resources"], report["budget"], report["utilization"]
    keys = [k for k in RESOURCES if util.get(k) is not None]
    rows = [[k.upper(), used[k], budget[k], f"{100 * util[k]:.1f}%"] for k in RESOURCES if k in used]
    chart = plots.bars(
        [k.upper() for k in keys], {"used, % of the board": [100 * util[k] for k in keys]}, xlabel="%"
    )
    return f'<div class="plots">{chart}{table(["resource", "used", "board", "share"], rows)}</div>'


def _formats(layers: list[dict[str, Any]]) -> str:
    header = ["layer", "op", "output", "weights", "output format", "accumulator", "reuse", "memory", "bound"]
    rows = [
        [
            layer["name"],
            layer["op"],
            "x".join(map(str, layer["output_shape"])),
            layer.get("weight_format"),
            layer.get("output_format"),
            layer.get("accumulator_format"),
            layer.get("reuse"),
            layer.get("memory"),
            layer.get("bound"),
        ]
        for layer in layers
    ]
    return table(header, rows)


def _histograms(graph: Graph) -> str:
    weighted = [node for node in graph.nodes if "weight" in node.params]
    panels = [
        (
            f"{node.name}\n{node.params['weight'].format}",
            np.asarray(node.params["weight"].data, np.float64).ravel(),
        )
        for node in weighted[:MAX_HISTOGRAMS]
    ]
    if not panels:
        return ""
    note = (
        f"<p>The first {MAX_HISTOGRAMS} of {len(weighted)} layers with weights.</p>"
        if len(weighted) > MAX_HISTOGRAMS
        else ""
    )
    return note + plots.histograms(panels)


def _compression(report: dict[str, Any]) -> list[str]:
    layers = [layer for layer in report["layers"] if layer["params"]]
    parts = []
    if layers:
        names = [layer["name"] for layer in layers]
        stored = [float(layer["weight_bits"]) for layer in layers]
        ratios = [32 * layer["params"] / max(layer["weight_bits"], 1) for layer in layers]
        parts.append(plots.bars(names, {"stored bits": stored, "x below float32": ratios}, xlabel=""))
    for entry in report.get("compression", []):
        parts.append(f"<p>Pass <code>{esc(entry.get('pass', ''))}</code></p>" + generic(entry))
    return parts or ["<p>No layer has weights.</p>"]


def _fidelity(fidelity: dict[str, Any]) -> str:
    rows = []
    for stage in fidelity["stages"]:
        for name, o in stage["outputs"].items():
            agree = None if o["argmax_agreement"] is None else f"{100 * o['argmax_agreement']:.1f}%"
            rows.append([stage["stage"], name, agree, o["max_abs_error"], o["mean_abs_error"]])
    header = ["after", "output", "argmax agreement", "max abs error", "mean abs error"]
    return f"<p>{esc(fidelity.get('samples', ''))} samples; {esc(fidelity.get('reference', ''))}</p>" + table(
        header, rows
    )
