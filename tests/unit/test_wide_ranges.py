"""Numerics that hold on real networks: logits of any range, uncalibrated formats, saturating inputs.

Deep nets reach value ranges that small test models never do (ShuffleNet's logits are about +-2e5; interval
bounds double per layer without calibration). Each test is a small model that reaches such a range.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpgac.analysis.ranges import GROWTH_BITS, interval_ranges
from fpgac.build import load_model
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Graph, Param, TensorType, verify
from fpgac.ir.types import Fixed
from fpgac.passes.quantize import Quantize
from tests.numeric_models import wide_softmax_model


def fpgac(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fpgac", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("calibrated", [True, False], ids=["calib", "no_calib"])
def test_softmax_of_huge_logits_builds_and_simulates(calibrated: bool, tmp_path: Path) -> None:
    """The repro of issue #13: logits of +-1e5 gave a 1-entry exp table (sim divided by zero) or none.

    Calibrated, the probabilities are one-hot as in float. Uncalibrated, the logits' bound (about 1e6) is
    capped at 2^10 (the build warns), so the largest logits saturate alike and share the probability: the
    float argmax is among the simulated maxima, and the probabilities still sum to at most 1.
    """
    model = wide_softmax_model(tmp_path / "m.onnx")
    x = np.random.default_rng(1).uniform(-1, 1, (32, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    calib = ["--calib", tmp_path / "x.npy"] if calibrated else []
    built = fpgac("build", model, "--board", "zcu104", "--backend", "none", "--out", tmp_path / "b", *calib)
    assert built.returncode == 0, built.stderr
    result = fpgac("sim", tmp_path / "b", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no numpy warning, no saturated input
    got = np.load(tmp_path / "y.npy")
    want = run_float(load_model(model), [x])[0]
    assert np.all(got >= 0) and np.all(got.sum(axis=1) <= 1)
    if calibrated:
        assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))
        assert np.abs(got - want).max() < 0.01
    else:
        assert "capped" in built.stderr
        rows = np.arange(len(x))
        assert np.array_equal(got[rows, want.argmax(axis=1)], got.max(axis=1))


def deep_mlp(layers: int, width: int = 6, scale: float = 1.5) -> Graph:
    """A chain of dense layers whose interval bounds grow about ``width * scale`` times per layer."""
    rng = np.random.default_rng(layers)
    graph = Graph("deep")
    x = graph.add_input("x", TensorType((width,)))
    for i in range(layers):
        weight = Param((rng.standard_normal((width, width)) * scale).astype(np.float32))
        x = graph.add("dense", [x], name=f"fc{i}", params={"weight": weight}).output
    graph.set_outputs([x])
    return graph


def test_interval_bounds_of_a_deep_net_are_capped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """300 layers: the bounds would pass float64's range (ResNet-50 and DenseNet-121 raised OverflowError)."""
    with caplog.at_level(logging.WARNING):
        q = Quantize(precision=16).run(deep_mlp(300))
    verify(q)
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message and "--calib" in message
    assert f"from layer 'fc{first_capped(deep_mlp(300))}' (dense)" in message
    limit = 2.0**GROWTH_BITS
    for node in q.nodes:
        fmt = node.output.type.format
        assert isinstance(fmt, Fixed) and fmt.int_bits <= GROWTH_BITS + 2, (node.name, fmt)
        assert fmt.max_mantissa * fmt.lsb >= min(limit, 1.0)


def first_capped(graph: Graph) -> int:
    """Index of the first layer whose float interval bound passes the cap."""
    interval_bound = np.ones(graph.inputs[0].shape)
    for i, node in enumerate(graph.nodes):
        interval_bound = np.abs(node.params["weight"].data.astype(np.float64)) @ interval_bound
        if interval_bound.max() > 2.0**GROWTH_BITS:
            return i
    raise AssertionError("never capped")


def test_only_capped_layers_saturate() -> None:
    """After a cap, bounds are sound again (the capped value saturates in its format): corner inputs
    overflow at capped layers only."""
    graph = deep_mlp(8)
    _, capped = interval_ranges(graph.clone(), (-1.0, 1.0))
    assert capped and len(capped) < len(graph.nodes)
    q = Quantize(precision=16).run(graph)
    rng = np.random.default_rng(5)
    x = np.where(rng.random((64, 6)) < 0.5, -1.0, 1.0).astype(np.float32)
    overflows = run_fixed(q, [x]).overflows
    assert {name for name, count in overflows.items() if count} <= set(capped)


def test_sim_says_when_inputs_saturate(tmp_path: Path) -> None:
    """Inputs of 0..255 into a build made for the default input range [-1, 1]: one warning line."""
    model = wide_softmax_model(tmp_path / "m.onnx", scale=0.1)
    built = fpgac("build", model, "--board", "zcu104", "--backend", "none", "--out", tmp_path / "b")
    assert built.returncode == 0, built.stderr
    x = np.random.default_rng(2).integers(0, 256, (10, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = fpgac("sim", tmp_path / "b", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.strip().splitlines()
    saturated = int(np.count_nonzero(x > 1.0))
    assert f"input 'x': {saturated} of 160 values" in line and "--calib" in line, line
