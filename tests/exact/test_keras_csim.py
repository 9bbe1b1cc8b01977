"""A QKeras model file built end to end: `fpgac verify` finds 0 mismatching bits (sim == g++ csim).

The model (``tests/unit/test_keras_frontend.py``'s QKeras CNN: every quantizer kind, depthwise conv,
pooling, flatten) is written as a Keras 2 ``.h5`` with h5py and built in io stream (line buffers and
FIFOs; io parallel gave 0 mismatches too, kept out of CI's time budget); its formats are QKeras's
(SAT_SYM, RND_CONV, unsigned, per-channel power-of-two weight scales), which the C++ types
must reproduce exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.build import BuildOptions, build
from tests.csim_support import skip_without_csim
from tests.keras_files import write_h5
from tests.unit.test_keras_frontend import _qkeras_cnn

skip_without_csim()


@pytest.mark.slow
def test_qkeras_cnn_is_bit_exact_in_csim(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    model = write_h5(tmp_path / "qcnn.h5", _qkeras_cnn(rng), (6, 6, 2))
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.uniform(-1.2, 1.2, (32, 6, 6, 2)).astype(np.float32))
    out = tmp_path / "build"
    build(model, out, BuildOptions(calib=calib, io="stream", precision=12))
    result = verify(str(out), samples=16)
    assert result.mismatches == 0


@pytest.mark.slow
@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_binary_and_ternary_layers_are_bit_exact_in_csim(tmp_path: Path, io: str) -> None:
    """Binary and ternary weights (2-bit formats, no DSP in the estimate, adds and subtracts in the
    kernels: ``fpgac::mac``) in both io styles."""
    from tests.unit.test_sign_weights import sign_net

    model = sign_net(tmp_path)
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).uniform(-1, 1, (32, 4, 4, 2)).astype(np.float32))
    out = tmp_path / "build"
    report = build(model, out, BuildOptions(calib=calib, io=io))
    layers = [layer for layer in report["layers"] if layer["op"] in ("dense", "conv")]
    assert [layer["resources"]["dsp"] for layer in layers] == [0, 0, 0]
    assert (out / "hls/firmware/layers.h").read_text().count("_config, true>") == 3
    assert verify(str(out), samples=16).mismatches == 0
