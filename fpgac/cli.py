"""The ``fpgac`` command. Thin: parse options, call the library, print the result.

Every failure the user can act on is an :class:`~fpgac.errors.FpgacError`; it is
printed as one line on stderr with exit code 1. Anything else is a bug in fpgac:
also one line (with a hint to rerun with ``--debug`` for the traceback).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from fpgac.errors import FpgacError
from fpgac.ir import Graph, print_graph
from fpgac.ir.cost import node_cost

_console = Console()
_log = logging.getLogger("fpgac")


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


def _load(model: Path) -> Graph:
    from fpgac.frontend.onnx import load_onnx

    return load_onnx(model)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--ir", "show_ir", is_flag=True, help="Print the IR text form instead of the layer table.")
def inspect(model: Path, show_ir: bool) -> None:
    """Show the layers of MODEL (an .onnx file): op, output shape, params, MACs."""
    graph = _load(model)
    if show_ir:
        click.echo(print_graph(graph), nl=False)
        return
    table = Table(title=f"{model.name}: {len(graph.nodes)} layers")
    for column, justify in [
        ("#", "right"),
        ("layer", "left"),
        ("op", "left"),
        ("output", "left"),
        ("params", "right"),
        ("MACs", "right"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    total_params = total_macs = 0
    for index, node in enumerate(graph.nodes):
        cost = node_cost(node)
        total_params += cost.params
        total_macs += cost.macs
        shape = "x".join(str(d) for d in node.output.shape) or "scalar"
        table.add_row(str(index), node.name, node.op, shape, f"{cost.params:,}", f"{cost.macs:,}")
    table.add_section()
    table.add_row("", "total", "", "", f"{total_params:,}", f"{total_macs:,}")
    _console.print(table)
    ins = ", ".join(f"{v.name} (N, {', '.join(map(str, v.shape))})" for v in graph.inputs)
    outs = ", ".join(f"{v.name} (N, {', '.join(map(str, v.shape))})" for v in graph.outputs)
    _console.print(f"inputs: {ins}\noutputs: {outs}", highlight=False)


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
    help="Where to write the outputs (.npy, or .npz for several outputs).",
)
def sim(model: Path, input_path: Path, output_path: Path) -> None:
    """Run MODEL on a batch with the float interpreter and save the outputs."""
    from fpgac.arrays import load_inputs, save_outputs
    from fpgac.backends.sim.interpreter import run_float

    graph = _load(model)
    inputs = load_inputs(input_path, graph)
    outputs = run_float(graph, inputs)
    save_outputs(output_path, graph, outputs)
    shapes = ", ".join(str(tuple(o.shape)) for o in outputs)
    _console.print(f"wrote {output_path} {shapes}", highlight=False)
