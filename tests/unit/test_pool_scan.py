"""Scanning pools in io stream (fpgac/analysis/pool_scan.py, fpgac_pool.h): their geometry and what the
estimate charges for them. The C++ is checked bit for bit in tests/exact/test_folded_stream_csim.py."""

from __future__ import annotations

from dataclasses import replace

from fpgac.analysis.estimate import layer_models
from fpgac.analysis.pool_scan import PoolScan
from fpgac.boards import get_board
from tests.vitis_zoo import residual_cnn

BOARD = get_board("zcu104")


def test_the_scan_covers_the_end_padding_as_virtual_rows_and_columns() -> None:
    graph = residual_cnn()
    mp, ap = PoolScan.of(graph.node("mp")), PoolScan.of(graph.node("ap"))  # 2x2/2 on 6x6; 3x3/1 pad 1 on 3x3
    assert (mp.slots, mp.scanned, mp.cycles(2)) == (1, (6, 6), 36 * 4)
    assert (ap.slots, ap.scanned) == (2, (4, 4))  # the last window's row and column of end padding
    assert ap.config() == {"SLOTS": 2, "SCAN_H": 4, "SCAN_W": 4}
    assert replace(ap, strides=(2, 2)).slots == 1  # rows ending and beginning at one input row share
    assert ap.covers_input() and not replace(ap, pads=(3, 1)).covers_input()  # a window of padding only


def test_a_pool_scans_at_the_lanes_both_its_streams_divide_into() -> None:
    """8 channels: whole, 36 cycles; 2 lanes (4 beats in, 4 or 2 out: gcd 2), 4x the cycles on a
    quarter of the comparators."""
    mp = next(m for m in layer_models(residual_cnn(), "stream", BOARD) if m.name == "mp")
    assert mp.mode == "scan"
    whole, folded, unlike = mp.at(1), mp.at(1, groups=(4, 4)), mp.at(1, groups=(4, 2))
    assert whole.ii == 36 and folded.ii == unlike.ii == 4 * 36
    assert folded.resources.lut < whole.resources.lut and folded.resources.ff < whole.resources.ff
