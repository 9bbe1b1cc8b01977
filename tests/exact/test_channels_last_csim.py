"""tf2onnx's channels-last models built end to end: the input's transpose to channels first is the
graph's boundary, not a layer, and every consumer of the user's data takes it channels-last.

The Conv2D model takes NHWC arrays and the Conv1D one NWC, as onnxruntime does: the calibration batch,
the testbench's samples (``tb/inputs.txt``, from the calibration batch), ``fpgac verify``'s inputs and its
random ones. The g++ C-simulation equals ``fpgac sim`` bit for bit in io stream and io parallel, and on
the hls4ml backend. A model whose output is an NHWC feature map gives its outputs NHWC from both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.build import BuildOptions, build, load_model
from fpgac.ir.boundary import array_shape
from fpgac.ir.serialize import load_graph
from tests.csim_support import skip_without_csim
from tests.exact.test_testbench import run_testbench
from tests.unit.test_exporter_quirks import tf2onnx_channels_last, tf2onnx_feature_map

skip_without_csim()


def _build(
    tmp_path: Path, rank: int, io: str, backend: str = "vitis", model: Path | None = None
) -> tuple[Path, dict, np.ndarray]:
    model = model or tf2onnx_channels_last(tmp_path / "tf2onnx.onnx", rank)
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
def test_channels_last_input_and_output_are_bit_exact_on_hls4ml(tmp_path: Path) -> None:
    pytest.importorskip("hls4ml")
    model = tf2onnx_feature_map(tmp_path / "feature_map.onnx")  # NHWC in, NHWC feature map out
    out, report, calib = _build(tmp_path, 2, "parallel", backend="hls4ml", model=model)
    assert report["inputs"]["x"]["layout"] == "NHWC"
    assert [entry["layout"] for entry in report["outputs"].values()] == ["NHWC"]
    assert verify(str(out), [calib[:8]]).mismatches == 0


@pytest.mark.parametrize("io", ["stream", "parallel"])
def test_channels_last_output_is_bit_exact_in_csim(tmp_path: Path, io: str) -> None:
    """The output's transpose back to NHWC is the boundary: the design's port gives the channels-first
    value, and ``fpgac sim`` and the C-simulation both give the NHWC arrays onnxruntime gives."""
    from fpgac.backends.vitis.csim import run_csim
    from fpgac.interp.simulator import run_fixed

    out, report, calib = _build(tmp_path, 2, io, model=tf2onnx_feature_map(tmp_path / "feature_map.onnx"))
    (entry,) = report["outputs"].values()
    assert entry["layout"] == "NHWC" and entry["array_shape"] == ["N", 5, 4, 4]
    assert [layer["op"] for layer in report["layers"]] == ["conv", "relu"]
    assert "output layout NHWC" in (out / "report.md").read_text()
    if io == "stream":  # the testbench compares the port's channels-first order
        tb = run_testbench(out, tmp_path)
        assert tb.returncode == 0 and "PASS: 8 samples" in tb.stdout, tb.stdout + tb.stderr
    (ours,) = run_fixed(load_graph(out), calib[:8]).outputs
    (theirs,) = run_csim(out, [calib[:8]]).outputs
    assert ours.shape == (8, 5, 4, 4) and np.array_equal(ours, theirs)
    assert verify(str(out), [calib[:8]]).mismatches == 0
