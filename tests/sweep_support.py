"""A tiny classifier and data for the sweep and report tests: an ONNX MLP made with onnx.helper (no torch
export), a calibration batch and a labelled validation set, so a sweep point takes well under a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Points of the test sweep: 2 precisions x 3 pipelines, the last one failing (an unknown pass).
GRID = """
precision = [6, 10]
passes = ["", "prune(sparsity=0.5)", "nosuchpass"]
"""
POINTS, FAILING = 6, {2, 5}


def tiny_classifier(folder: Path) -> tuple[Path, Path, Path, Path]:
    """``(model, calib, data, grid)`` files in ``folder``: a 16-12-4 MLP, 32 calibration samples, 64
    labelled validation samples (labels from the float model with some flipped) and :data:`GRID`."""
    rng = np.random.default_rng(0)
    w1, b1 = (
        rng.standard_normal((16, 12)).astype(np.float32) * 0.4,
        rng.standard_normal(12).astype(np.float32),
    )
    w2, b2 = rng.standard_normal((12, 4)).astype(np.float32) * 0.4, rng.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = folder / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    calib, data, grid = folder / "calib.npy", folder / "val.npz", folder / "grid.toml"
    np.save(calib, rng.uniform(-1, 1, (32, 16)).astype(np.float32))
    x = rng.uniform(-1, 1, (64, 16)).astype(np.float32)
    labels = (np.maximum(x @ w1 + b1, 0) @ w2 + b2).argmax(axis=1)
    labels[::5] = (labels[::5] + 1) % 4
    np.savez(data, x=x, labels=labels)
    grid.write_text(GRID)
    return model, calib, data, grid
