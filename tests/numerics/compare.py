"""Shared checks of the numerics tests: the tolerance, onnxruntime as reference, IR round trips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fpgac.ir import Graph, graphs_equal, load_graph, parse_graph, print_graph, save_graph, verify

RTOL = 1e-4


def assert_close(ours: np.ndarray, ref: np.ndarray, what: str = "") -> None:
    """The float contract: 1e-4 relative, with an absolute floor of 1e-4 times the output's scale.

    ``np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * max(1, abs(ref).max()))``:
    the floor keeps values near zero (where relative error is meaningless after
    float32 cancellation) from failing, but scales with the output so it cannot
    hide a wrong large output.
    """
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape}, reference {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def run_onnxruntime(model: Path | bytes, feeds: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> list:
    """Outputs of onnxruntime (CPU) on ``feeds``, given in the order of the model's inputs or by name."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about unused initializers in old models
    source = str(model) if isinstance(model, Path) else model
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    if not isinstance(feeds, Mapping):
        feeds = {i.name: x for i, x in zip(session.get_inputs(), feeds, strict=True)}
    return session.run(None, dict(feeds))


def param_data(graph: Graph) -> dict[tuple[str, str], np.ndarray]:
    return {(node.name, key): p.data for node in graph.nodes for key, p in node.params.items()}


def assert_round_trips(graph: Graph, folder: Path) -> Graph:
    """Text form and saved folder both give back an equal graph; returns the one loaded from disk."""
    text = print_graph(graph)
    parsed = parse_graph(text, param_data(graph))
    assert graphs_equal(parsed, graph), "parse_graph(print_graph(g)) differs from g"
    assert print_graph(parsed) == text, "text form is not stable under a round trip"
    save_graph(graph, folder)
    loaded = load_graph(folder)
    assert graphs_equal(loaded, graph), "load_graph(save_graph(g)) differs from g"
    verify(loaded)
    return loaded
