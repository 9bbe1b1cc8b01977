"""The ``fpgac`` command. Thin: parse options, call the library, print the result.

Every failure the user can act on is an :class:`~fpgac.errors.FpgacError`; it is
printed as one line on stderr with exit code 1. Anything else is a bug in fpgac:
also one line (with a hint to rerun with ``--debug`` for the traceback).
"""

from __future__ import annotations

import functools
import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fpgac.boards import DEFAULT_UTIL
from fpgac.errors import FpgacError
from fpgac.ir import Graph, print_graph

if TYPE_CHECKING:
    from rich.console import Console, JustifyMethod


@functools.cache
def _console() -> Console:
    """rich's console, made on first use: importing rich costs ~50 ms, which ``fpgac sim`` does not need."""
    from rich.console import Console

    return Console()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command; turn every failure into one line and exit code 1."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="fpgac", standalone_mode=False)
    except FpgacError as exc:
        if debug:
            raise
        _fail(f"error: {exc}")
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as exc:
        hint = " (see fpgac --help)" if isinstance(exc, click.UsageError) else ""
        _fail(f"error: {exc.format_message()}{hint}")
    except MemoryError:
        if debug:
            raise
        _fail("error: out of memory; try a smaller batch")
    except Exception as exc:
        if debug:
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    click.echo(" ".join(message.split()), err=True)
    sys.exit(1)


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(package_name="fpgac")
def cli(debug: bool) -> None:
    """fpgac: compile trained neural networks (ONNX) to FPGA designs."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s: %(message)s"
    )


def _load(model: Path, keras_weights: Path | None = None) -> Graph:
    from fpgac.build import load_model

    return load_model(model, keras_weights)


# The weights of a Keras model.json (the split form). Not --weights: that one says where a build's
# weights live (on chip or off).
_keras_weights = click.option(
    "--keras-weights",
    type=click.Path(path_type=Path),
    help="Weights file (.h5) of a Keras model.json architecture.",
)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--ir", "show_ir", is_flag=True, help="Print the IR text form instead of the layer table.")
@_keras_weights
@click.option(
    "--check", is_flag=True, help="List every node fpgac cannot lower (name, op, why); exit 1 if any."
)
def inspect(model: Path, show_ir: bool, keras_weights: Path | None, check: bool) -> None:
    """Show the layers of MODEL (.onnx, or Keras .h5/.keras/.json): op, output shape, params, MACs."""
    if check:
        _check(model, keras_weights)
        return
    graph = _load(model, keras_weights)
    from fpgac.frontend.check import nonfinite_params

    for line in nonfinite_params(graph):
        click.echo(f"warning: {line}", err=True)
    if show_ir:
        click.echo(print_graph(graph), nl=False)
        return
    from rich.table import Table

    from fpgac.analysis.cost import node_cost

    table = Table(title=f"{model.name}: {len(graph.nodes)} layers")
    columns: list[tuple[str, JustifyMethod]] = [
        ("#", "right"),
        ("layer", "left"),
        ("op", "left"),
        ("output", "left"),
        ("params", "right"),
        ("MACs", "right"),
    ]
    for column, justify in columns:
        table.add_column(column, justify=justify)
    total_params = total_macs = 0
    for index, node in enumerate(graph.nodes):
        cost = node_cost(node)
        total_params += cost.params
        total_macs += cost.macs
        shape = "x".join(str(d) for d in node.output.shape) or "scalar"
        table.add_row(str(index), node.name, node.op, shape, f"{cost.params:,}", f"{cost.macs:,}")
    table.add_section()
    table.add_row("", "total", "", "", f"{total_params:,}", f"{total_macs:,}")
    _console().print(table)
    from fpgac.arrays import output_names
    from fpgac.ir.boundary import array_shape, layout_name, output_array_shape, output_layout_name

    ins = ", ".join(
        f"{v.name} (N, {', '.join(map(str, array_shape(graph, v)))})"
        + (f" {layout_name(graph, v)}" if v.name in graph.input_layouts else "")
        for v in graph.inputs
    )

    outs = ", ".join(
        f"{name} (N, {', '.join(map(str, output_array_shape(graph, i)))})"
        + (f" {output_layout_name(graph, i)}" if i in graph.output_layouts else "")
        for i, name in enumerate(output_names(graph))
    )
    _console().print(f"inputs: {ins}\noutputs: {outs}", highlight=False)


def _check(model: Path, keras_weights: Path | None) -> None:
    """``inspect --check``: every problem of an ONNX model at once, one line each, exit 1 if there is any
    (a Keras model is read layer by layer: its first problem is the error)."""
    from fpgac.frontend.onnx import check_onnx

    if model.suffix.lower() != ".onnx":
        _load(model, keras_weights)
        click.echo(f"{model.name}: every layer is supported")
        return
    problems = check_onnx(model)
    for p in problems:
        where = f"node {p.node!r} (op {p.op}): " if p.node else ""
        click.echo(f"{model.name}: {where}{p.why}")
    if problems:
        click.echo(f"{model.name}: {len(problems)} unsupported", err=True)
        sys.exit(1)
    click.echo(f"{model.name}: every node is supported")


def _float_pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not LO,HI", param_hint="--input-range") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise click.BadParameter(f"{text!r}: need finite LO < HI", param_hint="--input-range")
    return lo, hi


@cli.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Build folder to write.")
@click.option("--board", default="zcu104", show_default=True, help="Target board (see `fpgac boards`).")
@click.option(
    "--calib", type=click.Path(path_type=Path), help="Calibration batch (.npy/.npz) for quantization."
)
@click.option("--precision", default=16, show_default=True, type=int, help="Bits of activations and weights.")
@click.option("--passes", default="", help='Pass pipeline, e.g. "fold_affine, quantize(headroom=2)".')
@click.option("--config", type=click.Path(path_type=Path), help="TOML file with per-layer settings.")
@click.option("--input-range", default="-1,1", show_default=True, help="LO,HI of the inputs when no --calib.")
@click.option("--part", help="Override the board's FPGA part.")
@click.option("--clock", "clock_mhz", type=float, help="Override the board's clock (MHz).")
@click.option(
    "--backend",
    type=click.Choice(["vitis", "hls4ml", "none"]),
    default="vitis",
    show_default=True,
    help="HLS project to write: hls/ (vitis), hls4ml/ (hls4ml, through its Python API) or none.",
)
@click.option(
    "--io",
    type=click.Choice(["auto", "parallel", "stream"]),
    default="auto",
    show_default=True,
    help="HLS style between layers: parallel (arrays, lowest latency, small models), stream (FIFOs, "
    "line buffers, weights in BRAM/URAM); auto: parallel when the fitted parallel design fits the board.",
)
@click.option(
    "--reuse",
    type=click.IntRange(min=1),
    help="Reuse factor of every layer: products per multiplier (per layer: `reuse` in --config; "
    "hls4ml: its ReuseFactor, Resource strategy above 1). Default: fitted per layer to the board "
    "(hls4ml: to factors hls4ml accepts).",
)
@click.option(
    "--util",
    default=DEFAULT_UTIL,
    show_default=True,
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="Fraction of each board resource the fitted design may use.",
)
@click.option("--target-fps", type=click.FloatRange(min=0, min_open=True), help="Frame rate to fold for.")
@click.option(
    "--weights",
    type=click.Choice(["auto", "onchip", "offchip"]),
    default="auto",
    show_default=True,
    help="Where weights live: auto moves the largest layers' weights (and deep stream FIFOs) to external "
    "memory only when the design cannot fit on chip; onchip keeps everything on chip.",
)
@_keras_weights
@click.option("--force", is_flag=True, help="Replace --out even if it is not an fpgac build folder.")
@click.option(
    "--from-sweep",
    type=click.Path(path_type=Path),
    help="Build a point of this sweep folder (with --point), with the model and options it was swept with.",
)
@click.option("--point", type=click.IntRange(min=0), help="The sweep's point to build (see its results.csv).")
@click.pass_context
def build(
    ctx: click.Context,
    model: Path | None,
    out: Path,
    board: str,
    calib: Path | None,
    precision: int,
    passes: str,
    config: Path | None,
    input_range: str,
    part: str | None,
    clock_mhz: float | None,
    backend: str,
    io: str,
    reuse: int | None,
    util: float,
    target_fps: float | None,
    weights: str,
    keras_weights: Path | None,
    force: bool,
    from_sweep: Path | None,
    point: int | None,
) -> None:
    """Compile MODEL (.onnx) into a quantized, bit-accurate build folder (or --from-sweep DIR --point K)."""
    from fpgac.build import BuildOptions
    from fpgac.build import build as run_build
    from fpgac.progress import shown

    if from_sweep is not None or point is not None:
        model, options = _swept_point(ctx, model, from_sweep, point)
        with shown():
            report = run_build(model, out, options, force=force, html=True)
        _print_built(out, report)
        return
    if model is None:
        raise click.UsageError("missing MODEL (or --from-sweep DIR --point K)")
    options = BuildOptions(
        board=board,
        part=part,
        clock_mhz=clock_mhz,
        precision=precision,
        passes=passes,
        calib=calib,
        config=config,
        input_range=_float_pair(input_range),
        backend=backend,
        io=io,
        reuse=reuse,
        util=util,
        target_fps=target_fps,
        weights=weights,
        keras_weights=keras_weights,
    )
    with shown():
        report = run_build(model, out, options, force=force, html=True)
    _print_built(out, report)


def _swept_point(
    ctx: click.Context, model: Path | None, folder: Path | None, point: int | None
) -> tuple[Path, Any]:
    """The model and options of ``--from-sweep DIR --point K``; other build options would contradict them."""
    from fpgac.sweep.sweep import point_options

    if folder is None or point is None:
        raise click.UsageError("--from-sweep DIR and --point K go together")
    kept = {"out", "force", "from_sweep", "point"}
    given = [
        f"--{name.replace('_', '-')}"
        for name in ctx.params
        if name not in kept and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    if model is not None or given:
        extra = ", ".join(([str(model)] if model else []) + given)
        raise click.UsageError(
            f"--from-sweep builds the point as it was swept (model and options); only --out and --force "
            f"apply, not {extra}"
        )
    return point_options(folder, point)


def _print_built(out: Path, report: dict[str, Any]) -> None:
    ratio = report["float32_bits"] / max(report["weight_bits"], 1)
    _console().print(
        f"built {out}: {len(report['layers'])} layers, {report['macs']:,} MACs, "
        f"{report['weight_bits']:,} weight bits ({ratio:.1f}x below float32) for {report['board']}, "
        f"io {report['io']}; {_fit_line(report)}",
        highlight=False,
        soft_wrap=True,
    )
    if "fidelity" in report:
        from fpgac.analysis.fidelity import fidelity_line

        _console().print(fidelity_line(report["fidelity"]), highlight=False, soft_wrap=True)


def _fit_line(report: dict[str, Any]) -> str:
    """Whether the estimate fits the board, and at what frame rate."""
    fits = "fits" if report["fits"] else "does NOT fit"
    offchip = f", {len(report['offchip'])} layers' weights off chip" if report["offchip"] else ""
    offchip += f", {len(report['spills'])} FIFOs in external memory" if report.get("spills") else ""
    fps = report["fps"]
    shown = f"{fps:,.0f}" if fps >= 100 else f"{fps:.3g}"  # whole frames, or 3 digits below 100 fps
    return f"estimate {fits} at {shown} fps ({report['clock_mhz']:g} MHz){offchip}"


@cli.command()
def boards() -> None:
    """List the known boards (the names --board takes): part, resource budgets, default clock, DDR GB/s."""
    from fpgac.boards import BOARDS

    header = ["board", "part", "LUT", "FF", "DSP", "BRAM18", "URAM", "MHz", "GB/s", "description"]
    rows = [header]
    for b in BOARDS.values():
        numbers = [f"{n:,}" for n in (b.lut, b.ff, b.dsp, b.bram18, b.uram)]
        numbers += [f"{b.clock_mhz:g}", f"{b.mem_gb_s:g}"]
        rows.append([b.name, b.part, *numbers, b.description])
    click.echo(_aligned(rows, numeric=range(2, 9)))


def _aligned(rows: list[list[str]], numeric: range) -> str:
    """Rows as plain text in aligned columns, the ``numeric`` ones right-justified.

    Not a rich table: at 80 columns, or piped, rich shrinks every column and cuts the board and part names
    that --board and --part take. A line longer than the terminal wraps instead; nothing is cut.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Input batch: .npy (or .npz keyed by input name), batch first, in the model's layout.",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the outputs: .npy, or .npz keyed by output name (needed for several outputs).",
)
@click.option("--overflow-report", is_flag=True, help="Per layer, how many values saturated or wrapped.")
@click.option(
    "--rank-level",
    type=click.IntRange(min=0),
    default=None,
    help="Rank level of a build with rank levels (lowrank levels=...): 0, the largest, by default.",
)
@_keras_weights
def sim(
    model: Path,
    input_path: Path,
    output_path: Path,
    overflow_report: bool,
    rank_level: int | None,
    keras_weights: Path | None,
) -> None:
    """Run MODEL on a batch and save the outputs.

    MODEL is an .onnx file (float interpreter) or a build folder (bit-accurate simulation of the built
    design; outputs are the fixed-point results as float64).
    """
    from fpgac.arrays import check_output_path, load_inputs, save_outputs
    from fpgac.interp.interpreter import run_float
    from fpgac.interp.simulator import BitsimResult, chunk_rows, run_fixed, simulating, warn_saturated_inputs
    from fpgac.ir.serialize import load_graph
    from fpgac.streaming import run_file

    if model.is_dir():
        graph = load_graph(model)
        counts: list[BitsimResult] = []

        def run(chunk: list[Any]) -> list[Any]:
            result = run_fixed(graph, chunk, rank_level=rank_level or 0)
            counts.append(BitsimResult([], result.overflows, result.elements))
            return result.outputs

        # In chunks, outputs written as they come: memory stays bounded whatever the number of samples.
        with simulating():
            written = run_file(graph, input_path, output_path, run, chunk_rows(graph))
        totals = BitsimResult.concatenate(counts)
        warn_saturated_inputs(graph, totals)
        if overflow_report:
            _print_overflows(totals.overflows, totals.elements)
    else:
        if overflow_report or rank_level is not None:
            raise click.UsageError(
                "--overflow-report and --rank-level need a build folder, not a float model"
            )
        graph = _load(model, keras_weights)
        check_output_path(output_path, graph)
        outputs = run_float(graph, load_inputs(input_path, graph))
        save_outputs(output_path, graph, outputs)
        written = [tuple(o.shape) for o in outputs]
    shapes = ", ".join(str(tuple(s)) for s in written)
    click.echo(f"wrote {output_path} {shapes}")  # plain: a sim need not import rich (see _console)


def _print_overflows(overflows: dict[str, int], elements: dict[str, int]) -> None:
    from rich.table import Table

    table = Table(title="overflows: values saturated or wrapped at each layer's output")
    columns: list[tuple[str, JustifyMethod]] = [
        ("layer", "left"),
        ("overflows", "right"),
        ("values", "right"),
        ("%", "right"),
    ]
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for name, count in overflows.items():
        total = elements[name]
        table.add_row(name, f"{count:,}", f"{total:,}", f"{100 * count / max(total, 1):.3f}")
    _console().print(table)


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="Input batch.")
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the outputs: .npy, or .npz keyed by output name (needed for several outputs).",
)
@click.option(
    "--write-tb",
    is_flag=True,
    help="Also make the first 8 input samples the Vitis testbench's (hls/tb/inputs.txt), with `fpgac sim`'s "
    "outputs as the bits it must produce (hls/tb/expected.txt).",
)
@click.option(
    "--rank-level", type=click.IntRange(min=0), default=0, help="Rank level (0, the largest, by default)."
)
def csim(folder: Path, input_path: Path, output_path: Path, write_tb: bool, rank_level: int) -> None:
    """C-simulate the HLS project of build FOLDER with g++ (no Vitis needed) and save the outputs.

    An hls4ml build runs hls4ml's own C-simulation (its build_lib.sh and bridge, as predict() does).
    Outputs are float64 values of the fixed-point results, as `fpgac sim FOLDER` writes them.
    """
    from fpgac.arrays import check_output_path, load_inputs, save_outputs
    from fpgac.backends.equivalence import run_any_csim
    from fpgac.ir.serialize import load_graph

    graph = load_graph(folder)
    check_output_path(output_path, graph)
    inputs = load_inputs(input_path, graph)
    from fpgac.progress import shown, step

    with shown(), step("C-simulation (g++ compile, cached in .csim/, then run)"):
        result = run_any_csim(folder, inputs, rank_level=rank_level)
    save_outputs(output_path, graph, result.outputs)
    shapes = ", ".join(str(tuple(o.shape)) for o in result.outputs)
    _console().print(f"wrote {output_path} {shapes}", highlight=False)
    if write_tb:
        from fpgac.backends.vitis.testbench import write_testbench_data

        tb = write_testbench_data(folder, graph, inputs)
        _console().print(f"wrote {tb}/inputs.txt and expected.txt (testbench samples)", highlight=False)


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--input", "input_path", type=click.Path(path_type=Path), help="Input batch (default: random).")
@click.option(
    "--samples",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Random samples when no --input is given.",
)
@click.option(
    "--rank-level",
    type=click.IntRange(min=0),
    default=None,
    help="Compare this rank level only (default: every level of a build with rank levels).",
)
def verify(folder: Path, input_path: Path | None, samples: int, rank_level: int | None) -> None:
    """Compare `fpgac sim` and the g++ C-simulation of build FOLDER bit for bit; exit 1 on any mismatch.

    For an hls4ml build the C-simulation is hls4ml's, compared at every layer hls4ml traces.
    Without --input, samples are drawn over each input format's whole range, ends included.
    """
    from fpgac.arrays import load_inputs
    from fpgac.backends.equivalence import verify as run_verify
    from fpgac.ir.serialize import load_graph

    inputs = load_inputs(input_path, load_graph(folder)) if input_path else None
    from fpgac.progress import shown, step

    levels = None if rank_level is None else [rank_level]
    with shown(), step("sim and C-simulation (g++ compile, cached in .csim/), layer by layer"):
        result = run_verify(str(folder), inputs, samples=samples, rank_levels=levels)
    checked = sum(d.elements for d in result.layers)
    first = result.first_mismatch
    compared = sorted({d.level for d in result.layers})
    at = f" at each of {len(compared)} rank levels" if len(compared) > 1 else ""
    at = f" at rank level {compared[0]}" if compared not in ([0], []) and not at else at
    if first is None:
        _console().print(
            f"verify {folder}: {result.samples} samples{at}, {len(result.layers)} values, "
            f"{checked:,} elements: 0 mismatching bits (sim == csim)",
            highlight=False,
            soft_wrap=True,
        )
        return
    _console().print(
        f"verify {folder}: {result.mismatches:,} mismatching elements; first at layer {first.layer!r} "
        f"({first.op}, value {first.value!r}{f', rank level {first.level}' if at else ''}): "
        f"{first.mismatches:,} of {first.elements:,} differ",
        highlight=False,
        soft_wrap=True,
    )
    sys.exit(1)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Sweep folder (resumed if it exists)."
)
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="Validation data: .npz keyed by input name (as `sim` takes them) plus `labels`, or .npy; without "
    "labels, points are measured against the float model.",
)
@click.option("--grid", type=click.Path(path_type=Path), help="TOML file of the settings to sweep (README).")
@click.option("--board", default="zcu104", show_default=True, help="Target board (see `fpgac boards`).")
@click.option("--calib", type=click.Path(path_type=Path), help="Calibration batch for quantization.")
@click.option("--config", type=click.Path(path_type=Path), help="TOML file with per-layer settings.")
@click.option("--input-range", default="-1,1", show_default=True, help="LO,HI of the inputs when no --calib.")
@click.option("--part", help="Override the board's FPGA part.")
@click.option("--clock", "clock_mhz", type=float, help="Override the board's clock (MHz).")
@click.option(
    "--backend", type=click.Choice(["vitis", "hls4ml"]), default="vitis", show_default=True,
    help="The backend the points are fitted for (nothing is written).",
)  # fmt: skip
@click.option(
    "--util",
    default=DEFAULT_UTIL,
    show_default=True,
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="Fraction of each board resource a fitted design may use.",
)
@click.option("--target-fps", type=click.FloatRange(min=0, min_open=True), help="Frame rate to fold for.")
@click.option(
    "--jobs", type=click.IntRange(min=1), help="Local worker processes (default: one per CPU core)."
)
@click.option("--ray", "ray_address", help="Run the points as Ray tasks: auto, or a cluster's ADDRESS.")
@click.option("--force", is_flag=True, help="Replace --out even if it holds another sweep or other files.")
def sweep(
    model: Path,
    out: Path,
    data: Path,
    grid: Path | None,
    board: str,
    calib: Path | None,
    config: Path | None,
    input_range: str,
    part: str | None,
    clock_mhz: float | None,
    backend: str,
    util: float,
    target_fps: float | None,
    jobs: int | None,
    ray_address: str | None,
    force: bool,
) -> None:
    """Compile and measure many designs of MODEL: a table, Pareto fronts and report.html in --out."""
    import os

    from fpgac.build import BuildOptions
    from fpgac.progress import shown
    from fpgac.sweep.pareto import COSTS
    from fpgac.sweep.store import FRONT_CSV, REPORT_HTML, TABLE_CSV
    from fpgac.sweep.sweep import sweep as run_sweep

    base = BuildOptions(
        board=board,
        part=part,
        clock_mhz=clock_mhz,
        calib=calib,
        config=config,
        input_range=_float_pair(input_range),
        backend=backend,
        util=util,
        target_fps=target_fps,
    )
    with shown():
        result = run_sweep(
            model, out, base, data, grid=grid, jobs=jobs or os.cpu_count() or 1, ray=ray_address, force=force
        )
    html = f", {REPORT_HTML}" if (out / REPORT_HTML).is_file() else ""
    _console().print(
        f"sweep {out}: {result.points} points ({result.ran} run now, {result.skipped} finished before), "
        f"{result.failed} failed, {result.seconds:.1f} s; wrote {TABLE_CSV}, {FRONT_CSV}{html}",
        highlight=False,
        soft_wrap=True,
    )
    by_point = {r["point"]: r for r in result.rows}
    for cost, label in COSTS.items():
        shown_points = ", ".join(
            f"{k} ({by_point[k]['accuracy']:.4f} at {by_point[k][cost]:,})" for k in result.fronts[cost]
        )
        _console().print(
            f"front accuracy vs {label}: {shown_points or 'none'}", highlight=False, soft_wrap=True
        )


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
def report(folder: Path) -> None:
    """Write FOLDER/report.html for a build folder or a sweep folder (self-contained, offline)."""
    from fpgac.html.build_page import write_folder
    from fpgac.sweep.store import SWEEP_JSON
    from fpgac.sweep.sweep import write_sweep_html

    if (folder / SWEEP_JSON).is_file():
        path = write_sweep_html(folder, required=True)
    else:
        path = write_folder(folder)
    _console().print(f"wrote {path}", highlight=False)
