"""Weights off chip (``--weights offchip``, io stream) through g++ C-simulation: zero mismatching bits.

A small CNN, a small ResNet and a depthwise-separable net (grouped convs) of ``tests/models.py`` are built
with every dense and conv weight in external memory: the testbench loads ``hls/weights.bin`` into the
buffer behind the m_axi ports and the off-chip kernels burst each output's row into ping-pong tiles.
``fpgac verify`` must find the simulator and the C++ equal on every layer, and the image must really be
what the C++ reads: the same binary on a zeroed image gives other outputs. Compressed weights are refused
off chip with one line. The op zoo (``tests/vitis_zoo.py``) runs off chip at 16 and 4 bits too.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.vitis import csim
from fpgac.backends.vitis.ccode import VitisError
from fpgac.backends.vitis.weight_image import WEIGHTS_FILE
from fpgac.build import BuildOptions, build
from fpgac.ir.serialize import load_graph
from tests.csim_support import assert_compiles_without_warnings, skip_without_csim
from tests.models import random_input
from tests.vitis_zoo import ZOO_SHAPE, compile_zoo, every_mode, write_folder, zoo_model

skip_without_csim()

pytestmark = pytest.mark.slow

FAMILIES = ("cnn", "resnet_gap", "depthwise_separable")
EXPORTER = "torchscript"


@pytest.fixture(scope="module")
def folders(
    tmp_path_factory: pytest.TempPathFactory, onnx_export: Callable[[str, str], Path]
) -> dict[str, Path]:
    """Each family built with off-chip weights in io stream, compiled two at a time."""
    root = tmp_path_factory.mktemp("offchip")
    result = {}
    for name in FAMILIES:
        calib = root / f"{name}_calib.npy"
        np.save(calib, random_input(name, 64, seed=3))
        out = root / name
        build(onnx_export(name, EXPORTER), out, BuildOptions(calib=calib, io="stream", weights="offchip"))
        result[name] = out
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(csim.binary, result.values()))
    return result


@pytest.mark.parametrize("name", FAMILIES)
def test_offchip_build_is_bit_exact(name: str, folders: dict[str, Path]) -> None:
    folder = folders[name]
    graph = load_graph(folder)
    weighted = [n.name for n in graph.nodes if "weight" in n.params]
    assert weighted and (folder / "hls" / WEIGHTS_FILE).stat().st_size > 0
    headers = "".join(p.read_text() for p in (folder / "hls" / "firmware" / "weights").glob("*.h"))
    assert "_weight[" not in headers  # every weight is off chip: none is a C array
    result = verify(str(folder), samples=24)
    assert result.samples == 24
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"


def test_offchip_kernels_compile_without_warnings(folders: dict[str, Path], tmp_path: Path) -> None:
    """``g++ -Wall -Wextra``: no warning located in a generated or fpgac kernel file."""
    hls = folders["depthwise_separable"] / "hls"
    assert_compiles_without_warnings(hls, tmp_path)


@pytest.mark.parametrize(("precision", "modes"), [(16, False), (4, True)], ids=["p16", "p4_modes"])
def test_op_zoo_off_chip(precision: int, modes: bool, tmp_path: Path) -> None:
    """The op zoo (2-d and 1-d conv, Gemm, MatMul...) with its weights off chip, at 16 bits and at 4 bits
    (int8 words) with every node's output cycled through all rounding and overflow modes."""
    calib = tmp_path / "calib.npy"
    np.save(calib, (np.random.default_rng(1).standard_normal((64, *ZOO_SHAPE)) * 0.5).astype(np.float32))
    graph = compile_zoo(zoo_model(tmp_path / "zoo.onnx"), calib, precision)
    graph = every_mode(graph) if modes else graph
    offchip = frozenset(n.name for n in graph.nodes if "weight" in n.params)
    assert len(offchip) == 5
    folder = write_folder(graph, tmp_path / "zoo", "stream", offchip)
    result = verify(str(folder), random_inputs(graph, 48, seed=11))
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad


def test_csim_reads_the_image(folders: dict[str, Path], tmp_path: Path) -> None:
    """The same compiled testbench on a zeroed weights.bin: the outputs change (the weights come from the
    file, not from the code); on the real image they equal the simulator's."""
    good = folders["cnn"]
    zeroed = tmp_path / "zeroed"
    shutil.copytree(good, zeroed)
    image = zeroed / "hls" / WEIGHTS_FILE
    image.write_bytes(bytes(image.stat().st_size))
    x = random_inputs(load_graph(good), 4, seed=5)
    real, zero = csim.run_csim(good, x), csim.run_csim(zeroed, x)
    assert len(list((zeroed / csim.CACHE_DIR).glob("tb-*"))) == 1  # no recompile: same sources
    assert not np.array_equal(real.mantissas[0], zero.mantissas[0])
    image.write_bytes(image.read_bytes()[:-1])  # a short image is refused by the testbench
    with pytest.raises(csim.CsimError, match=f"{WEIGHTS_FILE}: missing or not"):
        csim.run_csim(zeroed, x)


def test_compressed_weights_are_refused_off_chip(
    tmp_path: Path, onnx_export: Callable[[str, str], Path]
) -> None:
    calib = tmp_path / "calib.npy"
    np.save(calib, random_input("cnn", 16, seed=3))
    options = BuildOptions(calib=calib, io="stream", weights="offchip", passes="prune(sparsity=0.5)")
    with pytest.raises(VitisError, match=r"compressed \(pruned or shared\) weights stay on chip") as info:
        build(onnx_export("cnn", EXPORTER), tmp_path / "out", options)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
