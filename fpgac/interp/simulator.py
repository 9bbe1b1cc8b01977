"""The bit-accurate simulator: runs a quantized graph exactly as the generated HLS computes it.

Inputs are float32 batches (as for :func:`~fpgac.interp.interpreter.run_float`), quantized into
each graph input's fixed-point format the way the C++ testbench does (``input_t v = x;``). Every node
then runs its kernel from :mod:`fpgac.interp.fixed_kernels` on integer mantissas, and outputs come
back as float64 values (exact for widths up to 53 bits). The simulator also counts, per node, how many
output elements overflowed (were saturated or wrapped) — what a hardware engineer checks before
trusting a design on new data.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fpgac.errors import FpgacError
from fpgac.interp.fixed_kernels import (
    FIXED_OPS,
    FLOAT_MANTISSA_OPS,
    FixedFn,
    FixedKernelError,
    forget,
    int_mantissas,
    pools_before_relu,
    relu,
)
from fpgac.interp.heap import kept_heap
from fpgac.interp.hls4ml_kernels import HLS4ML_OPS
from fpgac.interp.interpreter import Inputs, SimulationError, bind_inputs
from fpgac.ir import fixed
from fpgac.ir.boundary import output_to_callers
from fpgac.ir.graph import Graph, Node
from fpgac.ir.levels import at_level
from fpgac.ir.types import Fixed

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

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

    @staticmethod
    def concatenate(parts: Sequence[BitsimResult]) -> BitsimResult:
        """One result for consecutive chunks of a batch: arrays joined along the batch, counts summed."""
        if len(parts) == 1:
            return parts[0]

        def join(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(arrays) if arrays else np.empty(0)

        first = parts[0]
        return BitsimResult(
            [join([p.outputs[i] for p in parts]) for i in range(len(first.outputs))],
            {name: sum(p.overflows[name] for p in parts) for name in first.overflows},
            {name: sum(p.elements[name] for p in parts) for name in first.elements},
            {name: join([p.trace[name] for p in parts]) for name in first.trace},
            [join([p.mantissas[i] for p in parts]) for i in range(len(first.mantissas))],
        )


def _format(value_fmt: object, where: str) -> Fixed:
    if not isinstance(value_fmt, Fixed):
        raise SimulationError(f"{where} is {value_fmt}, not fixed point: quantize the graph first")
    return value_fmt


# The simulator works on chunks of the batch whose largest value takes about this many bytes (8 bytes an
# element): small enough that a layer's elementwise passes (cast, rounding, activation) run in cache,
# large enough that numpy's fixed cost per call and BLAS's per-matmul set-up stay small (about 0.1 ms a
# node). Measured in CPU time (bench/sim_speed.py's cases, best of 6, on a shared machine): 3 MB ran the
# digits CNN 3% and LeNet-300-100 1-5% faster than 2 MB, but the jet MLP 3% slower, and 10% slower
# in bench/sim_speed.py's comparison with hls4ml (in-process, after predict()); 4 MB was no faster.
CHUNK_BYTES = 2 << 20


def chunk_rows(graph: Graph, budget: int = CHUNK_BYTES) -> int:
    """Samples per chunk so that the graph's largest value (per sample) fills about ``budget`` bytes.

    Peak memory is then a small multiple of the budget (an im2col of a conv holds kernel-size times its
    input), independent of the batch size.
    """
    values = [*graph.inputs, *(node.output for node in graph.nodes)]
    largest = max((math.prod(v.shape) for v in values), default=1)
    return max(1, budget // (8 * max(largest, 1)))


@functools.cache
def _blas_threads() -> ThreadpoolController:
    """The process's BLAS thread pools, found once (threadpoolctl scans the loaded libraries)."""
    import threadpoolctl  # imported on the first simulation only: it costs ~20 ms at start-up

    return threadpoolctl.ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread for the duration.

    A chunk's matmuls are small (a few MB), and OpenBLAS's second thread spins more than it computes on
    them: the jet MLP's ``fpgac sim`` took twice the CPU time and wall time with its default threads.
    """
    with _blas_threads().limit(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def simulating() -> Iterator[None]:
    """What a simulation runs under: :func:`one_blas_thread` and :func:`~fpgac.interp.heap.kept_heap`.

    :func:`run_fixed` enters it on every call; a caller that runs a batch as many calls (``fpgac sim``,
    a chunk each) enters it around them all, so that the heap is kept from one chunk to the next too.
    """
    with one_blas_thread(), kept_heap():
        yield


# Weights (elements) up to which the kernels keep what they computed once for a model (mantissas, matmul
# layouts) after a run, for the next run (sweeps, fidelity stages, `fpgac sim`'s chunks): a small model's
# run is short next to laying it out; a large one's is not, and keeping VGG-19's would hold 2.3 GB.
KEPT_PARAMS = 1 << 24


def run_fixed(
    graph: Graph, inputs: Inputs, *, trace: bool = False, chunk: int | None = None, rank_level: int = 0
) -> BitsimResult:
    """Simulate ``graph`` bit-accurately on a batch; see the module docstring.

    The batch runs in chunks of ``chunk`` samples (default :func:`chunk_rows`); every kernel computes
    each sample on its own, so the result is the one of a single whole-batch run, bit for bit.
    ``rank_level`` picks the run-time rank level of a design that has them (:mod:`fpgac.ir.levels`; 0, the
    largest, by default).
    """
    graph = at_level(graph, rank_level)
    arrays = bind_inputs(graph, inputs, copy=False)
    total = arrays[0].shape[0] if arrays else 0
    step = chunk or chunk_rows(graph)
    starts = range(0, total, step) if total else range(1)
    steps = _schedule(graph, {} if trace else relus_after_pools(graph))
    large = sum(math.prod(p.shape) for node in graph.nodes for p in node.params.values()) > KEPT_PARAMS
    with simulating():  # a large model's one chunk lets each layer's layouts go once it has run
        parts = [
            _run_chunk(graph, [a[i : i + step] for a in arrays], trace, steps, large and len(starts) == 1)
            for i in starts
        ]
    if large:
        forget(graph.nodes)  # laying a large model's weights out again is cheap next to simulating it
    return BitsimResult.concatenate(parts)


def relus_after_pools(graph: Graph) -> dict[int, Node]:
    """The relus that run on their max pool's output instead of its input, by ``id`` of the pool.

    A relu whose only user is a max pool that commutes with it
    (:func:`~fpgac.interp.fixed_kernels.pools_before_relu`: exact, overflow counts included) computes on
    the pooled tensor, a quarter of the elements after a 2x2 pool (on the digits CNN the relus were
    10% of a run). Not while tracing, where the relu's own output is asked for.
    """
    outputs = {id(v) for v in graph.outputs}
    relus = {}
    for node in graph.nodes:
        users = node.output.consumers if node.op == "relu" and id(node.output) not in outputs else []
        if len(users) == 1 and users[0].op == "max_pool" and pools_before_relu(node, users[0]):
            relus[id(users[0])] = node
    return relus


@dataclass(frozen=True)
class _Step:
    """One node of a run, with what every chunk's loop needs looked up once (on the digits CNN the loop's
    own bookkeeping was a tenth of a chunk's time)."""

    node: Node
    fn: FixedFn
    fmts: list[Fixed]
    inputs: tuple[int, ...]  # ids of the values it reads
    ints: bool  # its kernel takes int64 (or object) mantissas, not float64 ones
    frees: tuple[int, ...]  # ids of the values no later node reads and the graph does not return
    deferred: bool  # a relu that runs on its pool's output (relus_after_pools)
    relu: Node | None  # the relu that runs on this pool's output

    @property
    def where(self) -> str:
        return f"node {self.node.name!r} ({self.node.op})"


def _schedule(graph: Graph, relus: dict[int, Node]) -> list[_Step]:
    """The graph's nodes as :class:`_Step` s, relus moved after their pools as ``relus`` says."""
    last_use = {id(v): i for i, node in enumerate(graph.nodes) for v in node.inputs}
    kept = {id(v) for v in graph.outputs}
    deferred = {id(r) for r in relus.values()}
    steps = []
    for i, node in enumerate(graph.nodes):
        where = f"node {node.name!r} ({node.op})"
        fn = FIXED_OPS.get(node.op) or HLS4ML_OPS.get(node.op)
        if fn is None:
            raise FixedKernelError(f"{where}: this op has no fixed-point kernel")
        inputs = tuple(dict.fromkeys(id(v) for v in node.inputs))
        steps.append(
            _Step(
                node,
                fn,
                [_format(v.type.format, f"{where} input {v.name!r}") for v in node.inputs],
                tuple(id(v) for v in node.inputs),
                node.op not in FLOAT_MANTISSA_OPS,
                tuple(v for v in inputs if last_use[v] == i and v not in kept),
                id(node) in deferred,
                relus.get(id(node)),
            )
        )
    return steps


def _run_chunk(
    graph: Graph, arrays: list[np.ndarray], trace: bool, steps: list[_Step], release: bool = False
) -> BitsimResult:
    """One chunk through every step; ``release``: each node's layouts are dropped once it has run."""
    env: dict[int, np.ndarray] = {}
    overflows: dict[str, int] = {}
    elements: dict[str, int] = {}
    traced: dict[str, np.ndarray] = {}
    for value, array in zip(graph.inputs, arrays, strict=True):
        fmt = _format(value.type.format, f"input {value.name!r}")
        array = np.asarray(array, dtype=np.float32)  # as `fpgac sim` loads them and the testbench reads them
        if np.isnan(array).any():
            raise SimulationError(f"input {value.name!r} contains NaN, which has no fixed-point value")
        m, bad = fixed.quantize_count(array, fmt)
        env[id(value)] = m
        overflows[value.name], elements[value.name] = bad, m.size
        if trace:
            traced[value.name] = m
    for step in steps:
        node = step.node
        if step.ints:
            for v in step.inputs:  # converted once, in place, for every later user too
                env[v] = int_mantissas(env[v])
        if step.deferred:  # its pool reads its input, and it runs on the pool's output
            m, bad = env[step.inputs[0]], 0
            elements[node.name] = len(m) * math.prod(node.output.shape)
        else:
            m, bad = _run_node(step, [env[v] for v in step.inputs])
            elements[node.name] = m.size
        if step.relu is not None:
            m, _ = relu(step.relu, [m], [_format(step.relu.inputs[0].type.format, node.name)])
        env[id(node.output)] = m
        overflows[node.name] = bad
        if release:
            forget((node,))
        if trace:
            traced[node.output.name] = int_mantissas(m)
        for v in step.frees:
            env.pop(v, None)
    # In the callers' layout of each output (fpgac.ir.boundary); the trace keeps the logical order.
    mantissas = [output_to_callers(graph, i, int_mantissas(env[id(v)])) for i, v in enumerate(graph.outputs)]
    outputs = [
        fixed.to_float(m, _format(v.type.format, f"output {v.name!r}"))
        for m, v in zip(mantissas, graph.outputs, strict=True)
    ]
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


def _run_node(step: _Step, args: list[np.ndarray]) -> tuple[np.ndarray, int]:
    node = step.node
    try:
        m, bad = step.fn(node, args, step.fmts)
    except FpgacError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise SimulationError(f"{step.where}: {type(exc).__name__}: {exc}") from exc
    expected = (args[0].shape[0], *node.output.shape)
    if m.shape != expected:
        raise SimulationError(f"{step.where}: produced shape {m.shape}, its output type says {expected}")
    return m, bad
