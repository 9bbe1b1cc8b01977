"""The layout of the callers' input arrays, where it is not the graph's own (logical) axis order.

tf2onnx and Keras models take channels-last inputs (NHWC, NWC) and transpose them to channels first as
their first step. In io stream that transpose would gather the whole tensor before the first layer starts,
for nothing: the design's input port takes pixels channels-last already. So the frontend removes it
(:func:`fpgac.frontend.layouts.absorb_input_transposes`): the graph input becomes the channels-first
value, and ``graph.input_layouts`` records, per input, the order of its logical axes in the arrays the
callers hold, as a :class:`~fpgac.ir.types.TensorType` layout does (``(1, 2, 0)`` on a ``(C, H, W)``
input: NHWC arrays).

Whatever takes the user's data (the interpreter and the simulator through ``bind_inputs``, calibration,
the testbench's data, ``fpgac verify``'s random samples, the array files of ``fpgac sim``, fine-tuning's
data and its torch module) asks this
module for the shape to expect and converts here, so every one of them takes the arrays onnxruntime takes.

Outputs alike: a model whose output is a feature map transposed back to channels last as its last step
(tf2onnx) has that transpose removed too (:func:`fpgac.frontend.layouts.absorb_output_transposes`), and
``graph.output_layouts`` records, per output *position* (an output may be one value twice, and passes
replace output values in place), the order of its logical axes in the callers' arrays. Whatever hands
outputs to the user (``run_float``, ``run_fixed``, both C-simulation collectors) converts them here; the
design's ports, the testbench's expected file and every trace stay in the logical order.
"""

from __future__ import annotations

import numpy as np

from fpgac.ir.graph import Graph, Value

_AXIS_LETTERS = {1: "C", 2: "CW", 3: "CHW", 4: "CDHW"}  # logical (channels-first) axes, by rank


def input_layout(graph: Graph, value: Value) -> tuple[int, ...]:
    """The order of ``value``'s logical axes in the callers' arrays (the identity when none is declared)."""
    return graph.input_layouts.get(value.name, tuple(range(len(value.shape))))


def array_shape(graph: Graph, value: Value) -> tuple[int, ...]:
    """The per-sample shape of the callers' arrays for graph input ``value``."""
    return tuple(value.shape[a] for a in input_layout(graph, value))


def logical_axes(graph: Graph, value: Value) -> tuple[int, ...] | None:
    """The axes of a batch ``(N, *array_shape)`` of graph input ``value`` in the value's logical order,
    the batch first (the permutation that makes it ``(N, *value.shape)``); None when no layout is declared.

    numpy arrays (:func:`to_logical`) and torch tensors (the fine-tuning module) alike transpose by it.
    """
    layout = graph.input_layouts.get(value.name)
    if layout is None:
        return None
    return (0, *(int(a) + 1 for a in np.argsort(layout)))


def to_logical(graph: Graph, value: Value, array: np.ndarray) -> np.ndarray:
    """A batch ``(N, *array_shape)`` of graph input ``value`` as ``(N, *value.shape)`` (a view)."""
    axes = logical_axes(graph, value)
    return array if axes is None else array.transpose(axes)


def layout_name(graph: Graph, value: Value) -> str:
    """The callers' layout of graph input ``value`` by axis letters (``NHWC``; ``NCHW`` for no layout)."""
    return _letters(input_layout(graph, value))


def output_layout(graph: Graph, index: int) -> tuple[int, ...]:
    """The order of graph output ``index``'s logical axes in the callers' arrays (identity when none)."""
    return graph.output_layouts.get(index, tuple(range(len(graph.outputs[index].shape))))


def output_array_shape(graph: Graph, index: int) -> tuple[int, ...]:
    """The per-sample shape of the callers' arrays of graph output ``index``."""
    return tuple(graph.outputs[index].shape[a] for a in output_layout(graph, index))


def output_axes(graph: Graph, index: int) -> tuple[int, ...] | None:
    """The axes of a batch ``(N, *value.shape)`` of graph output ``index`` in the callers' order, the
    batch first; None when no layout is declared (numpy arrays and torch tensors transpose by it)."""
    layout = graph.output_layouts.get(index)
    return None if layout is None else (0, *(a + 1 for a in layout))


def output_to_callers(graph: Graph, index: int, array: np.ndarray) -> np.ndarray:
    """A batch ``(N, *value.shape)`` of graph output ``index`` in the callers' layout (a view)."""
    axes = output_axes(graph, index)
    return array if axes is None else array.transpose(axes)


def output_to_logical(graph: Graph, index: int, array: np.ndarray) -> np.ndarray:
    """The inverse of :func:`output_to_callers` (the testbench compares the ports' logical order)."""
    layout = graph.output_layouts.get(index)
    return array if layout is None else array.transpose(0, *(int(a) + 1 for a in np.argsort(layout)))


def output_layout_name(graph: Graph, index: int) -> str:
    """The callers' layout of graph output ``index`` by axis letters (``NHWC``; ``NCHW`` for none)."""
    return _letters(output_layout(graph, index))


def _letters(layout: tuple[int, ...]) -> str:
    letters = _AXIS_LETTERS.get(len(layout))
    if letters is None:
        return "N, then axes " + ",".join(str(a) for a in layout)
    return "N" + "".join(letters[a] for a in layout)
