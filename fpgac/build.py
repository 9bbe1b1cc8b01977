"""``fpgac build``: model file -> passes -> quantized IR -> build folder, written atomically.

The flow is the one in ARCHITECTURE.md, each step handing the next a typed result: the frontend makes a
float IR; the pass pipeline (the clean-ups, ``--passes``, ``quantize`` implied last) rewrites it;
:func:`compile_model` fits the design to the board (io style, reuse factors, off-chip weights:
:mod:`fpgac.analysis.fit`) into :class:`Decisions` and their estimate, a :class:`CompiledDesign`;
:func:`build` renders that through the backend into a :class:`~fpgac.backends.plan.BuildPlan`, written
with its report so nothing reaches the disk until everything succeeded.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.analysis.estimate import Estimate, reuse_factors
from fpgac.analysis.fidelity import FidelityProbe, StageFidelity, fidelity_json
from fpgac.analysis.fit import Fitting, fit
from fpgac.analysis.level_report import level_report
from fpgac.analysis.report import build_report, report_json, report_markdown
from fpgac.analysis.rounding_points import rounding_points_json
from fpgac.arrays import load_inputs
from fpgac.backends.hls4ml.emitter import hls4ml_plan
from fpgac.backends.hls4ml.folding import accepted_reuse
from fpgac.backends.hls4ml.lower import Hls4mlLowering
from fpgac.backends.plan import BuildPlan, check_target, write_plan
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import DEFAULT_UTIL, Board, get_board
from fpgac.errors import FpgacError
from fpgac.frontend.loader import load_file
from fpgac.ir import Graph
from fpgac.ir.levels import level_count
from fpgac.ir.serialize import graph_files
from fpgac.passes.pipeline import CLEANUPS, make_pass, run_pipeline, user_calls
from fpgac.progress import step

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
HLS_DIR = "hls"
HLS4ML_DIR = "hls4ml"
BACKENDS = ("vitis", "hls4ml", "none")
IO_CHOICES = ("auto", "parallel", "stream")
WEIGHTS_CHOICES = ("auto", "onchip", "offchip")


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
    reuse: int | None = None
    layer_reuse: dict[str, int] = field(default_factory=dict)
    util: float = DEFAULT_UTIL
    target_fps: float | None = None
    weights: str = "auto"
    keras_weights: Path | None = None


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


def load_model(model: Path, keras_weights: Path | None = None) -> Graph:
    """The float graph of ``model`` after the frontend's clean-ups (:data:`CLEANUPS`, run as passes).

    What ``fpgac inspect`` shows, ``fpgac sim model.onnx`` runs and the build's own passes start from.
    ``keras_weights`` is the weights file of a Keras ``model.json``.
    """
    with step(f"loading {model.name}"):
        graph = load_file(model, keras_weights)
    return run_pipeline(graph, CLEANUPS, step)


@dataclass(frozen=True)
class Decisions:
    """What the build chose for the hardware; the backends render these and nothing reads them back.

    Attributes:
        backend: ``vitis``, ``hls4ml`` or ``none``.
        io: the io style built, ``parallel`` or ``stream``.
        io_choice: why: ``auto (fitted to the board)`` or ``--io``.
        recommended_io: what the fitting chooses for the board (:func:`~fpgac.analysis.fit.fit`),
            whatever was built.
        reuse: ``--reuse`` (None: fitted per layer); hls4ml's ReuseFactor where ``layer_reuse`` has none.
        layer_reuse: every layer's reuse factor, by layer name, as the estimate and the HLS use them:
            the user's where given (``--reuse``, ``reuse`` in ``--config``), else the fitting's.
        offchip: the layers whose weights live in external memory (``--weights``).
        uram: the layers whose weights are preloaded into UltraRAM (the fitting's).
        lanes: io stream: the channel-folded values and the channels a beat carries (the fitting's).
        uram_rows: off-chip convs whose line buffers the fitting put in URAM.
        spills: io stream: the fork FIFOs the fitting kept in external memory (by FIFO key).
        lutram_rows: window layers whose line buffers the fitting put in LUT RAM.
    """

    backend: str
    io: str
    io_choice: str
    recommended_io: str
    reuse: int | None
    layer_reuse: Mapping[str, int]
    offchip: frozenset[str] = frozenset()
    uram: frozenset[str] = frozenset()
    lanes: Mapping[str, int] = field(default_factory=dict)
    uram_rows: frozenset[str] = frozenset()
    spills: frozenset[str] = frozenset()
    lutram_rows: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CompiledDesign:
    """The hand-off from compiling to writing: the pipeline's graph, the board, the decisions and the
    estimate they give, and ``report`` (the content of ``report.json``) made from them."""

    graph: Graph
    board: Board
    passes: tuple[str, ...]
    decisions: Decisions
    estimate: Estimate
    report: dict[str, Any]


def compile_model(model: Path, options: BuildOptions) -> CompiledDesign:
    """Load, run the pipeline, decide and estimate; nothing is written."""
    if options.backend not in BACKENDS:
        raise ConfigError(f"unknown backend {options.backend!r}; expected one of {list(BACKENDS)}")
    if options.io not in IO_CHOICES:
        raise ConfigError(f"unknown io style {options.io!r}; expected one of {list(IO_CHOICES)}")
    if options.weights not in WEIGHTS_CHOICES:
        raise ConfigError(f"unknown weights {options.weights!r}; expected one of {list(WEIGHTS_CHOICES)}")
    if options.weights == "offchip" and options.backend != "vitis":
        raise ConfigError("--weights offchip needs --backend vitis")
    board = get_board(options.board, part=options.part, clock_mhz=options.clock_mhz)
    graph = load_model(model, options.keras_weights)
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
    defaults = {
        "precision": options.precision,
        "input_range": options.input_range,
        "layer_precision": layer_precision,
        "layer_keep": layer_keep,
    }
    calls = user_calls(options.passes)
    if any(call.name == "finetune" for call in calls):  # it distils from the model as loaded: a copy, since
        defaults["teacher"] = graph.clone()  # passes may rewrite the graph they are given in place
    passes = [make_pass(call, calib, defaults) for call in calls]
    stages: list[StageFidelity] = []  # the design against the float model after each pass (fidelity.py)
    if calib:
        probe = FidelityProbe(graph, calib)
        graph = run_pipeline(graph, passes, step, lambda name, g: stages.append(probe.measure(name, g)))
    else:
        graph = run_pipeline(graph, passes, step)
    with step("fitting to the board"):
        fitting = _fit(graph, board, options, layer_reuse)
    decisions = Decisions(
        backend=options.backend,
        io=fitting.io,
        io_choice="auto (fitted to the board)" if options.io == "auto" else "--io",
        recommended_io=fitting.io
        if options.io == "auto"
        else _fit(graph, board, options, layer_reuse, "auto").io,
        reuse=options.reuse,
        layer_reuse=fitting.reuse,
        offchip=fitting.offchip,
        uram=fitting.uram,
        lanes=fitting.lanes,
        uram_rows=fitting.uram_rows,
        spills=fitting.spills,
        lutram_rows=fitting.lutram_rows,
    )
    with step("estimate and report"):
        names = tuple(p.name for p in (*CLEANUPS, *passes))
        report = _report(model, options, graph, board, names, decisions, fitting)
        if stages:
            report["fidelity"] = fidelity_json(stages)
        if calib:
            points = rounding_points_json(graph, probe.samples)
            if points:
                report["rounding_points"] = points
    return CompiledDesign(graph, board, names, decisions, fitting.estimate, report)


def _fit(
    graph: Graph, board: Board, options: BuildOptions, layer_reuse: Mapping[str, int], io: str | None = None
) -> Fitting:
    """The fitted design; the user's reuse factors (``--reuse``, ``reuse`` in ``--config``) are kept.

    hls4ml builds are folded to factors hls4ml's kernels accept (:mod:`fpgac.backends.hls4ml.folding`).
    """
    fixed = (
        reuse_factors(graph, layer_reuse, options.reuse) if options.reuse is not None else dict(layer_reuse)
    )
    accepts = accepted_reuse(graph) if options.backend == "hls4ml" else None
    reuse_factors(graph, fixed)  # a layer name or factor that is not valid fails here, with its name
    return fit(
        graph,
        board,
        io or options.io,
        util=options.util,
        target_fps=options.target_fps,
        fixed=fixed,
        weights="onchip" if options.backend == "hls4ml" else options.weights,  # hls4ml: no m_axi weights
        accepts=accepts,
        fold_channels=options.backend != "hls4ml",  # hls4ml's stream kernels take whole pixels
    )


def _report(
    model: Path,
    options: BuildOptions,
    graph: Graph,
    board: Board,
    passes: tuple[str, ...],
    decisions: Decisions,
    fitting: Fitting,
) -> dict[str, Any]:
    """``report.json``: the graph's layers, the options as run (the whole pipeline, the board looked up),
    the decisions and the estimate."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    settings["passes"] = ", ".join(passes)
    settings["board"], settings["part"], settings["clock_mhz"] = board.name, board.part, board.clock_mhz
    report = build_report(graph, model=model.name, board=board, options=settings)
    report["backend"], report["io"] = decisions.backend, decisions.io
    report["reuse"] = decisions.reuse
    report["io_choice"] = decisions.io_choice
    report["fit"] = fitting.to_json()
    if fitting.note:
        report["warnings"] = [fitting.note]
        log.warning(fitting.note)
    _add_estimate(report, fitting.estimate, decisions.recommended_io)
    for layer, estimated in zip(report["layers"], fitting.estimate.layers, strict=True):
        layer["bound"] = fitting.bound(estimated)
    if level_count(graph) > 1:  # run-time rank levels (lowrank levels=...): each level's ranks and speed
        report["rank_levels"] = level_report(graph, fitting.estimate)
    return report


def _add_estimate(report: dict[str, Any], est: Estimate, recommended_io: str) -> None:
    """Resources, latency and fit against the board, in total and per layer (see estimate.py's model)."""
    data = est.to_json()
    total = data["total"]
    report["resources"] = {k: total[k] for k in ("dsp", "bram18", "lut", "ff", "uram")}
    report["latency_cycles"], report["ii"], report["latency_us"], report["fps"] = (
        total["latency_cycles"],
        total["ii"],
        total["latency_us"],
        total["fps"],
    )
    report["offchip"], report["offchip_bits"] = data["offchip"], total["offchip_bits"]
    report["spills"], report["spill_bits"] = data["spills"], total["spill_bits"]
    report["budget"], report["utilization"] = data["budget"], data["utilization"]
    report["fits"], report["recommended_io"] = data["fits"], recommended_io
    per_layer = {layer["name"]: layer for layer in data["layers"]}
    for layer in report["layers"]:
        layer_est = per_layer[layer["name"]]
        layer["reuse"] = layer_est["reuse"]
        layer["resources"] = {k: layer_est[k] for k in ("dsp", "bram18", "lut", "ff", "uram")}
        layer["latency_cycles"], layer["ii"] = layer_est["latency_cycles"], layer_est["ii"]
        layer["memory"], layer["bound"] = layer_est["memory"], layer_est["bound"]
        layer["offchip_bits"] = layer_est["offchip_bits"]
    if est.warning and not report.get("warnings"):
        report.setdefault("warnings", []).append(est.warning)
        log.warning(est.warning)


def _add_html(plan: BuildPlan, report: dict[str, Any], graph: Graph) -> None:
    """report.html, when matplotlib (the ``report`` extra) is installed; else a warning, not a failure."""
    from fpgac.html import build_page
    from fpgac.html.plots import PlotsUnavailable

    with step("drawing report.html"):
        try:
            plan.add(REPORT_HTML, build_page.render(report, graph, source=REPORT_JSON))
        except PlotsUnavailable as exc:
            log.warning("%s; %s not written", exc, REPORT_HTML)


def build(
    model: Path, out: Path, options: BuildOptions, *, force: bool = False, html: bool = False
) -> dict[str, Any]:
    """Compile ``model`` and write the build folder ``out`` atomically; returns the report.

    ``html`` adds report.html (:mod:`fpgac.html`; ``fpgac build`` asks for it): drawing it costs a second
    or more, which the library's many builds in tests and sweeps need not pay.
    """
    check_target(out, force=force)
    compiled = compile_model(model, options)
    graph, board, decisions = compiled.graph, compiled.board, compiled.decisions
    plan = BuildPlan()
    if decisions.backend == "hls4ml":
        # The folder stores the lowered graph, so `fpgac sim DIR` simulates hls4ml's kernels.
        graph = run_pipeline(graph, [Hls4mlLowering()], step)
        with step("generating the hls4ml project"):
            hls4ml = hls4ml_plan(graph, board, decisions.io, decisions.reuse or 1, decisions.layer_reuse)
            plan.merge(hls4ml, prefix=f"{HLS4ML_DIR}/")
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    if decisions.backend == "vitis":
        samples = load_inputs(options.calib, graph) if options.calib else None
        with step("generating the Vitis HLS project"):
            hls = vitis_plan(
                graph,
                board,
                decisions.io,
                decisions.layer_reuse,
                model=model.name,
                samples=samples,
                offchip=decisions.offchip,
                uram=decisions.uram,
                lanes=decisions.lanes,
                uram_rows=decisions.uram_rows,
                spills=decisions.spills,
                lutram_rows=decisions.lutram_rows,
            )
        plan.merge(hls, prefix=f"{HLS_DIR}/")
    plan.add(REPORT_JSON, report_json(compiled.report))
    plan.add(REPORT_MD, report_markdown(compiled.report))
    if html:
        _add_html(plan, compiled.report, graph)
    with step(f"writing {out}"):
        write_plan(plan, out, force=force)
    return compiled.report
