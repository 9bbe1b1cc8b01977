"""The bit-accurate simulator: runs a quantized graph exactly as the generated HLS computes it.

Inputs are float32 batches (as for :func:`~fpgac.interp.interpreter.run_float`), quantized into
each graph input's fixed-point format the way the C++ testbench does (``input_t v = x;``). Every node
then runs its kernel from :mod:`fpgac.interp.fixed_kernels` on integer mantissas, and outputs come
back as float64 values (exact for widths up to 53 bits). The simulator also counts, per node, how many
output elements overflowed (were saturated or wrapped) — what a hardware engineer checks before
trusting a design on new data.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from fpgac.errors import FpgacError
from fpgac.interp.fixed_kernels import FIXED_OPS, FixedKernelError
from fpgac.interp.hls4ml_kernels import HLS4ML_OPS
from fpgac.interp.interpreter import Inputs, SimulationError, bind_inputs
from fpgac.ir import fixed
from fpgac.ir.graph import Graph, Node
from fpgac.ir.levels import at_level
from fpgac.ir.types import Fixed

log = logging.getLogger(__name__)


@dataclass
class BitsimResult:
    """Outputs (float64 values of the fixed-point results, and their exact mantissas) and per-node overflow
    counts."""

    outputs: list[np.ndarray]
    overflows: dict[str, int]
    elements: dict[str, int]
    trace: dict[str, np.ndarray] = field(default_factory=dict)
    mantissas: list[np.ndarray] = field(default_factory=list)


def _format(value_fmt: object, where: str) -> Fixed:
    if not isinstance(value_fmt, Fixed):
        raise SimulationError(f"{where} is {value_fmt}, not fixed point: quantize the graph first")
    return value_fmt


def run_fixed(graph: Graph, inputs: Inputs, *, trace: bool = False, rank_level: int = 0) -> BitsimResult:
    """Simulate ``graph`` bit-accurately on a batch; see the module docstring. ``rank_level`` picks the
    run-time rank level of a design that has them (:mod:`fpgac.ir.levels`; 0, the largest, by default)."""
    graph = at_level(graph, rank_level)
    arrays = bind_inputs(graph, inputs)
    env: dict[int, np.ndarray] = {}
    overflows: dict[str, int] = {}
    elements: dict[str, int] = {}
    traced: dict[str, np.ndarray] = {}
    for value, array in zip(graph.inputs, arrays, strict=True):
        fmt = _format(value.type.format, f"input {value.name!r}")
        if np.isnan(array).any():
            raise SimulationError(f"input {value.name!r} contains NaN, which has no fixed-point value")
        m, overflowed = fixed.quantize(array.astype(np.float64), fmt, return_overflow=True)
        env[id(value)] = m
        overflows[value.name], elements[value.name] = int(np.count_nonzero(overflowed)), m.size
        if trace:
            traced[value.name] = m
    keep = {id(v) for v in graph.outputs}
    remaining = Counter(id(v) for node in graph.nodes for v in set(node.inputs))
    for node in graph.nodes:
        m, bad = _run_node(node, [env[id(v)] for v in node.inputs])
        env[id(node.output)] = m
        overflows[node.name], elements[node.name] = bad, m.size
        if trace:
            traced[node.output.name] = m
        for value in set(node.inputs):
            remaining[id(value)] -= 1
            if remaining[id(value)] <= 0 and id(value) not in keep:
                env.pop(id(value), None)
    outputs = [
        fixed.to_float(env[id(v)], _format(v.type.format, f"output {v.name!r}")) for v in graph.outputs
    ]
    mantissas = [env[id(v)] for v in graph.outputs]
    return BitsimResult(outputs, overflows, elements, traced, mantissas)


def warn_saturated_inputs(graph: Graph, result: BitsimResult) -> None:
    """One warning line per graph input whose values fell outside its format and saturated.

    The input format is the first cast of the design: a batch unlike the calibration data (or, without
    it, outside ``--input-range``) is silently clipped there, and every later layer computes on clipped
    values. The per-layer ``--overflow-report`` shows it too, but only when asked.
    """
    for value in graph.inputs:
        bad, total = result.overflows[value.name], result.elements[value.name]
        if bad:
            fmt = _format(value.type.format, f"input {value.name!r}")
            log.warning(
                "input %r: %d of %d values (%.1f%%) lie outside its format's range [%g, %g] and saturated; "
                "rebuild with --calib on data like these",
                value.name,
                bad,
                total,
                100 * bad / total,
                fmt.min_mantissa * fmt.lsb,
                fmt.max_mantissa * fmt.lsb,
            )


def _run_node(node: Node, args: list[np.ndarray]) -> tuple[np.ndarray, int]:
    where = f"node {node.name!r} ({node.op})"
    fn = FIXED_OPS.get(node.op) or HLS4ML_OPS.get(node.op)
    if fn is None:
        raise FixedKernelError(f"{where}: this op has no fixed-point kernel")
    fmts = [_format(v.type.format, f"{where} input {v.name!r}") for v in node.inputs]
    try:
        m, bad = fn(node, args, fmts)
    except FpgacError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise SimulationError(f"{where}: {type(exc).__name__}: {exc}") from exc
    expected = (args[0].shape[0], *node.output.shape)
    if m.shape != expected:
        raise SimulationError(f"{where}: produced shape {m.shape}, its output type says {expected}")
    return m, bad
