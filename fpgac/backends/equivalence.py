"""``fpgac verify``: the simulator and the g++ C-simulation on the same inputs, compared bit for bit.

Both sides trace every value (the simulator through ``run_fixed(trace=True)``, the C++ through the
``FPGAC_TRACE`` hooks), so a mismatch is reported at the first layer, in graph order, whose output differs,
which is where the bug is, rather than at the outputs where it has spread.

An hls4ml build is compared with hls4ml's own C-simulation (:mod:`fpgac.backends.hls4ml.csim`, its
``trace`` storage for every layer). Values hls4ml has no layer for (the inputs, and the relayouts the
lowering inserts, which are free in hls4ml) are not traced there and are checked through their readers.
A design with rank levels (:mod:`fpgac.ir.levels`) is compared at every level unless told which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpgac.backends.hls4ml.emitter import MAP_FILE
from fpgac.backends.vitis.csim import CsimError, CsimResult, run_csim
from fpgac.interp.simulator import run_fixed
from fpgac.ir import fixed
from fpgac.ir.boundary import array_shape
from fpgac.ir.graph import Graph
from fpgac.ir.levels import check_level, level_count
from fpgac.ir.serialize import load_graph
from fpgac.ir.types import Fixed


@dataclass
class LayerDiff:
    """How one traced value compares."""

    value: str
    layer: str
    op: str
    elements: int
    mismatches: int
    level: int = 0  # the rank level it was compared at


@dataclass
class VerifyResult:
    """Per-value comparison in graph order; ``first_mismatch`` is the earliest differing layer or None."""

    samples: int
    layers: list[LayerDiff] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return sum(d.mismatches for d in self.layers)

    @property
    def first_mismatch(self) -> LayerDiff | None:
        return next((d for d in self.layers if d.mismatches), None)


def random_inputs(graph: Graph, samples: int, seed: int = 0) -> list[np.ndarray]:
    """Inputs spread over each input format's whole range (its calibrated range plus headroom), with the
    range's ends and zero mixed in, where saturation and table edges live."""
    rng = np.random.default_rng(seed)
    arrays = []
    for value in graph.inputs:
        fmt = value.type.format
        assert isinstance(fmt, Fixed)
        lo = float(fixed.to_float(np.array([fmt.min_mantissa]), fmt)[0])
        hi = float(fixed.to_float(np.array([fmt.max_mantissa]), fmt)[0])
        x = rng.uniform(lo, hi, (samples, *array_shape(graph, value)))
        special = rng.random(x.shape)
        x = np.where(special < 0.03, lo, np.where(special > 0.97, hi, x))
        x = np.where((special > 0.47) & (special < 0.5), 0.0, x)
        arrays.append(x.astype(np.float32))
    return arrays


def is_hls4ml_build(folder: str | Path) -> bool:
    return (Path(folder) / "hls4ml" / MAP_FILE).is_file()


def run_any_csim(
    folder: str | Path, inputs: list[np.ndarray], *, trace: bool = False, rank_level: int = 0
) -> CsimResult:
    """The C-simulation of the build folder's backend: fpgac's Vitis testbench or hls4ml's own."""
    if is_hls4ml_build(folder):
        from fpgac.backends.hls4ml.csim import run_hls4ml_csim

        return run_hls4ml_csim(folder, inputs, trace=trace)
    return run_csim(folder, inputs, trace=trace, rank_level=rank_level)


def verify(
    folder: str,
    inputs: list[np.ndarray] | None = None,
    *,
    samples: int = 32,
    rank_levels: list[int] | None = None,
) -> VerifyResult:
    """Compare ``fpgac sim`` and ``fpgac csim`` on ``inputs`` (random ones when None), at each of
    ``rank_levels`` (every level of the design when None)."""
    graph = load_graph(folder)
    if inputs is None:
        inputs = random_inputs(graph, samples)
    if any(x.shape[0] == 0 for x in inputs):
        raise CsimError(f"{folder}: the input batch has no samples: nothing to compare")
    result = VerifyResult(samples=inputs[0].shape[0] if inputs else 0)
    for level in range(level_count(graph)) if rank_levels is None else rank_levels:
        check_level(graph, level)
        _compare(folder, graph, inputs, level, result)
    return result


def _compare(folder: str, graph: Graph, inputs: list[np.ndarray], level: int, result: VerifyResult) -> None:
    sim = run_fixed(graph, inputs, trace=True, rank_level=level)
    csim = run_any_csim(folder, inputs, trace=True, rank_level=level)
    partial = is_hls4ml_build(folder)
    steps = [(v, "input", "input") for v in graph.inputs] + [(n.output, n.name, n.op) for n in graph.nodes]
    for value, layer, op in steps:
        ours, theirs = sim.trace[value.name], csim.trace.get(value.name)
        if theirs is None and partial:
            result.layers.append(LayerDiff(value.name, layer, op, 0, 0, level))
            continue
        if theirs is None or theirs.shape != ours.shape:
            bad = ours.size
        else:
            same_kind = ours.dtype == theirs.dtype == np.int64
            a, b = (ours, theirs) if same_kind else (ours.astype(object), theirs.astype(object))
            bad = int(np.count_nonzero(a != b))
        result.layers.append(LayerDiff(value.name, layer, op, ours.size, bad, level))
    for k, value in enumerate(graph.outputs):
        if not np.array_equal(sim.outputs[k], csim.outputs[k]):
            result.layers.append(LayerDiff(value.name, "output", "output", sim.outputs[k].size, 1, level))
