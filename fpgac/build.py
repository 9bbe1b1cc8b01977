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

from fpgac.arrays import load_inputs
from fpgac.backends.estimate import Estimate, default_io, estimate
from fpgac.backends.hls4ml import IO_TYPES as HLS4ML_IO
from fpgac.backends.hls4ml import hls4ml_plan
from fpgac.backends.hls4ml_lower import lower as lower_for_hls4ml
from fpgac.backends.plan import BuildPlan, check_target, write_plan
from fpgac.backends.vitis import IO_STYLES, vitis_plan
from fpgac.boards import get_board
from fpgac.errors import FpgacError
from fpgac.frontend.onnx import load_onnx
from fpgac.ir import Graph
from fpgac.ir.serialize import graph_files
from fpgac.passes.pipeline import make_pass, run_pipeline
from fpgac.passes.spec import PassCall, parse_pass_spec
from fpgac.report import build_report, report_json, report_markdown

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
HLS_DIR = "hls"
HLS4ML_DIR = "hls4ml"
BACKENDS = ("vitis", "hls4ml", "none")
IO_CHOICES = ("parallel", "stream")


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
    io: str = "parallel"
    reuse: int = 1


def load_config(path: Path, graph: Graph) -> dict[str, int]:
    """Per-layer precision from a TOML file: ``[layers."fc1"] precision = 8``."""
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
    precision: dict[str, int] = {}
    for layer, settings in data.get("layers", {}).items():
        if layer not in names:
            raise ConfigError(f"{path}: layer {layer!r} is not in the model")
        if not isinstance(settings, dict) or set(settings) - {"precision"}:
            raise ConfigError(f"{path}: layer {layer!r} takes only 'precision'")
        if "precision" in settings:
            bits = settings["precision"]
            if isinstance(bits, bool) or not isinstance(bits, int):
                raise ConfigError(f"{path}: precision of layer {layer!r} must be an integer, not {bits!r}")
            precision[layer] = bits
    return precision


def compile_model(model: Path, options: BuildOptions) -> tuple[Graph, dict[str, Any]]:
    """Load, run the pipeline and make the report; nothing is written."""
    if options.backend not in BACKENDS:
        raise ConfigError(f"unknown backend {options.backend!r}; expected one of {list(BACKENDS)}")
    if options.io not in IO_CHOICES:
        raise ConfigError(f"unknown io style {options.io!r}; expected one of {list(IO_CHOICES)}")
    if options.backend == "vitis" and options.io not in IO_STYLES:
        raise ConfigError(
            f"--io {options.io} is not implemented yet for the vitis backend; use --io parallel"
        )
    if options.backend == "hls4ml" and options.io not in HLS4ML_IO:
        raise ConfigError(
            f"--io {options.io} is not implemented yet for the hls4ml backend; use --io parallel"
        )
    if isinstance(options.reuse, bool) or not isinstance(options.reuse, int) or options.reuse < 1:
        raise ConfigError(f"reuse factor must be a positive integer, not {options.reuse!r}")
    if options.reuse != 1 and options.backend == "vitis":
        raise ConfigError("--reuse is not implemented yet for the vitis backend; use --backend hls4ml")
    board = get_board(options.board, part=options.part, clock_mhz=options.clock_mhz)
    graph = load_onnx(model)
    calib = load_inputs(options.calib, graph) if options.calib else None
    for array in calib or []:
        if array.shape[0] == 0:
            raise ConfigError(f"{options.calib}: the calibration batch has no samples")
        if not np.all(np.isfinite(array)):
            raise ConfigError(f"{options.calib}: calibration data contains NaN or Inf")
    layer_precision = dict(options.layer_precision)
    if options.config:
        layer_precision.update(load_config(options.config, graph))
    calls = parse_pass_spec(options.passes)
    if "quantize" not in [c.name for c in calls]:
        calls.append(PassCall("quantize", {}))
    defaults = {
        "precision": options.precision,
        "input_range": options.input_range,
        "layer_precision": layer_precision,
    }
    passes = [make_pass(call, calib, defaults) for call in calls]
    graph = run_pipeline(graph, passes)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    settings["passes"] = ", ".join(p.name for p in passes)  # type: ignore[attr-defined]
    settings["board"], settings["part"], settings["clock_mhz"] = board.name, board.part, board.clock_mhz
    report = build_report(graph, model=model.name, board=board, options=settings)
    report["backend"], report["io"] = options.backend, options.io
    # The generated Vitis HLS pipelines every layer at II=1 (reuse 1); hls4ml builds take --reuse.
    reuse = options.reuse if options.backend == "hls4ml" else 1
    report["reuse"] = reuse
    _add_estimate(report, estimate(graph, board, options.io, reuse), default_io(graph, board))
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
        plan.merge(hls4ml_plan(graph, board, options.io, options.reuse), prefix=f"{HLS4ML_DIR}/")
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    if options.backend == "vitis":
        plan.merge(vitis_plan(graph, board, options.io, model=model.name), prefix=f"{HLS_DIR}/")
    plan.add(REPORT_JSON, report_json(report))
    plan.add(REPORT_MD, report_markdown(report))
    write_plan(plan, out, force=force)
    return report
