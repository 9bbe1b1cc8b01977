"""g++ C-simulation of the kernels that real networks push to their limits: bit-exact with the simulator.

Softmax of logits of +-1e5 (a two-entry exp table when uncalibrated) and LRN, built by ``fpgac build`` with
and without calibration and compared by ``fpgac verify`` layer by layer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.build import BuildOptions, build
from tests.csim_support import skip_without_csim
from tests.numeric_models import lrn_model, wide_softmax_model

skip_without_csim()


def _verified(model: Path, folder: Path, x: np.ndarray, calib: Path | None, io: str) -> None:
    build(model, folder, BuildOptions(calib=calib, io=io))
    result = verify(str(folder), [x])
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert result.samples == x.shape[0] and not bad, bad


@pytest.mark.parametrize("calibrated", [True, False], ids=["calib", "no_calib"])
def test_softmax_of_huge_logits_bit_exact(calibrated: bool, tmp_path: Path) -> None:
    model = wide_softmax_model(tmp_path / "m.onnx")
    x = np.random.default_rng(3).uniform(-1, 1, (24, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _verified(model, tmp_path / "b", x, tmp_path / "x.npy" if calibrated else None, "parallel")


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("calibrated", [True, False], ids=["calib", "no_calib"])
def test_lrn_bit_exact(calibrated: bool, io: str, tmp_path: Path) -> None:
    model = lrn_model(tmp_path / "m.onnx")
    x = (np.random.default_rng(4).standard_normal((12, 3, 6, 6)) * 2).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _verified(model, tmp_path / "b", x, tmp_path / "x.npy" if calibrated else None, io)


def test_verify_cli_passes_on_an_lrn_model(tmp_path: Path) -> None:
    """``fpgac verify`` (random inputs over the input format's whole range) on a calibrated LRN build."""
    model = lrn_model(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.random.default_rng(5).standard_normal((16, 3, 6, 6)).astype(np.float32))
    build(model, tmp_path / "b", BuildOptions(calib=tmp_path / "x.npy"))
    result = subprocess.run(
        [sys.executable, "-m", "fpgac", "verify", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr + result.stdout
