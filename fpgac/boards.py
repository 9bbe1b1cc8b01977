"""FPGA boards: the part each one carries, its resource budget and a default clock.

Budgets are the device totals from AMD's product tables (DS891 for Zynq
UltraScale+, DS190 for Zynq-7000, DS962 for Alveo, DS950 for Versal), with BRAM
counted in 18 Kb blocks as HLS reports do (one 36 Kb block = two BRAM18).
Default clocks are conservative targets that HLS designs close on each part
without heroic effort.

``mem_gb_s`` is the nominal bandwidth of the external memory the programmable logic reads weights from
(GB/s, transfers per second times bus bytes): DDR4-2400 on a 64-bit bus is 19.2 GB/s (ZCU104 UG1267,
ZCU102 UG1182, KV260 DS986: the PS DDR4 the PL reaches through its HP/HPC ports); the Ultra96-V2's
LPDDR4-2133 on 32 bits is 8.5 GB/s; the PYNQ-Z2's DDR3-1066 on 32 bits is 4.3 GB/s; the U250 has four
DDR4-2400 channels (DS962, 77 GB/s), the U280 and U55C HBM2 (460 GB/s, DS963); the VCK190 a DDR4-3200
DIMM on 64 bits (25.6 GB/s). A design sustains ``MEMORY_EFFICIENCY`` of that with long bursts (refresh,
bank and read/write turnarounds: 70-85 % is what AXI masters reach in practice, Xilinx XAPP1326 / PG150).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fpgac.errors import FpgacError

# The share of each budget a design may use by default: routing congestion makes designs above ~80 % of
# a resource hard to close.
DEFAULT_UTIL = 0.8


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
    mem_gb_s: float = 0.0

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    @property
    def mem_bits_per_cycle(self) -> float:
        """External-memory bits the design can read per cycle of its clock, at the sustained efficiency."""
        return self.mem_gb_s * 1e9 * 8 * MEMORY_EFFICIENCY / (self.clock_mhz * 1e6)


MEMORY_EFFICIENCY = 0.7  # sustained / nominal bandwidth of long AXI bursts (see the module docstring)


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
            mem_gb_s=19.2,
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
            mem_gb_s=19.2,
        ),
        Board(
            "ultra96v2",
            "xczu3eg-sbva484-1-i",
            70_560,
            141_120,
            360,
            432,
            0,
            150.0,
            "Avnet Ultra96-V2",
            mem_gb_s=8.5,
        ),
        Board(
            "pynq-z2",
            "xc7z020clg400-1",
            53_200,
            106_400,
            220,
            280,
            0,
            100.0,
            "TUL PYNQ-Z2 (Zynq-7020)",
            mem_gb_s=4.3,
        ),
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
            mem_gb_s=19.2,
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
            mem_gb_s=76.8,
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
            mem_gb_s=460.0,
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
            mem_gb_s=460.0,
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
            mem_gb_s=25.6,
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
