"""Rank levels (lowrank levels=...): nested ranks, per-level biases and formats, the simulator at a
level, the estimate per level and the backends' view of them (g++: tests/exact/test_rank_levels_csim.py)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpgac.analysis.cost import graph_cost
from fpgac.analysis.estimate import estimate
from fpgac.analysis.level_report import level_report
from fpgac.backends.hls4ml.lower import Hls4mlError, lower
from fpgac.boards import BOARDS
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Graph, verify
from fpgac.ir.levels import LEVEL_BIAS, RankLevelError, level_count
from fpgac.ir.serialize import save_graph
from fpgac.passes.lowrank import LowRank, LowRankError
from tests.rank_levels import LEVELS, calib, levelled, small_cnn, truncated

BUDGETS = [float(f) for f in LEVELS.split(",")]


@pytest.fixture(scope="module")
def graph() -> Graph:
    g = levelled()
    verify(g)
    return g


def test_levels_are_nested_prefixes_within_their_mac_budgets(graph: Graph) -> None:
    original = graph_cost(small_cnn()).macs
    assert level_count(graph) == len(BUDGETS)
    factors = [n for n in graph.nodes if "ranks_out" in n.attrs]
    assert [n.name for n in factors] == ["c1_lr1", "c2_lr1", "fc_lr1"]
    for node in factors:
        ranks = node.attrs["ranks_out"]
        assert ranks[0] == node.params["weight"].shape[0]  # stored at the largest level's rank
        assert all(a >= b >= 1 for a, b in itertools.pairwise(ranks))  # each level a prefix of the one above
        second = graph.node(node.name.replace("_lr1", "_lr2"))
        assert second.attrs["ranks_in"] == ranks
    report = level_report(graph, estimate(graph, BOARDS["zcu104"], "parallel"))
    for entry, budget in zip(report, BUDGETS, strict=True):
        assert entry["macs"] <= budget * original
    assert [e["macs"] for e in report] == sorted((e["macs"] for e in report), reverse=True)


def test_each_level_equals_the_static_truncated_graph_bit_for_bit(graph: Graph) -> None:
    x = calib(16, seed=5)
    for level in range(level_count(graph)):
        static = truncated(graph, level)
        verify(static)
        ours = run_fixed(graph, [x], rank_level=level)
        assert np.array_equal(ours.mantissas[0], run_fixed(static, [x]).mantissas[0])


def test_formats_hold_every_levels_activations_and_biases(graph: Graph) -> None:
    x = calib()  # the calibration batch itself: no value may saturate at any level
    for level in range(level_count(graph)):
        assert sum(run_fixed(graph, [x], rank_level=level).overflows.values()) == 0
    second = graph.node("fc_lr2")
    biases = second.params[LEVEL_BIAS]
    assert biases.format == second.params["bias"].format
    assert np.array_equal(biases.data[0], second.params["bias"].data)
    assert not np.array_equal(biases.data[0], biases.data[-1])  # each level got its own mean correction
    head = graph.node("head")  # not split, after the factors: the same weights, a bias per level
    assert LEVEL_BIAS in head.params and not np.array_equal(
        head.params[LEVEL_BIAS].data[0], head.params[LEVEL_BIAS].data[-1]
    )


def test_without_calibration_there_is_one_bias() -> None:
    graph = levelled(data=False)
    assert all(LEVEL_BIAS not in n.params for n in graph.nodes)
    assert level_count(graph) == len(BUDGETS)


def test_estimated_latency_falls_with_the_level_when_folded(graph: Graph) -> None:
    board = BOARDS["zcu104"]
    for io in ("parallel", "stream"):
        folded = [e["latency_cycles"] for e in level_report(graph, estimate(graph, board, io, reuse=4))]
        assert all(a > b for a, b in itertools.pairwise(folded)), folded
        gated = [e["latency_cycles"] for e in level_report(graph, estimate(graph, board, io, reuse=1))]
        assert len(set(gated)) == 1  # reuse 1: one group a step, unused components gated


def test_resources_match_the_static_build_at_the_largest_level(graph: Graph) -> None:
    board = BOARDS["zcu104"]
    for reuse in (1, 4):
        ours = estimate(graph, board, "stream", reuse=reuse).total
        static = estimate(truncated(graph, 0), board, "stream", reuse=reuse).total
        for key in ("dsp", "lut", "ff", "bram18"):
            assert getattr(ours, key) <= 1.1 * getattr(static, key) + 1, key


def test_levels_are_refused_by_name_where_they_cannot_be(graph: Graph) -> None:
    with pytest.raises(Hls4mlError, match=r"node 'c1_lr1' \(conv\): rank levels"):
        lower(graph)
    with pytest.raises(RankLevelError, match="rank level 4 does not exist: this design has 4 level"):
        run_fixed(graph, [calib(2)], rank_level=4)
    with pytest.raises(LowRankError, match="levels must decrease"):
        LowRank(levels="0.5,1")
    with pytest.raises(LowRankError, match="levels need method=svd"):
        LowRank(levels="1,0.5", method="tucker")
    with pytest.raises(LowRankError, match="exactly one of"):
        LowRank(levels="1,0.5", macs=0.5)


@pytest.mark.slow  # two fpgac processes
def test_fpgac_sim_takes_the_rank_level(graph: Graph, tmp_path: Path) -> None:
    save_graph(graph, tmp_path / "design")
    x = calib(4, seed=7)
    np.save(tmp_path / "x.npy", x)
    args = [sys.executable, "-m", "fpgac", "sim", tmp_path / "design", "--input", tmp_path / "x.npy"]
    done = subprocess.run([*map(str, args), "--output", str(tmp_path / "y.npy"), "--rank-level", "2"])
    assert done.returncode == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), run_fixed(graph, [x], rank_level=2).outputs[0])
    bad = subprocess.run([*map(str, args), "--output", str(tmp_path / "z.npy"), "--rank-level", "4"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "rank level 4 does not exist" in bad.stderr
    assert "Traceback" not in bad.stderr
