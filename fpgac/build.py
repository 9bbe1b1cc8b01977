"""``fpgac build``: model file -> passes -> quantized IR -> build folder, written atomically.

The flow is the one in ARCHITECTURE.md: the frontend makes a float IR, the pass pipeline (from
``--passes``, with ``quantize`` implied last) rewrites it, and the result is written with its report
through a :class:`~fpgac.backends.plan.BuildPlan`, so nothing reaches the disk until everything
succeeded.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.analysis.estimate import Estimate, default_io, estimate, reuse_factors
from fpgac.analysis.report import build_report, report_json, report_markdown
from fpgac.arrays import load_inputs
from fpgac.backends.hls4ml.emitter import hls4ml_plan
from fpgac.backends.hls4ml.lower import lower as lower_for_hls4ml
from fpgac.backends.plan import BuildPlan, check_target, write_plan
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.errors import FpgacError
from fpgac.frontend.onnx import load_onnx
from fpgac.ir import Graph
from fpgac.ir.serialize import graph_files
from fpgac.passes.pipeline import make_pass, run_pipeline
from fpgac.passes.spec import PassCall, parse_pass_spec

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
HLS_DIR = "hls"
HLS4ML_DIR = "hls4ml"
BACKENDS = ("vitis", "hls4ml", "none")
IO_CHOICES = ("auto", "parallel", "stream")


class ConfigError(FpgacError):
    """A build config or calibration file that cannot be used."""


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``fpgac build`` takes besides the model and the output folder."""

    board: str = "zcu104"
    part: str | None = None
    clock_mhz: float | None = None
    precision: int = 16
    passes: str = ""
    calib: Path | None = None
    config: Path | None = None
    input_range: tuple[float, float] = (-1.0, 1.0)
    layer_precision: dict[str, int] = field(default_factory=dict)
    backend: str = "vitis"
    io: str = "auto"
    reuse: int = 1
    layer_reuse: dict[str, int] = field(default_factory=dict)


def load_config(path: Path, graph: Graph) -> dict[str, dict[str, Any]]:
    """Per-layer settings from a TOML file, by setting then layer: ``[layers."fc1"] precision = 8``.

    ``precision`` (bits, for quantize), ``keep`` (fraction of units kept, for reap) and ``reuse`` (the
    layer's reuse factor in the HLS).
    """
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"layers"}
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; expected [layers.NAME]")
    names = {n.name for n in graph.nodes}
    settings_of: dict[str, dict[str, Any]] = {key: {} for key in _LAYER_SETTINGS}
    for layer, settings in data.get("layers", {}).items():
        if layer not in names:
            raise ConfigError(f"{path}: layer {layer!r} is not in the model")
        if not isinstance(settings, dict) or set(settings) - set(_LAYER_SETTINGS):
            raise ConfigError(
                f"{path}: layer {layer!r} takes only {' and '.join(map(repr, _LAYER_SETTINGS))}"
            )
        for key, value in settings.items():
            kind, what = _LAYER_SETTINGS[key]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ConfigError(f"{path}: {key} of layer {layer!r} must be {what}, not {value!r}")
            settings_of[key][layer] = value
    return settings_of


# Per-layer config keys: the types they accept and how an error names them.
_LAYER_SETTINGS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "precision": (int, "an integer"),
    "keep": ((int, float), "a number"),
    "reuse": (int, "an integer"),
}


def compile_model(model: Path, options: BuildOptions) -> tuple[Graph, dict[str, Any]]:
    """Load, run the pipeline and make the report; nothing is written."""
    if options.backend not in BACKENDS:
        raise ConfigError(f"unknown backend {options.backend!r}; expected one of {list(BACKENDS)}")
    if options.io not in IO_CHOICES:
        raise ConfigError(f"unknown io style {options.io!r}; expected one of {list(IO_CHOICES)}")
    board = get_board(options.board, part=options.part, clock_mhz=options.clock_mhz)
    graph = load_onnx(model)
    calib = load_inputs(options.calib, graph) if options.calib else None
    for array in calib or []:
        if array.shape[0] == 0:
            raise ConfigError(f"{options.calib}: the calibration batch has no samples")
        if not np.all(np.isfinite(array)):
            raise ConfigError(f"{options.calib}: calibration data contains NaN or Inf")
    layer_precision, layer_keep, layer_reuse = dict(options.layer_precision), {}, dict(options.layer_reuse)
    if options.config:
        config = load_config(options.config, graph)
        layer_precision.update(config["precision"])
        layer_keep = {k: float(v) for k, v in config["keep"].items()}
        layer_reuse.update(config["reuse"])
    if layer_reuse and options.backend == "hls4ml":
        raise ConfigError("per-layer reuse factors are not supported by the hls4ml backend; use --reuse")
    calls = parse_pass_spec(options.passes)
    if "quantize" not in [c.name for c in calls]:
        calls.append(PassCall("quantize", {}))
    defaults = {
        "precision": options.precision,
        "input_range": options.input_range,
        "layer_precision": layer_precision,
        "layer_keep": layer_keep,
    }
    passes = [make_pass(call, calib, defaults) for call in calls]
    graph = run_pipeline(graph, passes)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    settings["passes"] = ", ".join(p.name for p in passes)
    settings["board"], settings["part"], settings["clock_mhz"] = board.name, board.part, board.clock_mhz
    report = build_report(graph, model=model.name, board=board, options=settings)
    reuse = reuse_factors(graph, layer_reuse, options.reuse)
    recommended = default_io(graph, board)
    io = recommended if options.io == "auto" else options.io
    report["backend"], report["io"] = options.backend, io
    report["reuse"] = options.reuse
    report["io_choice"] = "auto (by model size)" if options.io == "auto" else "--io"
    _add_estimate(report, estimate(graph, board, io, reuse), recommended)
    return graph, report


def _add_estimate(report: dict[str, Any], est: Estimate, recommended_io: str) -> None:
    """Resources, latency and fit against the board, in total and per layer (see estimate.py's model)."""
    data = est.to_json()
    total = data["total"]
    report["resources"] = {k: total[k] for k in ("dsp", "bram18", "lut", "ff", "uram")}
    report["latency_cycles"], report["ii"], report["latency_us"] = (
        total["latency_cycles"],
        total["ii"],
        total["latency_us"],
    )
    report["budget"], report["utilization"] = data["budget"], data["utilization"]
    report["fits"], report["recommended_io"] = data["fits"], recommended_io
    per_layer = {layer["name"]: layer for layer in data["layers"]}
    for layer in report["layers"]:
        layer_est = per_layer[layer["name"]]
        layer["reuse"] = layer_est["reuse"]
        layer["resources"] = {k: layer_est[k] for k in ("dsp", "bram18", "lut", "ff", "uram")}
        layer["latency_cycles"], layer["ii"] = layer_est["latency_cycles"], layer_est["ii"]
    if est.warning:
        report["warnings"] = [est.warning]
        log.warning(est.warning)


def build(model: Path, out: Path, options: BuildOptions, *, force: bool = False) -> dict[str, Any]:
    """Compile ``model`` and write the build folder ``out`` atomically; returns the report."""
    check_target(out, force=force)
    graph, report = compile_model(model, options)
    plan = BuildPlan()
    board = get_board(options.board, part=options.part, clock_mhz=options.clock_mhz)
    if options.backend == "hls4ml":
        # The folder stores the lowered graph, so `fpgac sim DIR` simulates hls4ml's kernels.
        graph = lower_for_hls4ml(graph)
        plan.merge(hls4ml_plan(graph, board, report["io"], options.reuse), prefix=f"{HLS4ML_DIR}/")
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    if options.backend == "vitis":
        reuse = {layer["name"]: layer["reuse"] for layer in report["layers"]}
        hls = vitis_plan(graph, board, report["io"], reuse, model=model.name)
        plan.merge(hls, prefix=f"{HLS_DIR}/")
    plan.add(REPORT_JSON, report_json(report))
    plan.add(REPORT_MD, report_markdown(report))
    write_plan(plan, out, force=force)
    return report
