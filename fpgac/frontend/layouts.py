"""Channels-last transposes of Keras and tf2onnx models, absorbed where they cost nothing.

Keras and tf2onnx compute in channels-last order, so a channels-first design meets a ``transpose`` to
channels first right after each channels-last input, and one to channels last right before each
``Flatten -> Dense`` or global pooling (a ``ReduceMean`` over the channels-last spatial axes). Each
gathers the whole tensor in io stream. The first is absorbed into the graph's boundary: the input becomes
the channels-first value and the callers' arrays keep their layout (:mod:`fpgac.ir.boundary`); so is a
transpose back to channels last that is a graph output (the graph gives the channels-first value). The second
into the dense layer: permuting its weight columns computes the same outputs (the dense layer sums the
same products). The third into the reduction: reducing the channels-first value over the same axes gives
the same values in the same order. Exporters that keep the per-layer transposes (keras2onnx, tf2onnx
without its optimizer) write ``Transpose -> BatchNormalization/activation in NHWC -> Transpose back``:
the first transpose moves down through the elementwise ops and cancels against the second.
"""

from __future__ import annotations

import math

import numpy as np

from fpgac.ir import Graph, Node, Param, TensorType, Value
from fpgac.ir.opdef import Kind
from fpgac.ir.ops import OPS


def absorb_input_transposes(graph: Graph) -> None:
    """An input read only by transposes of one perm becomes their output: the graph takes the transposed
    value, and records in ``graph.input_layouts`` that the callers' arrays are in the input's order."""
    for value in graph.inputs:
        if len(value.uses) == 1 and value.uses[0][0].op == "reshape":
            _transpose_before_unit_reshape(graph, value.uses[0][0])
        readers = [node for node, _ in value.uses]
        if not readers or value.name in graph.input_layouts or any(n.op != "transpose" for n in readers):
            continue
        perm = readers[0].attrs["perm"]
        if perm == list(range(len(perm))):
            continue
        if any(n.attrs["perm"] != perm or n.output in graph.outputs for n in readers):
            continue
        value.type = readers[0].output.type
        for node in readers:
            graph.bypass(node, value)
        graph.input_layouts[value.name] = tuple(int(a) for a in np.argsort(perm))


def absorb_output_transposes(graph: Graph) -> None:
    """A graph output that is a transpose (read by nothing else) of a value that is no graph input or
    output becomes that value: the graph gives it in its logical order and records in
    ``graph.output_layouts`` that the callers' arrays are in the transpose's order (tf2onnx's transpose
    of a feature map back to channels last as its last step)."""
    for index, value in enumerate(graph.outputs):
        node = value.producer
        if node is None or node.op != "transpose" or value.uses or graph.outputs.count(value) > 1:
            continue
        source = node.inputs[0]
        if source in graph.inputs or source in graph.outputs or index in graph.output_layouts:
            continue
        graph.bypass(node, source)
        graph.output_layouts[index] = tuple(int(a) for a in node.attrs["perm"])


def _transpose_before_unit_reshape(graph: Graph, reshape: Node) -> None:
    """``reshape`` that only inserts or drops unit axes (tf2onnx's Unsqueeze before a Conv1D's Conv2D)
    followed by a transpose alone: transpose first (the same non-unit axes in the same order), then
    reshape, so that a transpose reads the graph input directly."""
    source, out = reshape.inputs[0], reshape.output
    if [d for d in source.shape if d != 1] != [d for d in out.shape if d != 1]:
        return
    if len(out.uses) != 1 or out in graph.outputs or out.uses[0][0].op != "transpose":
        return
    transpose = out.uses[0][0]
    if transpose.output in graph.outputs:
        return
    kept = [i for i, d in enumerate(source.shape) if d != 1]  # the k-th non-unit axis of out is kept[k]
    positions = {axis: k for k, axis in enumerate(i for i, d in enumerate(out.shape) if d != 1)}
    perm = [kept[positions[a]] for a in transpose.attrs["perm"] if a in positions]
    perm += [i for i, d in enumerate(source.shape) if d == 1]
    index = graph.index_of(reshape)
    moved = graph.add("transpose", [source], name=transpose.name, attrs={"perm": perm}, index=index)
    shape = {"shape": list(transpose.output.shape)}
    flat = graph.add("reshape", [moved.output], name=reshape.name, attrs=shape, index=index + 1)
    graph.replace_value(transpose.output, flat.output)
    graph.remove(transpose)
    graph.remove(reshape)


def sink_transposes(graph: Graph) -> None:
    """A transpose followed, through elementwise ops of one input, by another transpose, a flatten or a
    reduction: the elementwise ops run on the untransposed value (their params transposed to match) and
    the transpose moves after them, where it merges with the next transpose (none left when the two
    cancel) or meets the flatten or reduction that absorbs it."""
    for node in list(graph.nodes):
        if node.graph is None or node.op != "transpose":
            continue
        found = _elementwise_chain(graph, node)
        if found is None:
            continue
        chain, end = found
        source, perm = node.inputs[0], node.attrs["perm"]
        inverse = [int(a) for a in np.argsort(perm)]
        for op in chain:
            _on_untransposed(op, source, inverse)
            source = op.output
        if end.op == "transpose":
            merged = [perm[a] for a in end.attrs["perm"]]
            if merged == list(range(len(merged))):
                graph.bypass(end, source)
            else:
                end.attrs["perm"] = merged
                end.set_input(0, source)
            graph.remove(node)
        else:
            graph.remove(node)
            moved = graph.add(
                "transpose", [source], name=node.name, attrs={"perm": perm}, index=graph.index_of(end)
            )
            end.set_input(0, moved.output)


def _elementwise_chain(graph: Graph, node: Node) -> tuple[list[Node], Node] | None:
    """The single-input elementwise ops after transpose ``node``, each read only by the next, and the
    node that reads the last: another transpose, or (after at least one op) a flatten or a reduction;
    None where the path branches, reaches a graph output or ends elsewhere."""
    chain: list[Node] = []
    value = node.output
    while len(value.uses) == 1 and value not in graph.outputs:
        reader = value.uses[0][0]
        if reader.op == "transpose" or (chain and _absorbs_transposes(reader)):
            return chain, reader
        if OPS[reader.op].kind != Kind.ELEMENTWISE or len(reader.inputs) != 1:
            return None
        if any(p.data.ndim > len(value.shape) or p.encoding is not None for p in reader.params.values()):
            return None
        chain.append(reader)
        value = reader.output
    return None


def _absorbs_transposes(node: Node) -> bool:
    """Whether ``node`` is a flatten or a reduction, which may absorb a transpose before it."""
    return node.op == "reduce" or (node.op == "reshape" and len(node.output.shape) == 1)


def _on_untransposed(op: Node, source: Value, inverse: list[int]) -> None:
    """Make elementwise ``op`` read ``source`` (its input before a transpose whose inverse is
    ``inverse``): each param, broadcast against the transposed value, is transposed back."""
    rank = len(source.shape)
    for key, param in op.params.items():
        full = param.data.reshape((1,) * (rank - param.data.ndim) + param.data.shape)
        op.params[key] = Param(np.ascontiguousarray(full.transpose(inverse)), param.format)
    op.set_input(0, source)
    op.output.type = TensorType(source.shape, op.output.type.format)


def absorb_reduce_transposes(graph: Graph) -> None:
    """``transpose -> reduce`` without kept unit axes: reduce the transpose's input over the axes they
    were, where the axes left keep their order (channels-last global pooling: the channels are left)."""
    for node in list(graph.nodes):
        if node.op != "transpose" or node.output in graph.outputs:
            continue
        perm = node.attrs["perm"]
        readers = [reader for reader, _ in node.output.uses]
        if not readers or any(r.op != "reduce" or r.attrs["keepdims"] for r in readers):
            continue
        if not all(_keeps_order(perm, r.attrs["axes"]) for r in readers):
            continue
        for reader in readers:
            reader.attrs["axes"] = sorted(perm[a] for a in reader.attrs["axes"])
            reader.set_input(0, node.inputs[0])
        graph.remove(node)


def _keeps_order(perm: list[int], axes: list[int]) -> bool:
    """Whether reducing a value transposed by ``perm`` over ``axes`` leaves the source's other axes in
    their order (then the transpose moves nothing the reduction keeps)."""
    left = [p for i, p in enumerate(perm) if i not in axes]
    return left == sorted(left)


def absorb_flatten_transposes(graph: Graph) -> None:
    """``Flatten -> Dense``: flatten the channels-first value as it is and permute the dense layer's
    weight columns instead of transposing the tensor to channels last first (a transpose gathers the whole
    tensor in io stream, and the hls4ml lowering relayouts a flatten itself). Reshapes between the
    transpose and the flatten (tf2onnx's Squeeze of a Conv1D's unit axis) go too: a flatten of a reshape
    is the flatten of its input."""
    for node in list(graph.nodes):
        reshapes = _reshapes_to_dense(graph, node) if node.op == "transpose" else None
        if not reshapes:
            continue
        source, perm = node.inputs[0], node.attrs["perm"]
        order = np.arange(math.prod(source.shape)).reshape(source.shape).transpose(perm).reshape(-1)
        dense = reshapes[-1].output.uses[0][0]
        weight = dense.params["weight"]
        permuted = np.empty_like(weight.data)
        permuted[:, order] = weight.data
        dense.params["weight"] = Param(permuted, weight.format)
        reshapes[-1].set_input(0, source)
        for dead in [*reversed(reshapes[:-1]), node]:
            graph.remove(dead)


def _reshapes_to_dense(graph: Graph, node: Node) -> list[Node] | None:
    """The reshapes from ``node``'s output to a flatten (the last) read by a dense layer alone, each read
    only by the next; None where the path branches, reaches a graph output or ends elsewhere."""
    reshapes: list[Node] = []
    value = node.output
    while len(value.uses) == 1 and value not in graph.outputs:
        reader = value.uses[0][0]
        if reader.op != "reshape":
            return None
        reshapes.append(reader)
        value = reader.output
        if len(value.shape) == 1:
            readers = value.uses
            ok = len(readers) == 1 and readers[0][0].op == "dense" and value not in graph.outputs
            return reshapes if ok else None
    return None
