"""Compressed models through quantization and the Vitis backend: ``fpgac verify`` finds no mismatching bit.

The Quickstart's digits CNN is pruned (``reap``) or split (``lowrank``, SVD and Tucker-2) by ``fpgac build``
with calibration data, then C-simulated with g++ against the bit-accurate simulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.build import BuildOptions, build
from tests.csim_support import skip_without_csim

skip_without_csim()

pytestmark = pytest.mark.slow  # one g++ compile per case, 3-10 s each

MODEL = Path(__file__).resolve().parents[2] / "examples" / "digits_cnn.onnx"


@pytest.mark.parametrize(
    ("spec", "budget"),
    [("reap(keep=0.5)", None), ("lowrank(macs=0.4)", 0.4), ("lowrank(macs=0.5, method=tucker)", 0.5)],
)
def test_compressed_model_is_bit_exact_on_vitis(spec: str, budget: float | None, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    calib = tmp_path / "calib.npy"
    np.save(calib, (load_digits().images[:256, None] / 16.0).astype(np.float32))
    out = tmp_path / "build"
    build(MODEL, out, BuildOptions(calib=calib, passes=spec))
    report = json.loads((out / "report.json").read_text())
    (entry,) = report["compression"]
    assert entry["pass"] == spec.split("(")[0]
    assert entry["macs_after"] == report["macs"] < entry["macs_before"]
    if budget is not None:
        assert report["macs"] <= budget * entry["macs_before"]
    assert "Compression `" in (out / "report.md").read_text()
    result = verify(str(out), samples=16)
    assert result.mismatches == 0 and result.first_mismatch is None


@pytest.mark.parametrize("backend", ["vitis", "hls4ml"])
def test_pruned_residual_model_is_bit_exact(
    backend: str, tmp_path: Path, onnx_export: Callable[[str, str], Path]
) -> None:
    """REAP removes channels of the residual streams (every conv and add they cross) under a MAC budget
    (uniform allocation: every group shrinks)."""
    pytest.importorskip("torch")
    from tests.models import random_input

    calib = tmp_path / "calib.npy"
    np.save(calib, random_input("resnet_gap", 128, seed=3))
    out = tmp_path / "build"
    options = BuildOptions(calib=calib, passes="reap(macs=0.5)", backend=backend)
    build(onnx_export("resnet_gap", "torchscript"), out, options)
    report = json.loads((out / "report.json").read_text())
    (entry,) = report["compression"]
    assert report["macs"] <= 0.5 * entry["macs_before"]
    streams = [layer for layer in entry["layers"].values() if len(layer["producers"]) > 1]
    assert streams and all(layer["kept"] < layer["units"] for layer in streams)
    result = verify(str(out), samples=16)
    assert result.mismatches == 0 and result.first_mismatch is None
