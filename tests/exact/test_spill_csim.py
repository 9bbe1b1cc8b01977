"""Spilled FIFOs (fork outputs kept in external memory, ``fpgac_spill.h``) through g++ C-simulation.

Every fork output of a residual net (``residual_cnn``: the skip and the conv's input) and of a
concatenation net folded to beats of 2 lanes (``pixel_cnn``: one value read by two convs and the
concatenation) is spilled: the fork writes each value's bursts once into the testbench's scratch memory
and each reader reads them back. Values pass through unchanged, so ``fpgac verify`` must find every layer
equal bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fpgac.analysis.fifos import stream_fifos
from fpgac.analysis.lanes import groups_at, lanes_of
from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.ir import Graph
from fpgac.ir.serialize import graph_files
from tests.csim_support import skip_without_csim
from tests.vitis_zoo import pixel_cnn, residual_cnn

skip_without_csim()

NETS = {"residual": (residual_cnn, 0), "concat_two_lanes": (pixel_cnn, 36 * 5)}


def _folder(graph: Graph, ii: int, spills: frozenset[str], out: Path) -> Path:
    lanes = lanes_of(graph, groups_at(graph, ii)) if ii else None
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    hls = vitis_plan(graph, get_board("zcu104"), "stream", model=graph.name, lanes=lanes, spills=spills)
    plan.merge(hls, prefix="hls/")
    return write_plan(plan, out, force=True)


@pytest.mark.slow
@pytest.mark.parametrize("net", sorted(NETS))
def test_spilled_forks_are_bit_exact(net: str, tmp_path: Path) -> None:
    build, ii = NETS[net]
    graph = build()
    spills = frozenset(f.key for f in stream_fifos(graph) if f.reader)
    assert len(spills) >= 2
    folder = _folder(graph, ii, spills, tmp_path / net)
    regions = json.loads((folder / "hls" / "fpgac.json").read_text())["spills"]["regions"]
    assert sorted(f for r in regions for f in r["fifos"]) == sorted(spills)
    top = (folder / "hls" / "firmware" / "fpgac_top.cpp").read_text()
    assert top.count("fpgac::spill_read<") == len(spills)  # a reader for each
    assert top.count("fpgac::spill_write<") == len(regions) < len(spills)  # a writer for each value
    result = verify(str(folder), random_inputs(graph, 12, seed=9))
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert result.samples == 12 and not bad, bad
