"""End to end: torch model -> ONNX (both exporters) -> ``load_model`` -> ``run_float`` vs onnxruntime.

The models (``tests/models.py``) are the layer patterns users export: MLPs, CNNs,
depthwise-separable, residual, concat branches, squeeze-excite, 1-d convs, odd
pools and pads. Both exporters are covered because they emit different graphs for
the same model (the TorchScript one Flatten/Shape-Gather-Concat-Reshape chains
and constant-folded pads, the dynamo one Reshape with constant shapes, opset 20,
and occasionally a value_info shape that is wrong). Every export has a dynamic
batch dimension, exported at batch 2 and run at batch 3.

Tolerance (see ``compare.assert_close``): ``np.testing.assert_allclose(ours, ref,
rtol=1e-4, atol=1e-4 * max(1, abs(ref).max()))``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from fpgac.build import load_model
from fpgac.interp.interpreter import run_float
from fpgac.ir import verify
from tests.models import EXPORTERS, MODELS, build_model, random_input
from tests.numerics.compare import assert_close, assert_round_trips, run_onnxruntime

BATCH = 3
CASES = [pytest.param(name, exporter, id=f"{name}-{exporter}") for name in MODELS for exporter in EXPORTERS]

Export = Callable[[str, str], Path]


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_matches_onnxruntime(name: str, exporter: str, onnx_export: Export) -> None:
    """Our float semantics of the exported graph equal onnxruntime's on a fresh batch of 3.

    Tolerance: ``assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * max(1, abs(ref).max()))``.
    """
    path = onnx_export(name, exporter)
    graph = load_model(path)
    verify(graph)
    x = random_input(name, BATCH)
    (ref,) = run_onnxruntime(path, [x])
    with torch.no_grad():
        expected = build_model(name)(torch.from_numpy(x)).numpy()
    # Guards the reference itself: a broken export would make this test meaningless.
    assert_close(ref, expected, f"{name}/{exporter}: onnxruntime vs torch (exporter problem)")
    outputs = run_float(graph, [x])
    assert len(outputs) == 1, f"expected one output, got {len(outputs)}"
    assert_close(outputs[0], ref, f"{name}/{exporter}: run_float vs onnxruntime")


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_ir_round_trips(name: str, exporter: str, onnx_export: Export, tmp_path: Path) -> None:
    """The imported graph survives text and on-disk round trips, and the reloaded graph computes the same."""
    graph = load_model(onnx_export(name, exporter))
    loaded = assert_round_trips(graph, tmp_path / "graph")
    x = random_input(name, BATCH)
    for a, b in zip(run_float(graph, [x]), run_float(loaded, [x]), strict=True):
        np.testing.assert_array_equal(a, b)
