"""What the compression passes (prune, share, huffman) share: which tensors they touch, the record they
leave in ``graph.metadata["compression"]`` for ``report.json``, and the calibration inputs of a layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fpgac.backends.sim.interpreter import run_float
from fpgac.ir.graph import Graph, Node

COMPRESSIBLE = ("dense", "conv")


def compressible(graph: Graph) -> list[Node]:
    """The nodes whose ``weight`` the compression passes rewrite."""
    return [n for n in graph.nodes if n.op in COMPRESSIBLE and "weight" in n.params]


def record(graph: Graph, name: str, options: Mapping[str, Any], layers: Mapping[str, Any]) -> None:
    """Append one entry to ``graph.metadata["compression"]`` (a new list: clones never share it)."""
    entry = {"pass": name, "options": dict(options), "layers": dict(layers)}
    graph.metadata["compression"] = [*graph.metadata.get("compression", []), entry]


def dense_inputs(graph: Graph, calib: Sequence[np.ndarray], node: Node) -> np.ndarray:
    """The rows a dense layer multiplies on the calibration batch, as ``(samples * rows, IN)`` float64."""
    traced = run_float(graph, list(calib), trace=True)
    assert isinstance(traced, dict)
    x = traced[node.inputs[0].name]
    return np.asarray(x, dtype=np.float64).reshape(-1, node.params["weight"].shape[1])
