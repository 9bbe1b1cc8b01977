"""The Vitis HLS backend's C++ against the bit-accurate simulator: zero mismatching bits.

Every generated project, in both io styles (``parallel`` arrays and ``stream`` FIFOs), is compiled by g++
against the ``ap_fixed`` headers hls4ml ships and run by ``fpgac verify`` (simulator and C-simulation on the
same inputs, every layer traced). Inputs are drawn over each input format's whole range (twice the
calibrated range, ends included), so layers saturate and tables are read at their edges. Models: the
families of ``tests/models.py`` from both exporters, and the op zoo (``tests/vitis_zoo.py``: every op of
``FIXED_OPS``) at 16, 5 and 4 bits, the last with every node's output cycled through all rounding and
overflow modes.

All binaries are compiled once per session, two at a time (g++ is single-threaded; a compile takes 3-10 s).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.vitis import csim
from fpgac.build import BuildOptions, build
from fpgac.interp.fixed_kernels import FIXED_OPS
from fpgac.interp.simulator import run_fixed
from fpgac.ir.serialize import load_graph
from tests.csim_support import assert_compiles_without_warnings, skip_without_csim
from tests.models import EXPORTERS, random_input
from tests.vitis_zoo import ZOO_SHAPE, compile_zoo, every_mode, two_inputs_model, write_folder, zoo_model

skip_without_csim()

pytestmark = pytest.mark.slow  # the session fixture compiles 26 projects: about two minutes on two cores

IO_STYLES = ("parallel", "stream")
FAMILIES = ("mlp", "cnn", "depthwise_separable", "resnet_gap", "two_branch_concat")
ZOO_VARIANTS = {"p16": (16, False), "p5": (5, False), "p4_modes": (4, True)}


@pytest.fixture(scope="session")
def folders(
    tmp_path_factory: pytest.TempPathFactory, onnx_export: Callable[[str, str], Path]
) -> dict[str, Path]:
    """Every build folder of this module, built and compiled once (compiles two at a time)."""
    root = tmp_path_factory.mktemp("vitis")
    result: dict[str, Path] = {}
    for name in FAMILIES:
        calib = root / f"{name}_calib.npy"
        np.save(calib, random_input(name, 64, seed=3))
        for exporter in EXPORTERS:
            model = onnx_export(name, exporter)
            for io in IO_STYLES:
                out = root / f"{name}_{exporter}_{io}"
                build(model, out, BuildOptions(calib=calib, io=io))
                result[f"{name}_{exporter}_{io}"] = out
    zoo = zoo_model(root / "zoo.onnx")
    calib = root / "zoo_calib.npy"
    np.save(calib, (np.random.default_rng(1).standard_normal((64, *ZOO_SHAPE)) * 0.5).astype(np.float32))
    for key, (precision, modes) in ZOO_VARIANTS.items():
        graph = compile_zoo(zoo, calib, precision)
        for io in IO_STYLES:
            folder = root / f"zoo_{key}_{io}"
            result[f"zoo_{key}_{io}"] = write_folder(every_mode(graph) if modes else graph, folder, io)
    two = two_inputs_model(root / "two.onnx")
    rng = np.random.default_rng(2)
    np.savez(
        root / "two.npz", a=rng.normal(size=(32, 3, 4)).astype(np.float32), b=rng.normal(size=(32, 1, 4))
    )
    for io in IO_STYLES:
        build(two, root / f"two_inputs_{io}", BuildOptions(calib=root / "two.npz", io=io))
        result[f"two_inputs_{io}"] = root / f"two_inputs_{io}"
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(csim.binary, result.values()))
    return result


@pytest.mark.parametrize("io", IO_STYLES)
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", FAMILIES)
def test_model_families_bit_exact(name: str, exporter: str, io: str, folders: dict[str, Path]) -> None:
    result = verify(str(folders[f"{name}_{exporter}_{io}"]), samples=24)
    assert result.samples == 24
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"


def test_zoo_covers_every_fixed_op(folders: dict[str, Path]) -> None:
    ops = {node.op for node in load_graph(folders["zoo_p16_parallel"]).nodes}
    assert ops == set(FIXED_OPS), f"missing {set(FIXED_OPS) - ops}"


@pytest.mark.parametrize("io", IO_STYLES)
@pytest.mark.parametrize("variant", list(ZOO_VARIANTS))
def test_every_op_bit_exact(variant: str, io: str, folders: dict[str, Path]) -> None:
    folder = folders[f"zoo_{variant}_{io}"]
    graph = load_graph(folder)
    x = random_inputs(graph, 48, seed=11)
    if variant != "p16":  # adversarial variants must really saturate/wrap, or they test nothing
        assert sum(run_fixed(graph, x).overflows.values()) > 0
    result = verify(str(folder), x)
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad


def test_csim_matches_sim_and_is_cached(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fpgac csim`` writes what ``fpgac sim`` writes; a second run reuses the compiled binary."""
    folder = folders["cnn_torchscript_stream"]
    x = tmp_path / "x.npy"
    np.save(x, random_input("cnn", 5, seed=9))
    for command in ("sim", "csim"):
        proc = _fpgac(command, folder, "--input", x, "--output", tmp_path / f"{command}.npy")
        assert proc.returncode == 0, proc.stderr
    sim, cs = np.load(tmp_path / "sim.npy"), np.load(tmp_path / "csim.npy")
    assert cs.dtype == np.float64 and np.array_equal(sim, cs)

    def no_compile(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("recompiled a cached testbench")

    monkeypatch.setattr(csim, "compile_command", no_compile)
    assert csim.binary(folder).is_file()
    assert len(list((folder / csim.CACHE_DIR).glob("tb-*"))) == 1


def test_verify_cli_names_first_bad_layer(folders: dict[str, Path], tmp_path: Path) -> None:
    """A corrupted weight in the C++ (not in the IR): exit 1, and the first differing layer is named."""
    good = folders["mlp_torchscript_parallel"]
    proc = _fpgac("verify", good, "--samples", "8")
    assert proc.returncode == 0, proc.stderr
    assert "0 mismatching bits" in proc.stdout
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    weights = sorted((bad / "hls" / "firmware" / "weights").glob("*.h"))
    second = weights[1]  # the second dense layer: the first layer must still match
    text = second.read_text()
    start = text.index("= {\n") + 4
    end = text.index(",", start)
    first = int(text[start:end])  # raw bits of the first weight: zero it (or make it 1 if it is 0)
    second.write_text(text[:start] + f"    {int(first == 0)}" + text[end:])
    proc = _fpgac("verify", bad, "--samples", "8")
    assert proc.returncode == 1
    layer = load_graph(bad).nodes[2].name  # dense, relu, dense: the corrupted one
    assert f"first at layer {layer!r}" in " ".join(proc.stdout.split()), proc.stdout


def _fpgac(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fpgac", *map(str, args)], capture_output=True, text=True, env=_env()
    )


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "COLUMNS": "200"}


@pytest.mark.parametrize("io", IO_STYLES)
def test_every_op_compiles_without_warnings(io: str, folders: dict[str, Path], tmp_path: Path) -> None:
    """``g++ -Wall -Wextra`` on the op zoo: no warning located in a generated or fpgac kernel file."""
    hls = folders[f"zoo_p4_modes_{io}"] / "hls"
    assert_compiles_without_warnings(hls, tmp_path)


@pytest.mark.parametrize("io", IO_STYLES)
def test_several_inputs_and_outputs(io: str, folders: dict[str, Path], tmp_path: Path) -> None:
    """Ports in graph order, a broadcast input, .npz in and out through the CLI."""
    folder = folders[f"two_inputs_{io}"]
    rng = np.random.default_rng(4)
    x = tmp_path / "x.npz"
    np.savez(
        x, a=rng.normal(size=(6, 3, 4)).astype(np.float32), b=rng.normal(size=(6, 1, 4)).astype(np.float32)
    )
    for command in ("sim", "csim"):
        proc = _fpgac(command, folder, "--input", x, "--output", tmp_path / f"{command}.npz")
        assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "sim.npz") as sim, np.load(tmp_path / "csim.npz") as cs:
        assert sorted(sim.files) == sorted(cs.files) == ["square", "sum"]
        for key in sim.files:
            assert np.array_equal(sim[key], cs[key]), key
    assert verify(str(folder), samples=16).mismatches == 0


def test_resnet_of_a_million_parameters_in_stream_style(
    tmp_path: Path, onnx_export: Callable[[str, str], Path]
) -> None:
    """A 1.23M-parameter ResNet-18-style net: auto picks io_stream; csim equals sim on every layer."""
    calib = tmp_path / "calib.npy"
    np.save(calib, random_input("resnet_1m", 64, seed=3))
    out = tmp_path / "resnet_1m"
    report = build(onnx_export("resnet_1m", "torchscript"), out, BuildOptions(calib=calib))
    assert report["params"] >= 1_000_000
    assert (report["io"], report["recommended_io"]) == ("stream", "stream")
    result = verify(str(out), samples=6)
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"
    assert len(result.layers) == 1 + len(load_graph(out).nodes)


def _fan_out_model(path: Path) -> Path:
    """A value read three times and also a graph output (relu), ``r + r``, and an input passed through."""
    from onnx import TensorProto, helper, numpy_helper, save

    w = np.random.default_rng(0).normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Sigmoid", ["r"], ["s"]),
        helper.make_node("Add", ["r", "r"], ["d"]),
        helper.make_node("Identity", ["x"], ["x_out"]),
    ]
    shapes = {"r": 4, "s": 4, "d": 4, "x_out": 3}
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", c, 5, 5]) for n, c in shapes.items()]
    graph = helper.make_graph(
        nodes,
        "fan_out",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 5])],
        outputs,
        initializer=[numpy_helper.from_array(w, "w")],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("io", IO_STYLES)
def test_fan_out_to_layers_and_ports(io: str, tmp_path: Path) -> None:
    """Stream style forks a FIFO per reader (layers and output ports, twice to one layer, an input straight
    to an output); both styles stay bit-exact."""
    out = tmp_path / "fan_out"
    build(_fan_out_model(tmp_path / "fan_out.onnx"), out, BuildOptions(io=io))
    top = (out / "hls" / "firmware" / "fpgac_top.cpp").read_text()
    if io == "stream":
        assert top.count("_fork(") == 2  # the input (layer + port) and relu (three layers + port)
    assert verify(str(out), samples=8).mismatches == 0
