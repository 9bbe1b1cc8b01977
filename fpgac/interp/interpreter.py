"""Run an IR graph on a numpy batch in float32: the reference every other backend is checked against.

The interpreter walks the graph's nodes in their (topological) order and calls
one function per op from :data:`fpgac.interp.float_kernels.FLOAT_OPS`. Arrays
carry the batch on axis 0 followed by the value's per-sample shape. Formats and
layouts are ignored: this is the float meaning of the graph, whatever number
formats a pass has assigned (the bit-accurate simulator honours those). The one
exception is a float graph whose frontend declared formats on values (QKeras's
activation quantizers): those values are rounded into them, as the trained
model computes them (:func:`declared_formats`).

Intermediate arrays are dropped as soon as their last consumer has run, so peak
memory on a deep network is a few activations, not all of them; ``trace=True``
keeps every value instead, for per-layer debugging, and ``observe`` sees every
value as it is computed (calibration's ranges), keeping none.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, overload

import numpy as np

from fpgac.errors import FpgacError
from fpgac.interp.float_kernels import FLOAT_OPS
from fpgac.ir import fixed
from fpgac.ir.boundary import array_shape, output_to_callers, to_logical
from fpgac.ir.graph import Graph, Node, Value
from fpgac.ir.types import Fixed

logger = logging.getLogger(__name__)

Inputs = np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]


class SimulationError(FpgacError):
    """The inputs do not fit the graph, or an op failed while simulating it."""


Observer = Callable[[Value, np.ndarray], None]


@overload
def run_float(
    graph: Graph, inputs: Inputs, *, trace: Literal[False] = False, observe: Observer | None = None
) -> list[np.ndarray]: ...
@overload
def run_float(
    graph: Graph, inputs: Inputs, *, trace: Literal[True], observe: Observer | None = None
) -> dict[str, np.ndarray]: ...
def run_float(
    graph: Graph, inputs: Inputs, *, trace: bool = False, observe: Observer | None = None
) -> list[np.ndarray] | dict[str, np.ndarray]:
    """Execute ``graph`` in float32 on a batch.

    Args:
        graph: the IR graph (per-sample shapes; the batch is implicit).
        inputs: one array for a single-input graph, a sequence in the order of
            ``graph.inputs``, or a mapping from input name to array. Each array
            is ``(batch, *per-sample shape)``, in the callers' layout of the input
            (:mod:`fpgac.ir.boundary`: NHWC for a tf2onnx or Keras image model); any integer or float dtype is
            converted to float32. NaN and inf pass through as data.
        trace: return every value (inputs, intermediates, outputs) by name
            instead of the graph outputs only.
        observe: called with every value (inputs first, then each node's
            output) and its array as soon as it is computed.

    Returns:
        The graph outputs in order, each ``(batch, *shape)`` float32 in the callers' layout of the
        output (:mod:`fpgac.ir.boundary`); or, with ``trace``, a dict of all values by value name, each
        in its logical order.

    Raises:
        SimulationError: the inputs do not match the graph, or a node failed
            (the message names the node and op).
    """
    arrays = bind_inputs(graph, inputs)
    declared = declared_formats(graph)
    arrays = [_declared(v, a, declared) for v, a in zip(graph.inputs, arrays, strict=True)]
    env: dict[int, np.ndarray] = {id(v): a for v, a in zip(graph.inputs, arrays, strict=True)}
    traced = {v.name: a for v, a in zip(graph.inputs, arrays, strict=True)}
    keep = {id(v) for v in graph.outputs}
    if observe is not None:
        for value, array in zip(graph.inputs, arrays, strict=True):
            observe(value, array)
    remaining = Counter(id(value) for node in graph.nodes for value in set(node.inputs))
    for node in graph.nodes:
        result = _declared(
            node.output, _run_node(node, [_lookup(env, v, node) for v in node.inputs]), declared
        )
        env[id(node.output)] = result
        if observe is not None:
            observe(node.output, result)
        if trace:
            traced[node.output.name] = result
            continue
        for value in {*node.inputs, node.output}:
            if value is not node.output:
                remaining[id(value)] -= 1
            if remaining[id(value)] <= 0 and id(value) not in keep:
                del env[id(value)]
    if trace:
        return traced
    return [output_to_callers(graph, i, _lookup(env, v, None)) for i, v in enumerate(graph.outputs)]


def declared_formats(graph: Graph) -> bool:
    """Whether ``graph`` is a float graph with formats a frontend declared (not yet quantized)."""
    return "quantize" not in graph.metadata and any(isinstance(v.type.format, Fixed) for v in graph.values())


def _declared(value: Value, array: np.ndarray, declared: bool) -> np.ndarray:
    """``array`` rounded into the value's declared format (as float32), when the graph declares them."""
    fmt = value.type.format
    if not declared or not isinstance(fmt, Fixed):
        return array
    return fixed.to_float(fixed.quantize(array, fmt), fmt).astype(np.float32).reshape(array.shape)


def _lookup(env: dict[int, np.ndarray], value: Value, node: Node | None) -> np.ndarray:
    try:
        return env[id(value)]
    except KeyError:
        where = f"node {node.name!r}" if node is not None else "graph output"
        raise SimulationError(
            f"{where}: value {value.name!r} is used before it is computed (is the graph sorted?)"
        ) from None


def _run_node(node: Node, args: list[np.ndarray]) -> np.ndarray:
    """Run one op and check its result against the output's declared per-sample shape."""
    where = f"node {node.name!r} ({node.op})"
    fn = FLOAT_OPS.get(node.op)
    if fn is None:
        raise SimulationError(f"{where}: the float interpreter has no implementation of this op")
    try:
        result = fn(args, node.attrs, node.params)
    except FpgacError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AssertionError) as exc:
        raise SimulationError(f"{where}: {type(exc).__name__}: {exc}") from exc
    batch = args[0].shape[0] if args else result.shape[0]
    expected = (batch, *node.output.shape)
    if result.shape != expected:
        raise SimulationError(f"{where}: produced shape {result.shape}, its output type says {expected}")
    logger.debug("%s -> %s", where, result.shape)
    return np.asarray(result, dtype=np.float32)


def bind_inputs(graph: Graph, inputs: Inputs, *, copy: bool = True) -> list[np.ndarray]:
    """Match user arrays to graph inputs and check count, dtype, shape and batch size; the arrays come
    back in the inputs' logical axis order (the callers' may differ: :mod:`fpgac.ir.boundary`).

    With ``copy`` (the default) each array is a fresh C-ordered float32 copy; without, the caller's
    arrays as they are (the simulator converts chunk by chunk, so a large batch is not copied whole).
    """
    names = [v.name for v in graph.inputs]
    if isinstance(inputs, Mapping):
        missing = [n for n in names if n not in inputs]
        unknown = [str(n) for n in inputs if n not in names]
        if missing or unknown:
            raise SimulationError(
                f"the model takes inputs {names}; missing {missing}, unknown {unknown}"
                if unknown
                else f"the model takes inputs {names}; missing {missing}"
            )
        arrays = [inputs[n] for n in names]
    elif isinstance(inputs, np.ndarray):
        arrays = [inputs]
    elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
        arrays = list(inputs)
    else:
        kind = type(inputs).__name__
        raise SimulationError(f"inputs must be an array, a sequence or a mapping, not {kind}")
    if len(arrays) != len(names):
        raise SimulationError(f"the model takes {len(names)} input(s) {names}, got {len(arrays)}")
    bound = [_check_input(graph, v, a, copy) for v, a in zip(graph.inputs, arrays, strict=True)]
    batches = {a.shape[0] for a in bound}
    if len(batches) > 1:
        sizes = ", ".join(f"{v.name!r}: {a.shape[0]}" for v, a in zip(graph.inputs, bound, strict=True))
        raise SimulationError(f"inputs have different batch sizes ({sizes})")
    return bound


def _check_input(graph: Graph, value: Value, data: object, copy: bool) -> np.ndarray:
    """The caller's array for ``value`` in the value's logical order (:mod:`fpgac.ir.boundary`)."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise SimulationError(f"input {value.name!r} is not an array: {exc}") from None
    if array.dtype.kind not in "iuf":
        raise SimulationError(f"input {value.name!r} has dtype {array.dtype}, not a real number type")
    expected = array_shape(graph, value)
    if array.ndim != len(expected) + 1 or tuple(array.shape[1:]) != expected:
        model = "(N" + "".join(f", {d}" for d in expected) + ")"
        got = tuple(array.shape)
        raise SimulationError(f"input {value.name!r} has shape {got} but the model takes {model}")
    array = to_logical(graph, value, array)
    if not copy:
        return array
    # A copy, so no output (a reshape of an input, say) can alias the caller's array.
    return np.array(array, dtype=np.float32, order="C", copy=True)
