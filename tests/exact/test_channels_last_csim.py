"""tf2onnx's channels-last models built end to end: the input's transpose to channels first is the
graph's boundary, not a layer, and every consumer of the user's data takes it channels-last.

The Conv2D model takes NHWC arrays and the Conv1D one NWC, as onnxruntime does: the calibration batch,
the testbench's samples (``tb/inputs.txt``, from the calibration batch), ``fpgac verify``'s inputs and its
random ones. The g++ C-simulation equals ``fpgac sim`` bit for bit in io stream and io parallel, and on
the hls4ml backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.build import BuildOptions, build, load_model
from fpgac.ir.boundary import array_shape
from tests.csim_support import skip_without_csim
from tests.exact.test_testbench import run_testbench
from tests.unit.test_exporter_quirks import tf2onnx_channels_last

skip_without_csim()


def _build(tmp_path: Path, rank: int, io: str, backend: str = "vitis") -> tuple[Path, dict, np.ndarray]:
    model = tf2onnx_channels_last(tmp_path / "tf2onnx.onnx", rank)
    graph = load_model(model)
    shape = array_shape(graph, graph.inputs[0])
    calib = np.random.default_rng(rank).uniform(-1, 1, (32, *shape)).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    out = tmp_path / "build"
    options = BuildOptions(calib=tmp_path / "calib.npy", io=io, precision=12, backend=backend)
    report = build(model, out, options)
    return out, report, calib


@pytest.mark.parametrize(("rank", "layout"), [(2, "NHWC"), (1, "NWC")])
@pytest.mark.parametrize("io", ["stream", "parallel"])
def test_channels_last_input_is_bit_exact_in_csim(tmp_path: Path, rank: int, layout: str, io: str) -> None:
    out, report, calib = _build(tmp_path, rank, io)
    assert report["inputs"]["x"]["layout"] == layout
    assert report["inputs"]["x"]["array_shape"] == ["N", *calib.shape[1:]]
    assert [layer["op"] for layer in report["layers"]] == ["conv", "relu", "reshape", "dense"]
    assert f"input layout {layout}" in (out / "report.md").read_text()
    if rank == 2 and io == "stream":  # the testbench's own samples, from the channels-last calibration batch
        tb = run_testbench(out, tmp_path)
        assert tb.returncode == 0 and "PASS: 8 samples" in tb.stdout, tb.stdout + tb.stderr
    assert verify(str(out), [calib[:8]]).mismatches == 0
    assert verify(str(out), samples=8).mismatches == 0  # random samples, drawn channels-last


@pytest.mark.slow
def test_channels_last_input_is_bit_exact_on_hls4ml(tmp_path: Path) -> None:
    pytest.importorskip("hls4ml")
    out, report, calib = _build(tmp_path, 2, "parallel", backend="hls4ml")
    assert report["inputs"]["x"]["layout"] == "NHWC"
    assert verify(str(out), [calib[:8]]).mismatches == 0
