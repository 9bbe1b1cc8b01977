"""Channel-folded io_stream (beats of L < C channels) through g++ C-simulation: zero mismatching bits.

A small residual CNN built in the IR, its inner values folded to several widths (``lanes``): convs and
pools read folded pixels into their line buffers and write folded outputs, elementwise ops (ReLU, the
residual add, an affine) run one beat of L channels a cycle, max and average pools with a folded output
compute one beat a cycle, the global average pool keeps its sums in an array, off-chip convs copy their
windows into a memory and write folded rows, and the dense layer gathers a folded vector. The simulator
computes values, not beats, so ``fpgac verify`` must find every layer equal bit for bit, folded or not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis.ccode import VitisError
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.ir import Graph
from fpgac.ir.serialize import graph_files
from tests.csim_support import skip_without_csim
from tests.vitis_zoo import residual_cnn

skip_without_csim()


def _folder(graph: Graph, lanes: dict[str, int], folder: Path, offchip: frozenset[str] = frozenset()) -> Path:
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    board = get_board("zcu104")
    hls = vitis_plan(graph, board, "stream", {"c2": 3}, model=graph.name, offchip=offchip, lanes=lanes)
    plan.merge(hls, prefix="hls/")
    return write_plan(plan, folder, force=True)


# Lanes (channels a beat) per layer output; "offchip" keeps the convs' weights in external memory (their
# row kernel writes folded pixels).
# "mixed": pools with whole outputs read folded inputs, the global pool whole pixels; "offchip": pools
# with folded outputs compute a beat a cycle (pool_stream), the global pool reads folded pixels. The
# flatten after the global pool keeps its stream (a beat copy), so it folds as the pool's output does.
FOLDS = {
    "mixed": {"c1": 2, "r1": 2, "c2": 2, "res": 2, "r2": 2, "mp": 8, "bn": 8, "ap": 8, "gap": 2, "flat": 2},
    "offchip": {"c1": 4, "r1": 4, "c2": 4, "res": 4, "r2": 4, "mp": 2, "bn": 2, "ap": 2, "gap": 8},
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
