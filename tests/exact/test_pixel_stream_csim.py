"""Pixel layers of io_stream through g++ C-simulation: zero mismatching bits.

A concatenation over channels streams each pixel's beats input after input (no tensor buffer), whole or
folded to beats of 1 or 2 lanes (``pixel_cnn``: inputs of 4, 4 and 2 channels, one of them a forked
value); the channel shuffle after it (reshape to 2x5 channels, transpose, reshape back) reorders each
pixel's channels (``permute_stream``) and its reshapes pass the stream through, in the same beats.
The simulator computes values, not beats, so ``fpgac verify`` must find every layer equal bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fpgac.analysis.lanes import groups_at, lanes_of
from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.ir.serialize import graph_files
from tests.csim_support import skip_without_csim
from tests.vitis_zoo import pixel_cnn

skip_without_csim()

# Target IIs: 36 pixels a frame whole (every value one beat a pixel), at two beats a pixel (concat in
# beats of 2 lanes) and at the most folding (1 lane).
IIS = {"whole": 36, "two_lanes": 36 * 5, "one_lane": 36 * 10}


@pytest.mark.slow
@pytest.mark.parametrize("fold", sorted(IIS))
def test_pixel_layers_are_bit_exact(fold: str, tmp_path: Path) -> None:
    graph = pixel_cnn()
    lanes = lanes_of(graph, groups_at(graph, IIS[fold]))
    cat = graph.node("cat").output.name
    assert lanes.get(cat, 10) == {"whole": 10, "two_lanes": 2, "one_lane": 1}[fold]
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    plan.merge(vitis_plan(graph, get_board("zcu104"), "stream", model=graph.name, lanes=lanes), prefix="hls/")
    folder = write_plan(plan, tmp_path / fold, force=True)
    result = verify(str(folder), random_inputs(graph, 16, seed=5))
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad
