"""Channel-folded io_stream (beats of L < C channels) through g++ C-simulation: zero mismatching bits.

A small residual CNN built in the IR, its inner values folded to several widths (``lanes``): convs and
pools read folded pixels into their line buffers and write folded outputs, elementwise ops (ReLU, the
residual add, an affine) run one beat of L channels a cycle, the global average pool keeps its sums in an
array, and the dense layer gathers a folded vector. The simulator computes values, not beats, so
``fpgac verify`` must find every layer equal bit for bit, folded or not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis.ccode import VitisError
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.ir import Graph, Param, TensorType
from fpgac.ir.serialize import graph_files
from fpgac.passes.quantize import Quantize
from tests.csim_support import skip_without_csim

skip_without_csim()


def _param(rng: np.random.Generator, *shape: int) -> Param:
    return Param((rng.standard_normal(shape) * 0.4).astype(np.float32))


def residual_cnn() -> Graph:
    """4x6x6 -> conv 3x3 (8) -> ReLU -> conv 3x3 (8) + shortcut -> ReLU -> max pool 2 -> affine
    -> global average pool (a 3x3 AveragePool) -> flatten -> dense 3."""
    rng = np.random.default_rng(7)
    graph = Graph("folded_cnn")
    x = graph.add_input("image", TensorType((4, 6, 6)))
    conv_attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    c1 = graph.add("conv", [x], name="c1", attrs=conv_attrs,
                   params={"weight": _param(rng, 8, 4, 3, 3), "bias": _param(rng, 8)})  # fmt: skip
    r1 = graph.add("relu", [c1.output], name="r1")
    c2 = graph.add("conv", [r1.output], name="c2", attrs=conv_attrs,
                   params={"weight": _param(rng, 8, 8, 3, 3), "bias": _param(rng, 8)})  # fmt: skip
    add = graph.add("add", [c2.output, r1.output], name="res")
    r2 = graph.add("relu", [add.output], name="r2")
    pool_attrs = {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1],
                  "ceil_mode": False}  # fmt: skip
    mp = graph.add("max_pool", [r2.output], name="mp", attrs=pool_attrs)
    aff = graph.add("affine", [mp.output], name="bn",
                    params={"scale": Param(rng.uniform(0.5, 2, (8, 1, 1)).astype(np.float32)),
                            "shift": Param(rng.normal(0, 0.3, (8, 1, 1)).astype(np.float32))})  # fmt: skip
    gap_attrs = {"kernel": [3, 3], "strides": [1, 1], "pads": [0, 0, 0, 0],
                 "ceil_mode": False, "count_include_pad": False}  # fmt: skip
    gap = graph.add("avg_pool", [aff.output], name="gap", attrs=gap_attrs)
    flat = graph.add("reshape", [gap.output], name="flat", attrs={"shape": [8]})
    fc = graph.add("dense", [flat.output], name="fc",
                   params={"weight": _param(rng, 3, 8), "bias": _param(rng, 3)})  # fmt: skip
    graph.set_outputs([fc.output])
    calib = rng.uniform(-1, 1, (32, 4, 6, 6)).astype(np.float32)
    return Quantize(precision=10, calib=(calib,)).run(graph)


def _folder(graph: Graph, lanes: dict[str, int], folder: Path, offchip: frozenset[str] = frozenset()) -> Path:
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    board = get_board("zcu104")
    hls = vitis_plan(graph, board, "stream", {"c2": 3}, model=graph.name, offchip=offchip, lanes=lanes)
    plan.merge(hls, prefix="hls/")
    return write_plan(plan, folder, force=True)


# Lanes (channels a beat) per layer output; "offchip" keeps the convs' weights in external memory (their
# row kernel writes folded pixels). The global pool reads whole pixels in one fold, folded in the others.
FOLDS = {
    "halves": {"c1": 4, "r1": 4, "c2": 4, "res": 4, "r2": 4, "mp": 8, "bn": 8, "gap": 4},
    "mixed": {"c1": 2, "r1": 2, "c2": 2, "res": 2, "r2": 2, "mp": 1, "bn": 1, "gap": 2},
    "offchip": {"c1": 4, "r1": 4, "c2": 4, "res": 4, "r2": 4, "mp": 2, "bn": 2, "gap": 8},
}


@pytest.mark.slow
@pytest.mark.parametrize("fold", sorted(FOLDS))
def test_folded_stream_is_bit_exact(fold: str, tmp_path: Path) -> None:
    graph = residual_cnn()
    lanes = {graph.node(n).output.name: k for n, k in FOLDS[fold].items()}
    offchip = frozenset({"c1", "c2"} if fold == "offchip" else ())
    folder = _folder(graph, lanes, tmp_path / fold, offchip)
    result = verify(str(folder), random_inputs(graph, 16, seed=3))
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad


def test_lanes_must_divide_the_channels(tmp_path: Path) -> None:
    graph = residual_cnn()
    with pytest.raises(VitisError, match="3 lanes do not divide its 8 channels"):
        _folder(graph, {graph.node("r1").output.name: 3}, tmp_path / "bad")
