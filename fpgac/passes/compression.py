"""What the compression passes (prune, share, huffman) share: which tensors they touch, the record they
leave in ``graph.metadata["compression"]`` for ``report.json``, and the calibration inputs of a layer."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fpgac.errors import FpgacError
from fpgac.interp.float_kernels import windows
from fpgac.interp.interpreter import run_float
from fpgac.ir.graph import Graph, Node
from fpgac.ir.types import Float

COMPRESSIBLE = ("dense", "conv")
MAX_ROWS = 20_000  # rows of a least-squares refit (conv: samples x output positions)


class CompressionOrderError(FpgacError):
    """A compression pass run where its result could not be kept (after quantize, or out of order)."""


def compressible(graph: Graph, before_quantize: str | None = None) -> list[Node]:
    """The nodes whose ``weight`` the compression passes rewrite.

    ``before_quantize`` names a pass that needs float weights (prune, share): quantize rounds what they
    produce (refitted weights, the codebook), not the other way round. Huffman codes only indices, so it
    may run after quantize.
    """
    nodes = [n for n in graph.nodes if n.op in COMPRESSIBLE and "weight" in n.params]
    for node in nodes if before_quantize else ():
        if not isinstance(node.params["weight"].format, Float):
            raise CompressionOrderError(
                f"{before_quantize} failed on node {node.name!r}: its weights are already quantized; "
                f"run {before_quantize} before quantize"
            )
    return nodes


def record(graph: Graph, name: str, options: Mapping[str, Any], layers: Mapping[str, Any]) -> None:
    """Append one entry to ``graph.metadata["compression"]`` (a new list: clones never share it)."""
    entry = {"pass": name, "options": dict(options), "layers": dict(layers)}
    graph.metadata["compression"] = [*graph.metadata.get("compression", []), entry]


def refittable(node: Node) -> bool:
    """Layers whose output is a matrix product of an input matrix and the weight: dense, ungrouped conv."""
    return node.op == "dense" or (node.op == "conv" and node.attrs.get("groups", 1) == 1)


def layer_inputs(graph: Graph, calib: Sequence[np.ndarray], node: Node) -> np.ndarray:
    """The matrix ``X`` with ``output = X @ weight.reshape(OUT, -1).T`` (+ bias) on the calibration batch.

    Dense: the input rows. Conv: the im2col patches (one row per sample and output position, columns in
    the weight's (channel, kernel...) order). At most ``MAX_ROWS`` rows, picked evenly, so two graphs'
    matrices always pair the same samples and positions.
    """
    traced = run_float(graph, list(calib), trace=True)
    assert isinstance(traced, dict)
    x = np.asarray(traced[node.inputs[0].name], dtype=np.float64)
    weight = node.params["weight"]
    fan_in = math.prod(weight.shape[1:])
    if node.op == "dense":
        rows = x.reshape(-1, fan_in)
    else:
        a = node.attrs
        kernel = list(weight.shape[2:])
        nd = len(kernel)
        out = list(node.output.shape[1:])
        view = windows(x, kernel, a["strides"], a["pads"], a["dilations"], out, 0.0)  # (N, C, *out, *kernel)
        order = (0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd))
        rows = view.transpose(order).reshape(-1, fan_in)
    if len(rows) > MAX_ROWS:
        rows = rows[np.linspace(0, len(rows) - 1, MAX_ROWS).astype(np.int64)]
    return rows
