"""XNOR-popcount kernels in g++ C-simulation: bit for bit the simulator's exact sums, in both io styles.

The model (tests/unit/test_bipolar.py) has a grouped, strided, padded conv and a padded conv on a
bipolar input (padding cells are no taps) and a dense layer reading a 1-bit signed Quant through max
pooling and a flatten, all with biases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.build import BuildOptions, build, compile_model
from fpgac.ir.serialize import graph_files
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


@pytest.mark.slow
@pytest.mark.parametrize("offchip", [False, True], ids=["folded", "offchip"])
def test_folded_and_offchip_xnor_convs(tmp_path: Path, offchip: bool) -> None:
    """The padded conv's output stream folded into beats of 4 channels at reuse 3: the XNOR pixel kernel
    writes its pixel in beats; with its weights off chip it takes the off-chip row kernel (stored words,
    multiplied) and the other layers stay XNOR."""
    model = bnn_model(tmp_path / "bnn.onnx")
    graph = compile_model(model, BuildOptions(calib=calibration(tmp_path), backend="none")).graph
    conv = graph.node("Conv_2")
    quant = conv.output.consumers[0]
    lanes = {conv.output.name: 4, quant.output.name: 4}
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    away = frozenset({conv.name} if offchip else ())
    hls = vitis_plan(graph, get_board("zcu104"), "stream", {conv.name: 3}, offchip=away, lanes=lanes)
    plan.merge(hls, prefix="hls/")
    folder = write_plan(plan, tmp_path / "build", force=True)
    assert (folder / "hls/firmware/layers.h").read_text().count("_xnor") == (2 if offchip else 3)
    result = verify(str(folder), random_inputs(graph, 16, seed=3))
    assert result.mismatches == 0, [(d.layer, d.mismatches) for d in result.layers if d.mismatches]
