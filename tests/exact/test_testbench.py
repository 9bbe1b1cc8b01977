"""The generated testbench fails on a wrong design: it compares every output bit with ``tb/expected.txt``.

``expected.txt`` is the bit-accurate simulator's output for the samples of ``inputs.txt`` (the first
calibration samples); the testbench prints the first mismatch and exits 1, as ``vitis_hls`` csim and C/RTL
co-simulation then report. Here g++ runs it the way ``build.tcl`` does (from ``tb/``, with
``inputs.txt outputs.txt expected.txt``) on a correct project and on one whose weight header was edited.
The model's input (100 values) and output (130) are wider than a port beat may be (64 elements, 1024 bits),
so in the stream style they cross the ports in several beats (50 and 26 values each).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis import csim
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.backends.vitis.testbench import TB_SAMPLES
from fpgac.boards import get_board
from fpgac.ir import Graph, Param, TensorType
from fpgac.ir.serialize import graph_files
from fpgac.passes.quantize import Quantize
from tests.csim_support import skip_without_csim

skip_without_csim()


def wide_mlp() -> tuple[Graph, np.ndarray]:
    """100 -> dense 40 -> dense 130, 16 bits; positive inputs, no ReLU: every weight reaches the outputs."""
    rng = np.random.default_rng(7)
    graph = Graph("wide_mlp")
    x = graph.add_input("x", TensorType((100,)))

    def param(*shape: int) -> Param:
        return Param((rng.standard_normal(shape) * 0.3).astype(np.float32))

    fc1 = graph.add("dense", [x], name="fc1", params={"weight": param(40, 100), "bias": param(40)})
    fc2 = graph.add("dense", [fc1.output], name="fc2", params={"weight": param(130, 40), "bias": param(130)})
    graph.set_outputs([fc2.output])
    calib = rng.uniform(0.1, 1.0, (32, 100)).astype(np.float32)
    return Quantize(precision=16, calib=(calib,)).run(graph), calib


def wide_image() -> tuple[Graph, np.ndarray]:
    """A 1x1 conv from 96 to 80 channels on a 2x3 image, 16 bits: both ports narrower than a pixel."""
    rng = np.random.default_rng(8)
    graph = Graph("wide_image")
    x = graph.add_input("x", TensorType((96, 2, 3)))
    attrs = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1}
    params = {
        "weight": Param((rng.standard_normal((80, 96, 1, 1)) * 0.1).astype(np.float32)),
        "bias": Param((rng.standard_normal(80) * 0.1).astype(np.float32)),
    }
    conv = graph.add("conv", [x], name="conv", attrs=attrs, params=params)
    graph.set_outputs([conv.output])
    calib = rng.uniform(-1.0, 1.0, (16, 96, 2, 3)).astype(np.float32)
    return Quantize(precision=16, calib=(calib,)).run(graph), calib


def build_folder(folder: Path, io: str, make: Callable[[], tuple[Graph, np.ndarray]] = wide_mlp) -> Path:
    graph, calib = make()
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    plan.merge(vitis_plan(graph, get_board("zcu104"), io, samples=[calib]), prefix="hls/")
    return write_plan(plan, folder, force=True)


def run_testbench(folder: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Compile the project with g++ and run it as build.tcl's csim step does."""
    hls = folder / "hls"
    exe = tmp / "tb"
    compiled = subprocess.run(csim.compile_command(hls, exe), capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    args = [str(exe), "inputs.txt", str(tmp / "outputs.txt"), "expected.txt"]
    return subprocess.run(args, cwd=hls / "tb", capture_output=True, text=True)


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_testbench_passes_a_correct_design_and_fails_a_corrupted_one(io: str, tmp_path: Path) -> None:
    folder = build_folder(tmp_path / "good", io)
    good = run_testbench(folder, tmp_path)
    assert good.returncode == 0, good.stderr
    assert f"PASS: {TB_SAMPLES} samples equal expected.txt bit for bit" in good.stdout
    assert verify(str(folder), samples=8).mismatches == 0  # fpgac csim/verify still bit-exact
    if io == "stream":
        top = (folder / "hls" / "firmware" / "fpgac_top.h").read_text()
        assert "pixel<x_t, 50>" in top and "pixel<fc2_out_t, 26>" in top  # 100 and 130 values per pixel

    header = folder / "hls" / "firmware" / "weights" / "fc1.h"
    text = header.read_text()
    start = text.index("= {\n") + 4
    end = text.index(",", start)
    first = int(text[start:end])  # raw bits of fc1's weight (0, 0): make it large
    header.write_text(text[:start] + f"    {16383 if first != 16383 else 0}" + text[end:])
    bad = run_testbench(folder, tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    first_line = bad.stderr.splitlines()[0]
    assert re.fullmatch(
        r"MISMATCH: sample 0, output 0 \(\w+\), index \d+: expected mantissa -?\d+, got -?\d+", first_line
    ), bad.stderr
    assert "FAIL:" in bad.stderr


def test_image_ports_in_narrow_beats_are_bit_exact(tmp_path: Path) -> None:
    """Pixels of 96 and 80 channels cross the ports as 2 beats of 48 and 2 of 40, in pixel order."""
    folder = build_folder(tmp_path / "image", "stream", wide_image)
    top = (folder / "hls" / "firmware" / "fpgac_top.h").read_text()
    assert "pixel<x_t, 48>" in top and "pixel<conv_out_t, 40>" in top
    result = run_testbench(folder, tmp_path)
    assert result.returncode == 0, result.stderr
    assert verify(str(folder), samples=8).mismatches == 0


def test_csim_write_tb_puts_your_samples_into_the_testbench(tmp_path: Path) -> None:
    """``fpgac csim --write-tb``: a build without --calib (one zero sample) gets real samples to check."""
    graph, calib = wide_mlp()
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    plan.merge(vitis_plan(graph, get_board("zcu104"), "parallel"), prefix="hls/")
    folder = write_plan(plan, tmp_path / "build", force=True)
    assert (folder / "hls" / "tb" / "inputs.txt").read_text().startswith("1\n")
    np.save(tmp_path / "x.npy", calib[:5])
    args = ["csim", folder, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--write-tb"]
    proc = subprocess.run([sys.executable, "-m", "fpgac", *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = run_testbench(folder, tmp_path)
    assert result.returncode == 0 and "PASS: 5 samples" in result.stdout, result.stdout + result.stderr
