"""The hls4ml lowering and the hls4ml layer list/config it leads to, without compiling anything.

The lowering must keep the model's meaning where hls4ml's kernels compute what fpgac's do: the lowered
CNN (channels-last layouts, a relayout before the flatten, dense columns permuted, a padded max pool
moved to a signed input) must give the same bits as the quantized graph it came from. The layer list
must carry every type of the IR into hls4ml; unsupported ops must fail with one line naming node and op.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.hls4ml.lower import CHANNELS_LAST, Hls4mlError, lower
from fpgac.build import BuildOptions, compile_model
from fpgac.interp.simulator import run_fixed
from fpgac.ir.types import Fixed
from fpgac.ir.verifier import verify
from tests.models import random_input
from tests.vitis_zoo import zoo_model

hls4ml_backend = pytest.importorskip("fpgac.backends.hls4ml.emitter")


def _quantized(name: str, onnx_export: Callable[[str, str], Path], tmp_path: Path):  # type: ignore[no-untyped-def]
    calib = tmp_path / "calib.npy"
    np.save(calib, random_input(name, 32, seed=3))
    graph = compile_model(onnx_export(name, "torchscript"), BuildOptions(calib=calib, backend="none")).graph
    return graph


def test_lowered_cnn_computes_the_same_bits(onnx_export: Callable[[str, str], Path], tmp_path: Path) -> None:
    graph = _quantized("cnn", onnx_export, tmp_path)
    lowered = lower(graph)
    verify(lowered)
    assert all(
        v.type.layout == CHANNELS_LAST
        for v in lowered.values()
        if v.type.rank == 3 and v.producer and v.producer.op != "transpose"
    )
    flatten = next(n for n in lowered.nodes if n.op == "reshape")
    assert flatten.inputs[0].producer is not None and flatten.inputs[0].producer.op == "transpose"
    pool = [n for n in lowered.nodes if n.op == "max_pool"][1]  # the padded, ceil-mode one
    assert isinstance(pool.inputs[0].type.format, Fixed) and pool.inputs[0].type.format.signed
    x = [random_input("cnn", 16, seed=5) * 3]
    assert np.array_equal(run_fixed(graph, x).outputs[0], run_fixed(lowered, x).outputs[0])
    assert [n.op for n in graph.nodes] == [
        n.op for n in lowered.nodes if n.op != "transpose"
    ]  # original intact


def test_layer_list_carries_the_ir_types(onnx_export: Callable[[str, str], Path], tmp_path: Path) -> None:
    lowered = lower(_quantized("two_branch_concat", onnx_export, tmp_path))
    design = hls4ml_backend.design(lowered, "parallel")
    classes = [layer["class_name"] for layer in design.layers]
    assert classes == [
        "InputLayer", "Conv2D", "Activation", "Conv2D", "Activation", "Concatenate", "LeakyReLU",
        "MaxPooling2D", "Reshape", "Dense", "Softmax",
    ]  # fmt: skip
    by_op = {n.op: n for n in lowered.nodes}
    dense = next(layer for layer in design.layers if layer["class_name"] == "Dense")
    precision = design.layer_config[dense["name"]]["Precision"]
    node = by_op["dense"]
    assert hls4ml_backend._ap(precision["accum"]) == node.attrs["acc"].ap_type()
    assert hls4ml_backend._ap(precision["weight"]) == node.params["weight"].format.ap_type()
    assert hls4ml_backend._ap(precision["result"]) == node.output.type.format.ap_type()
    np.testing.assert_array_equal(dense["weight_data"], node.params["weight"].data.T)
    sigmoid = next(layer for layer in design.layers if layer.get("activation") == "sigmoid")
    assert hls4ml_backend._ap(sigmoid["table_t"]) == by_op["hls4ml_sigmoid"].output.type.format.ap_type()
    concat = next(layer for layer in design.layers if layer["class_name"] == "Concatenate")
    assert concat["axis"] == 3  # channels of an (H, W, C) tensor, counted with the batch axis as in Keras


def test_unsupported_op_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    model = zoo_model(tmp_path / "zoo.onnx")
    with pytest.raises(Hls4mlError, match=r"node '.+' \(\w+\)"):
        lower(compile_model(model, BuildOptions(backend="none", input_range=(-1.0, 1.0))).graph)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "fpgac", "build", str(model), "--backend", "hls4ml", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("WARNING")]
    assert len(errors) == 1 and errors[0].startswith("error: hls4ml backend: node "), proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_io_stream_refuses_what_hls4ml_streams_cannot_do(
    onnx_export: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """hls4ml's io_stream pooling asserts kernel = stride and no padding: fpgac builds overlapping windows
    from tiling ones, but a padded pool is refused by name, nothing written."""
    from fpgac.build import build

    out = tmp_path / "out"
    with pytest.raises(Hls4mlError, match=r"node '/features/features.7/MaxPool' \(max_pool\): .*io_stream"):
        build(onnx_export("cnn", "torchscript"), out, BuildOptions(backend="hls4ml", io="stream"))
    assert not out.exists()


def test_avg_pool_and_affine_become_hls4ml_layers(
    onnx_export: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """avg_pool -> AveragePooling2D (count_pad only where padding exists to count; ceil mode as end
    padding), affine -> BatchNormalization per channel; the lowered graph verifies and stays close to the
    quantized one (hls4ml divides by the count where fpgac multiplies by a reciprocal)."""
    graph = _quantized("avgpool_ceil", onnx_export, tmp_path)
    lowered = lower(graph)
    verify(lowered)
    pools = [
        layer
        for layer in hls4ml_backend.design(lowered, "parallel").layers
        if layer["class_name"] == "AveragePooling2D"
    ]
    assert [p["count_pad"] for p in pools] == [
        False,
        False,
        True,
        False,
    ]  # p3 pads and counts; p4 has no pads
    assert (pools[0]["pad_bottom"], pools[0]["out_height"]) == (2, 9)  # ceil mode: one more row of windows
    x = [random_input("avgpool_ceil", 8, seed=5)]
    ours, theirs = run_fixed(graph, x).outputs[0], run_fixed(lowered, x).outputs[0]
    assert np.abs(ours - theirs).max() <= 0.05 * np.abs(ours).max()
    bn = lower(_quantized("bn_input_cnn", onnx_export, tmp_path))
    norm = next(
        layer
        for layer in hls4ml_backend.design(bn, "parallel").layers
        if layer["class_name"] == "BatchNormalization"
    )
    affine = next(n for n in bn.nodes if n.op == "affine")
    assert norm["n_filt"] == 3 and norm["n_in"] == 3 * 8 * 8
    np.testing.assert_array_equal(norm["scale_data"], affine.params["scale"].data.ravel())


def test_per_layer_reuse_takes_the_nearest_valid_factor_above(
    onnx_export: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """A layer's reuse factor becomes its hls4ml ReuseFactor with the Resource strategy, raised to the
    smallest factor hls4ml accepts (hls4ml would pick the closest, possibly below); others stay Latency."""
    import hls4ml

    lowered = lower(_quantized("mlp", onnx_export, tmp_path))
    dense = [n for n in lowered.nodes if n.op == "dense"]
    first, second = dense[0], dense[1]
    n_out, n_in = first.params["weight"].shape
    valid = hls4ml.backends.get_backend("Vitis").get_valid_reuse_factors(n_in, n_out)
    asked = next(r for r in range(2, n_in * n_out) if r not in valid)
    design = hls4ml_backend.design(lowered, "parallel", 1, {first.name: asked, second.name: 2})
    config = {layer["name"]: design.layer_config[layer["name"]] for layer in design.layers[1:]}
    names = {n.name: layer["name"] for n, layer in zip(lowered.nodes, design.layers[1:], strict=True)}
    used = min(r for r in valid if r > asked)
    assert config[names[first.name]]["ReuseFactor"] == used
    assert config[names[first.name]]["Strategy"] == "Resource"
    assert design.reuse == {first.name: {"asked": asked, "used": used}}
    assert config[names[second.name]]["ReuseFactor"] == 2
    assert config[names[dense[2].name]]["Strategy"] == "Latency"


def test_build_renders_per_layer_reuse(onnx_export: Callable[[str, str], Path], tmp_path: Path) -> None:
    from fpgac.build import build

    model = onnx_export("mlp", "torchscript")
    graph = compile_model(model, BuildOptions(backend="none")).graph
    name = next(n.name for n in graph.nodes if n.op == "dense")
    out = tmp_path / "out"
    build(model, out, BuildOptions(backend="hls4ml", io="parallel", layer_reuse={name: 4}))
    parameters = (out / "hls4ml" / "firmware" / "parameters.h").read_text()
    assert "strategy = nnet::resource;\n    static const unsigned reuse_factor = 4;" in parameters


def test_csim_refuses_im2col_code_too_large_to_compile(
    onnx_export: Callable[[str, str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project whose generated im2col code would need more memory than allowed is refused by size,
    before any g++ runs (SqueezeNet's io_parallel project: 3.4 million assignments)."""
    from fpgac.backends.hls4ml import csim
    from fpgac.backends.vitis.csim import CsimError
    from fpgac.build import build

    out = tmp_path / "out"
    build(onnx_export("cnn", "torchscript"), out, BuildOptions(backend="hls4ml", io="parallel"))
    monkeypatch.setattr(csim, "MAX_CODE_GEN_MB", 0.001)
    monkeypatch.setattr(csim.subprocess, "run", lambda *a, **k: pytest.fail("g++ ran"))
    with pytest.raises(CsimError, match=r"MB of im2col code .* g\+\+ would need about"):
        csim.library(out)
