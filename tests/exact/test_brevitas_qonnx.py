"""Brevitas-trained MLPs and CNNs (4-bit, 2-bit, binary weights, binarized), exported with ``export_qonnx``
and built by fpgac as exported (no qonnx clean-up first).

fpgac's bit-accurate simulation equals qonnx's own execution of the file on the held-out digits, and
``fpgac verify`` (simulator against g++ C-simulation of the generated HLS) finds 0 mismatching bits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.build import BuildOptions, build
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Fixed
from fpgac.ir.bipolar import is_xnor_layer
from fpgac.ir.serialize import load_graph

pytest.importorskip("brevitas")
pytest.importorskip("qonnx")

from tests.brevitas_trained import BATCHNORM, FLOAT_SCALES, WEIGHT_BITS, export, run_qonnx, trained

MODELS = [(family, variant) for family in ("mlp", "cnn") for variant in WEIGHT_BITS]


def _build(
    family: str, variant: str, root: Path, backend: str = "none", io: str = "auto"
) -> tuple[Path, Path]:
    model, data = trained(family, variant)
    onnx_path = export(model, data.x_test, root / f"{family}_{variant}.onnx")
    calib = root / "calib.npy"
    np.save(calib, data.x_train[:64])
    folder = root / "build"
    build(onnx_path, folder, BuildOptions(calib=calib, backend=backend, io=io))
    return onnx_path, folder


@pytest.mark.slow
@pytest.mark.parametrize(("family", "variant"), MODELS)
def test_simulation_equals_qonnx_execution(family: str, variant: str, tmp_path: Path) -> None:
    """Every held-out sample's outputs equal qonnx's bit for bit (so argmax agrees on all of them); the
    weights keep their trained grids as formats (4 bits: ap_fixed<4,...>, binary: 2 bits for +-1)."""
    onnx_path, folder = _build(family, variant, tmp_path)
    _, data = trained(family, variant)
    graph = load_graph(folder)
    ours = run_fixed(graph, [data.x_test]).outputs[0]
    theirs = run_qonnx(onnx_path, data.x_test)
    assert np.array_equal(ours, theirs), np.abs(ours - theirs).max()
    bits = WEIGHT_BITS[variant][0]
    widths = {n.params["weight"].format.width for n in graph.nodes if "weight" in n.params}  # type: ignore[union-attr]
    assert widths <= {bits, bits + 1} if bits > 1 else widths == {2}, widths
    assert all(isinstance(n.params["weight"].format, Fixed) for n in graph.nodes if "weight" in n.params)


@pytest.mark.slow
def test_verify_finds_no_mismatching_bit(tmp_path: Path) -> None:
    """One g++ compile (the test budget): the binary-weight CNN in io stream. The 2/2 MLP in io parallel
    was verified the same way when this was written (0 mismatching bits)."""
    _, folder = _build("cnn", "w1a2", tmp_path, backend="vitis", io="stream")
    _, data = trained("cnn", "w1a2")
    result = verify(str(folder), [data.x_test[:16]])
    assert result.mismatches == 0, result.first_mismatch


@pytest.mark.slow
def test_float_scales_equal_qonnx_but_for_its_float32_rounding(tmp_path: Path) -> None:
    """Brevitas' default float scales (no power of two): every output equals qonnx's execution but for
    qonnx's float32 rounding of ``q * s`` (0 of 5000 when written), so argmax agrees on every sample."""
    onnx_path, folder = _build("mlp", FLOAT_SCALES, tmp_path)
    _, data = trained("mlp", FLOAT_SCALES)
    ours = run_fixed(load_graph(folder), [data.x_test]).outputs[0]
    theirs = run_qonnx(onnx_path, data.x_test)
    np.testing.assert_allclose(ours, theirs, rtol=2.0**-23, atol=0)
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))


@pytest.mark.slow
@pytest.mark.parametrize(("family", "io"), [("mlp", "parallel"), ("cnn", "stream")])
def test_binarized_layers_are_xnor_popcounts_without_dsp(family: str, io: str, tmp_path: Path) -> None:
    """w1a1 (binary weights, BNN-PYNQ's sign activations): every layer after the first reads bipolar
    values and computes by XNOR-popcount (the first reads the 8-bit input: adds and subtracts), no layer
    takes a DSP, and g++ C-simulation equals the simulator bit for bit."""
    _, folder = _build(family, "w1a1", tmp_path, backend="vitis", io=io)
    layers = [n for n in load_graph(folder).nodes if n.op in ("dense", "conv")]
    assert [is_xnor_layer(n) for n in layers] == [False] + [True] * (len(layers) - 1)
    report = json.loads((folder / "report.json").read_text())
    costs = {layer["name"]: layer["resources"]["dsp"] for layer in report["layers"]}
    assert [costs[n.name] for n in layers] == [0] * len(layers)
    _, data = trained(family, "w1a1")
    result = verify(str(folder), [data.x_test[:16]])
    assert result.mismatches == 0, result.first_mismatch


@pytest.mark.slow
@pytest.mark.parametrize(("family", "io"), [("mlp", "parallel"), ("cnn", "stream")])
def test_batchnorm_before_each_sign_is_a_threshold(family: str, io: str, tmp_path: Path) -> None:
    """w1a1 with a BatchNorm before each sign (BNN-PYNQ's FC and CNV): each BatchNorm + sign is a
    threshold in the layer's bias (fpgac/passes/sign_threshold.py), no affine and no DSP remain, the
    hidden layers stay XNOR-popcounts, every held-out output equals qonnx's execution, and g++
    C-simulation equals the simulator bit for bit."""
    onnx_path, folder = _build(family, BATCHNORM, tmp_path, backend="vitis", io=io)
    graph = load_graph(folder)
    assert "affine" not in {n.op for n in graph.nodes}
    layers = [n for n in graph.nodes if n.op in ("dense", "conv")]
    assert [is_xnor_layer(n) for n in layers] == [False] + [True] * (len(layers) - 1)
    report = json.loads((folder / "report.json").read_text())
    assert sum(layer["resources"]["dsp"] for layer in report["layers"]) == 0
    _, data = trained(family, BATCHNORM)
    assert np.array_equal(run_fixed(graph, [data.x_test]).outputs[0], run_qonnx(onnx_path, data.x_test))
    result = verify(str(folder), [data.x_test[:16]])
    assert result.mismatches == 0, result.first_mismatch
