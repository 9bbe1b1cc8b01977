"""Stream FIFO depths (fpgac/analysis/fifos.py): the lag rule, the depths the Vitis top declares, and
what the estimate charges for them, kept on chip or spilled to external memory.

C-simulation FIFOs are unbounded, so no csim can catch a depth that deadlocks; these tests pin the rule
on graphs small enough to work out by hand.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from fpgac.analysis.estimate import (
    estimate,
    fifo_cost,
    layer_models,
    spill_bundle_cost,
    spill_cost,
    spill_ii,
)
from fpgac.analysis.fifos import SHALLOW_DEPTH, Fifo, lag, stream_fifos
from fpgac.backends.vitis.ccode import VitisError
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.ir import Graph
from tests.vitis_zoo import pixel_cnn, residual_cnn

BOARD = get_board("zcu104")


def _fork(graph: Graph, value: str, reader: str) -> tuple[Fraction, int]:
    """The lag a fork output of ``value`` to ``reader`` holds, and its depth unfolded."""
    name = graph.node(value).output.name
    fifo = next(f for f in stream_fifos(graph) if f.value.name == name and f.reader == reader)
    return fifo.lag, fifo.depth()


def test_a_window_lags_by_the_rows_it_waits_for() -> None:
    """6 rows: a 3x3 window with one row of padding emits row r after input row r + 1 (2/6 of a frame
    behind), a 1x1 after row r (1/6); a global pool waits for the whole frame."""
    graph = pixel_cnn()
    assert lag(graph.node("c2")) == Fraction(1, 3)
    assert lag(graph.node("c3")) == Fraction(1, 6)
    assert lag(graph.node("gap")) == 1 and lag(graph.node("fc")) == 1  # buffered: a whole frame
    assert lag(graph.node("r2")) == lag(graph.node("cat")) == lag(graph.node("swap")) == Fraction(1, 36)


def test_the_early_branch_of_a_join_holds_the_late_branchs_lag() -> None:
    """residual_cnn forks r1 into conv c2 and the add: the add's FIFO holds c2's lag (12 of 36 beats, plus
    a pixel per use and 2), c2's own FIFO nothing but that slack."""
    graph = residual_cnn()
    assert _fork(graph, "r1", "res") == (Fraction(1, 3), 12 + 2 + SHALLOW_DEPTH)
    assert _fork(graph, "r1", "c2") == (0, 2 + SHALLOW_DEPTH)


def test_a_concat_input_holds_the_longest_other_path() -> None:
    """pixel_cnn's r1 feeds c2 (3x3), c3 (1x1) and the concat: the concat's FIFO holds the 3x3's lag."""
    graph = pixel_cnn()
    assert _fork(graph, "r1", "cat")[0] == Fraction(1, 3)
    assert _fork(graph, "r1", "c3")[0] == Fraction(1, 6)  # c2's lag less its own
    folded = next(f for f in stream_fifos(graph) if f.reader == "cat")
    assert folded.depth(4) == 48 + 4 * 3 + SHALLOW_DEPTH  # 4 beats a pixel: 144 beats, a third held


def test_a_fork_never_needs_more_than_the_whole_tensor() -> None:
    """A branch through a layer that gathers its whole input lags a frame: the other FIFO holds it all."""
    graph = residual_cnn()
    r2 = graph.node("r2")
    t = graph.add("transpose", [r2.output], name="t", attrs={"perm": [0, 2, 1]})
    both = graph.add("add", [t.output, r2.output], name="both")
    graph.set_outputs([graph.outputs[0], both.output])
    lag_to, depth = _fork(graph, "r2", "both")
    assert lag_to == 1 and depth == 36


def test_the_top_declares_the_depths_the_estimate_charges() -> None:
    graph = residual_cnn()
    top = vitis_plan(graph, BOARD, "stream").files["firmware/fpgac_top.cpp"]
    text = top if isinstance(top, str) else bytes(top).decode()
    assert f"depth={12 + 2 + SHALLOW_DEPTH})" in text and "depth=36)" not in text
    est = estimate(graph, BOARD, "stream")
    bare = {m.name: m.at(1).resources for m in layer_models(graph, "stream", BOARD)}
    charged = {e.name: e.resources.lut - bare[e.name].lut for e in est.layers}
    fifo_bits = [(f.depth(), f.width()) for f in stream_fifos(graph) if f.writer == "r1"]
    assert charged["r1"] == sum(fifo_cost(d, w, BOARD).lut for d, w in fifo_bits) > 0


def test_a_deep_wide_fifo_is_block_ram() -> None:
    assert fifo_cost(2, 16, BOARD).lut == 16 and not fifo_cost(2, 16, BOARD).bram18
    assert fifo_cost(4096, 16, BOARD).bram18 == 4 and not fifo_cost(4096, 16, BOARD).lut


def _text(data: object) -> str:
    return data if isinstance(data, str) else bytes(data).decode()  # type: ignore[call-overload]


def _skip(graph: Graph) -> Fifo:
    """residual_cnn's skip: r1's fork output to the add (16 beats of 8 x 10 bits)."""
    return next(f for f in stream_fifos(graph) if f.reader == "res")


def test_a_spilled_fifo_costs_its_burst_fifos_the_bundle_and_its_traffic() -> None:
    """Spilled, the skip costs two burst-deep FIFOs and the spill bundle's buffers instead of its depth;
    its 288 values cross external memory twice a frame in 16-bit words, and the frame takes at least a
    memory word a cycle of them."""
    graph = residual_cnn()
    skip = _skip(graph)
    assert skip.key == f"{skip.value.name}->res[1]"
    kept = estimate(graph, BOARD, "stream")
    spilled = estimate(graph, BOARD, "stream", spills=frozenset({skip.key}))
    by_name = {e.name: e.resources for e in kept.layers}
    extra = {k: v - by_name["r1"].to_json()[k] for k, v in spilled.layers[1].resources.to_json().items()}
    expected = spill_cost(skip, 1, BOARD) + spill_bundle_cost(BOARD)
    assert extra["lut"] == expected.lut - fifo_cost(skip.depth(), skip.width(), BOARD).lut
    assert extra["bram18"] == expected.bram18 > 0  # the bundle's 512-bit buffers
    assert spilled.spill_bits == 2 * 288 * 16 and kept.spill_bits == 0
    assert spilled.ii >= spill_ii([skip], frozenset({skip.key})) == 9
    assert spilled.to_json()["spills"] == [skip.key]


def test_the_top_spills_the_fifos_it_is_told_to() -> None:
    """The add reads the skip back from the spill (two m_axi ports of bundle gmem_s on one region, which
    the testbench points at its scratch memory), in chunks no longer than half the FIFO's depth (a longer
    one could wait on the join that waits on it); a key that names no fork output is refused."""
    graph = residual_cnn()
    skip = _skip(graph)
    files = vitis_plan(graph, BOARD, "stream", spills=frozenset({skip.key})).files
    top, bench = (_text(files[p]) for p in ("firmware/fpgac_top.cpp", "tb/testbench.cpp"))
    assert top.count("fpgac::spill_write<") == top.count("fpgac::spill_read<") == 1
    assert "fpgac::spill_write<0, 36, 8, 1>(" in top  # 36 beats in chunks of half the 16-beat depth
    assert top.count("bundle=gmem_s") == 2 and "firmware/fpgac_spill.h" in files
    assert bench.count("*>(fpgac_scratch_base + 0)") == 2  # both ports at the region's address
    with pytest.raises(VitisError, match="not fork outputs"):
        vitis_plan(graph, BOARD, "stream", spills=frozenset({"r2->mp[0]"}))


def test_a_values_spilled_uses_share_one_write() -> None:
    """pixel_cnn's r1 (144 values of 16-bit words) feeds two convs and the concatenation: all three uses
    spilled, it is written once and read back three times a frame, by one writer and three readers."""
    graph = pixel_cnn()
    r1 = graph.node("r1").output
    uses = frozenset(f.key for f in stream_fifos(graph) if f.reader and f.value is r1)
    assert len(uses) == 3
    assert estimate(graph, BOARD, "stream", spills=uses).spill_bits == (1 + 3) * 144 * 16
    top = _text(vitis_plan(graph, BOARD, "stream", spills=uses).files["firmware/fpgac_top.cpp"])
    assert top.count("fpgac::spill_write<") == 1 and top.count("fpgac::spill_read<") == 3
