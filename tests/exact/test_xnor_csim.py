"""XNOR-popcount kernels in g++ C-simulation: bit for bit the simulator's exact sums, in both io styles.

The model (tests/unit/test_bipolar.py) has a grouped, strided, padded conv and a padded conv on a
bipolar input (padding cells are no taps) and a dense layer reading a 1-bit signed Quant through max
pooling and a flatten, all with biases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fpgac.backends.equivalence import verify
from fpgac.build import BuildOptions, build
from tests.csim_support import assert_compiles_without_warnings, skip_without_csim
from tests.unit.test_bipolar import bnn_model, calibration

skip_without_csim()


@pytest.mark.slow
@pytest.mark.parametrize(("io", "reuse"), [("parallel", 4), ("stream", 1)])
def test_xnor_layers_equal_the_simulator_bit_for_bit(tmp_path: Path, io: str, reuse: int) -> None:
    out = tmp_path / "build"
    options = BuildOptions(calib=calibration(tmp_path), io=io, reuse=reuse)
    report = build(bnn_model(tmp_path / "bnn.onnx"), out, options)
    layers = [layer for layer in report["layers"] if layer["op"] in ("dense", "conv")]
    assert [layer["resources"]["dsp"] for layer in layers] == [0, 0, 0]
    assert (out / "hls/firmware/layers.h").read_text().count("_xnor") == 3
    assert_compiles_without_warnings(out / "hls", tmp_path)
    result = verify(str(out), samples=32)
    assert result.mismatches == 0, result.first_mismatch
