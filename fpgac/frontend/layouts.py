"""Channels-last transposes before a Flatten, absorbed into the dense layer after it.

Keras and tf2onnx compute in channels-last order, so a channels-first design meets a ``transpose`` to
channels last right before each ``Flatten -> Dense``. Permuting the dense layer's weight columns instead
computes the same outputs (the dense layer sums the same products) and saves the transpose, which gathers
the whole tensor in io stream.
"""

from __future__ import annotations

import math

import numpy as np

from fpgac.ir import Graph, Param


def absorb_flatten_transposes(graph: Graph) -> None:
    """``Flatten -> Dense``: flatten the channels-first value as it is and permute the dense layer's
    weight columns instead of transposing the tensor to channels last first (a transpose gathers the whole
    tensor in io stream, and the hls4ml lowering relayouts a flatten itself)."""
    for node in list(graph.nodes):
        if node.op != "transpose" or len(node.output.uses) != 1 or node.output in graph.outputs:
            continue
        flat = node.output.uses[0][0]
        if flat.op != "reshape" or len(flat.output.shape) != 1 or len(flat.output.uses) != 1:
            continue
        dense = flat.output.uses[0][0]
        if dense.op != "dense" or flat.output in graph.outputs:
            continue
        source = node.inputs[0]
        if node.attrs["perm"] != [*range(1, len(source.shape)), 0]:
            continue
        order = (
            np.arange(math.prod(source.shape)).reshape(source.shape).transpose(node.attrs["perm"]).reshape(-1)
        )
        weight = dense.params["weight"]
        permuted = np.empty_like(weight.data)
        permuted[:, order] = weight.data
        dense.params["weight"] = Param(permuted, weight.format)
        flat.set_input(0, source)
        graph.remove(node)
