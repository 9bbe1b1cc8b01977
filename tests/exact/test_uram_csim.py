"""Weights preloaded into UltraRAM through g++ C-simulation: zero mismatching bits.

URAM cannot be initialised by the bitstream, so a URAM layer's weights are in ``hls/weights.bin`` (as
off-chip weights are) and ``fpgac::preload`` copies them through the layer's m_axi port into its on-chip
memory on the first call; the compute is the on-chip kernels'. ``fpgac verify`` must find every layer of
a residual CNN with its convs and dense layer forced into URAM (at reuse factors that do not divide their
weights, the convs with folded outputs; and with one conv off chip instead, in the same image) equal to
the simulator's, the weights must really come from the image, and a ResNet-18-style net fitted to zcu104
(whose largest convs the fitting moves into URAM) must be bit-exact too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis import csim
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.backends.vitis.weight_image import WEIGHTS_FILE
from fpgac.boards import get_board
from fpgac.build import BuildOptions, build
from fpgac.ir.serialize import graph_files
from tests.csim_support import skip_without_csim
from tests.models import random_input
from tests.vitis_zoo import residual_cnn

skip_without_csim()

pytestmark = pytest.mark.slow

REUSE = {"c1": 5, "c2": 7, "fc": 4}  # 288, 576 and 24 weights: words of 58, 83 and 6 weights
# Where the weights live: every weighted layer in URAM, or URAM next to an off-chip conv in one image.
PLACES = {
    "uram": (frozenset({"c1", "c2", "fc"}), frozenset()),
    "mixed": (frozenset({"c2", "fc"}), frozenset({"c1"})),
}


def _forced(folder: Path, uram: frozenset[str], offchip: frozenset[str]) -> Path:
    graph = residual_cnn()
    lanes = {graph.node(n).output.name: 2 for n in ("c1", "r1", "c2", "res", "r2")}
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    board = get_board("zcu104")
    hls = vitis_plan(graph, board, "stream", REUSE, model=graph.name, lanes=lanes, uram=uram, offchip=offchip)
    plan.merge(hls, prefix="hls/")
    return write_plan(plan, folder, force=True)


@pytest.mark.parametrize("places", sorted(PLACES))
def test_uram_weights_are_bit_exact(places: str, tmp_path: Path) -> None:
    uram, offchip = PLACES[places]
    folder = _forced(tmp_path / places, uram, offchip)
    firmware = folder / "hls" / "firmware"
    headers = "".join(p.read_text() for p in (firmware / "weights").glob("*.h"))
    assert "_weight[" not in headers  # every weight comes from the image, none is a C constant
    layers = (firmware / "layers.h").read_text()
    assert layers.count("fpgac::preload<") == layers.count("impl=uram") == len(uram)
    assert "variable=c2_weight_uram cyclic factor=83)" in layers
    graph_inputs = random_inputs(residual_cnn(), 16, seed=3)
    result = verify(str(folder), graph_inputs)
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad
    zeroed = tmp_path / "zeroed"  # the same binary on a zeroed image: the weights come from the file
    shutil.copytree(folder, zeroed)
    image = zeroed / "hls" / WEIGHTS_FILE
    image.write_bytes(bytes(image.stat().st_size))
    real, zero = csim.run_csim(folder, graph_inputs), csim.run_csim(zeroed, graph_inputs)
    assert not np.array_equal(real.mantissas[0], zero.mantissas[0])


def test_fitted_uram_build_is_bit_exact(tmp_path: Path, onnx_export: Callable[[str, str], Path]) -> None:
    """A 1.23M-parameter ResNet-18-style net fitted to zcu104: the fitting preloads its largest convs into
    URAM (instead of moving them off chip) and the build is bit-exact."""
    calib = tmp_path / "calib.npy"
    np.save(calib, random_input("resnet_1m", 16, seed=3))
    out = tmp_path / "resnet_1m"
    build(onnx_export("resnet_1m", "torchscript"), out, BuildOptions(calib=calib, board="zcu104"))
    report = json.loads((out / "report.json").read_text())
    assert report["fits"] and report["fit"]["uram"] and not report["fit"]["offchip"]
    memories = {layer["name"]: layer["memory"] for layer in report["layers"]}
    assert all(memories[name] == "uram" for name in report["fit"]["uram"])
    assert report["resources"]["uram"] <= 0.8 * report["budget"]["uram"]
    result = verify(str(out), samples=4)
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"
