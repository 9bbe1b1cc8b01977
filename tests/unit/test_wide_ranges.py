"""Numerics that hold on real networks: logits of any range, uncalibrated formats, saturating inputs.

Deep nets reach value ranges that small test models never do (ShuffleNet's logits are about +-2e5; interval
bounds double per layer without calibration). Each test is a small model that reaches such a range.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpgac.build import load_model
from fpgac.interp.interpreter import run_float
from tests.numeric_models import wide_softmax_model


def fpgac(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fpgac", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("calibrated", [True, False], ids=["calib", "no_calib"])
def test_softmax_of_huge_logits_builds_and_simulates_one_hot(calibrated: bool, tmp_path: Path) -> None:
    """The repro of issue #13: logits of +-1e5 gave a 1-entry exp table (sim divided by zero) or none."""
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
    assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))
    assert np.abs(got - want).max() < 0.01
