"""Channel folding of io-stream values (fpgac/analysis/lanes.py) and what the estimate charges for it.

The beats a pixel each value gets at a target II, that values an elementwise chain joins fold alike and
graph ports stay whole; that a folded elementwise layer costs 1/G of its units at G cycles a pixel, and
that a global average pool keeps per-channel sums instead of a window. The C++ of folded streams is
checked bit for bit in tests/exact/test_folded_stream_csim.py.
"""

from __future__ import annotations

from fpgac.analysis.estimate import layer_models
from fpgac.analysis.fit import fit
from fpgac.analysis.lanes import groups_at, lanes_of, pixels_channels, stream_mode
from fpgac.boards import get_board
from fpgac.ir import Graph
from tests.vitis_zoo import pixel_cnn, residual_cnn

BOARD = get_board("zcu104")


def _out(graph: Graph, node: str) -> str:
    return graph.node(node).output.name


def test_each_value_gets_the_most_beats_that_make_the_ii() -> None:
    graph = residual_cnn()
    one_pixel = {_out(graph, "gap"): 8, _out(graph, "flat"): 8}  # 8 channels of one pixel: 8 beats
    assert groups_at(graph, 8) == one_pixel  # 36 or 9 pixels: no second beat fits
    two = groups_at(graph, 72)
    assert two[_out(graph, "r1")] == 2 and two[_out(graph, "mp")] == 2  # a pool folds with its input
    assert lanes_of(graph, two)[_out(graph, "r1")] == 4
    most = groups_at(graph, 10**6)
    assert most[_out(graph, "c1")] == 8 and _out(graph, "fc") not in most  # the graph output stays whole


def test_an_elementwise_chain_folds_alike() -> None:
    """The residual add joins c2, r1 and its output; bn joins mp, and the pools their inputs: each
    group gets one folding."""
    graph = residual_cnn()
    for ii in (40, 72, 150, 300):
        g = groups_at(graph, ii)
        group = {g.get(_out(graph, n), 1) for n in ("c1", "r1", "c2", "res", "r2", "mp", "bn", "ap")}
        assert len(group) == 1, (ii, group)


def test_a_folded_elementwise_layer_has_one_unit_per_lane() -> None:
    graph = residual_cnn()
    add = next(m for m in layer_models(graph, "stream", BOARD) if m.name == "res")
    whole, folded = add.at(1), add.at(1, groups=(4, 4))
    assert folded.ii == 4 * whole.ii == 4 * 36
    assert folded.resources.lut < whole.resources.lut and folded.bound == "reuse"
    variable = whole.resources.lut - 100  # without the layer's control logic
    assert folded.resources.lut - 100 == variable // 4


def test_a_global_average_pool_has_no_window() -> None:
    """8 channels of 3x3: whole, one register a sum; folded to 2 lanes, 2 memories 4 deep (LUT RAM)."""
    graph = residual_cnn()
    gap = next(m for m in layer_models(graph, "stream", BOARD) if m.name == "gap")
    assert gap.mode == "global" and gap.work.window_regs == 0
    whole, folded = gap.at(1), gap.at(1, groups=(4, 4))
    assert whole.ii == 9 + 1 and folded.ii == 9 * 4 + 4
    assert folded.resources.ff < whole.resources.ff


def test_the_fitting_names_the_lanes_it_chose() -> None:
    graph = residual_cnn()
    fitting = fit(graph, BOARD, "stream")
    assert fitting.lanes and fitting.to_json()["lanes"] == dict(sorted(fitting.lanes.items()))
    assert fit(graph, BOARD, "stream", fold_channels=False).lanes == {}


def test_a_concat_joins_its_inputs_in_beats_of_equal_lanes() -> None:
    """pixel_cnn concatenates 4, 4 and 2 channels: one L for all (dividing 2), or all whole."""
    graph = pixel_cnn()
    two = lanes_of(graph, groups_at(graph, 36 * 5))
    assert {two[_out(graph, n)] for n in ("c2", "r1", "cat", "r2")} == {2}
    assert _out(graph, "c3") not in two  # 2 channels in one beat of 2 lanes
    one = lanes_of(graph, groups_at(graph, 36 * 10))
    assert {one[_out(graph, n)] for n in ("c2", "r1", "c3", "cat")} == {1}
    whole = lanes_of(graph, groups_at(graph, 36 * 4))  # 10 channels in 4 beats: no L divides them all
    assert not {_out(graph, n) for n in ("c2", "r1", "c3", "cat")} & set(whole)


def test_a_folded_concat_copies_a_beat_a_cycle() -> None:
    graph = pixel_cnn()
    cat = next(m for m in layer_models(graph, "stream", BOARD) if m.name == "cat")
    whole, folded = cat.at(1), cat.at(1, groups=(2, 5))
    assert cat.mode == "pixel" and whole.ii == 36 and folded.ii == 36 * 5
    assert folded.resources.lut - 100 == (whole.resources.lut - 100) // 5


def test_a_channel_shuffle_reorders_pixels() -> None:
    """pixel_cnn's shuffle: the split (2, 5, 6, 6) and its transpose stream as 36 pixels of 10 channels,
    so the reshapes are beat copies and the transpose a per-pixel permutation, folded with the concat."""
    graph = pixel_cnn()
    modes = {n.name: stream_mode(n) for n in graph.nodes}
    assert (modes["split"], modes["swap"], modes["merge"]) == ("beat", "permute", "beat")
    assert pixels_channels(graph.node("swap").output) == (36, 10)
    two = lanes_of(graph, groups_at(graph, 36 * 5))
    assert {two[_out(graph, n)] for n in ("cat", "split", "swap", "merge")} == {2}
    swap = next(m for m in layer_models(graph, "stream", BOARD) if m.name == "swap")
    whole, folded = swap.at(1), swap.at(1, groups=(5, 5))
    assert whole.resources.bram18 == folded.resources.bram18 == 0  # a pixel in registers, no tensor
    assert folded.ii == 36 * (2 * 5 + 2)
