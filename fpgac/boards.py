"""FPGA boards: the part each one carries, its resource budget and a default clock.

Budgets are the device totals from AMD's product tables (DS891 for Zynq
UltraScale+, DS190 for Zynq-7000, DS962 for Alveo, DS950 for Versal), with BRAM
counted in 18 Kb blocks as HLS reports do (one 36 Kb block = two BRAM18).
Default clocks are conservative targets that HLS designs close on each part
without heroic effort.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fpgac.errors import FpgacError


class BoardError(FpgacError):
    """An unknown board or a bad override."""


@dataclass(frozen=True)
class Board:
    """One target: part number, budgets and the default clock in MHz."""

    name: str
    part: str
    lut: int
    ff: int
    dsp: int
    bram18: int
    uram: int
    clock_mhz: float
    description: str

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz


BOARDS: dict[str, Board] = {
    b.name: b
    for b in [
        Board(
            "zcu104",
            "xczu7ev-ffvc1156-2-e",
            230_400,
            460_800,
            1_728,
            624,
            96,
            200.0,
            "Zynq UltraScale+ MPSoC ZCU104",
        ),
        Board(
            "zcu102",
            "xczu9eg-ffvb1156-2-e",
            274_080,
            548_160,
            2_520,
            1_824,
            0,
            200.0,
            "Zynq UltraScale+ MPSoC ZCU102",
        ),
        Board("ultra96v2", "xczu3eg-sbva484-1-i", 70_560, 141_120, 360, 432, 0, 150.0, "Avnet Ultra96-V2"),
        Board("pynq-z2", "xc7z020clg400-1", 53_200, 106_400, 220, 280, 0, 100.0, "TUL PYNQ-Z2 (Zynq-7020)"),
        Board(
            "kv260",
            "xck26-sfvc784-2LV-c",
            117_120,
            234_240,
            1_248,
            288,
            64,
            200.0,
            "Kria KV260 Vision AI Starter Kit",
        ),
        Board(
            "alveo-u250",
            "xcu250-figd2104-2L-e",
            1_728_000,
            3_456_000,
            12_288,
            5_376,
            1_280,
            300.0,
            "Alveo U250 data-center card",
        ),
        Board(
            "alveo-u280",
            "xcu280-fsvh2892-2L-e",
            1_304_000,
            2_607_000,
            9_024,
            4_032,
            960,
            300.0,
            "Alveo U280 data-center card (HBM)",
        ),
        Board(
            "alveo-u55c",
            "xcu55c-fsvh2892-2L-e",
            1_304_000,
            2_607_000,
            9_024,
            4_032,
            960,
            300.0,
            "Alveo U55C data-center card (HBM)",
        ),
        Board(
            "vck190",
            "xcvc1902-vsva2197-2MP-e-S",
            899_840,
            1_799_680,
            1_968,
            1_934,
            463,
            300.0,
            "Versal AI Core VCK190",
        ),
    ]
}


def get_board(name: str, *, part: str | None = None, clock_mhz: float | None = None) -> Board:
    """The named board, with the part or clock overridden if asked."""
    board = BOARDS.get(name.lower())
    if board is None:
        raise BoardError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}")
    if clock_mhz is not None and not 1.0 <= clock_mhz <= 1000.0:
        raise BoardError(f"clock {clock_mhz} MHz is out of range (1..1000)")
    return replace(board, part=part or board.part, clock_mhz=clock_mhz or board.clock_mhz)
