"""Stream FIFO depths (fpgac/analysis/fifos.py): the lag rule, the depths the Vitis top declares, and
what the estimate charges for them.

C-simulation FIFOs are unbounded, so no csim can catch a depth that deadlocks; these tests pin the rule
on graphs small enough to work out by hand.
"""

from __future__ import annotations

from fractions import Fraction

from fpgac.analysis.estimate import estimate, fifo_cost, layer_models
from fpgac.analysis.fifos import SHALLOW_DEPTH, lag, stream_fifos
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
