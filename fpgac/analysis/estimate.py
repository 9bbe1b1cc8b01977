"""Resource and latency estimate of a quantized graph on a board, before any vendor tool runs.

The estimate answers "will it fit, and how fast is it?" in a second, from the IR alone: the formats the
quantize pass chose, the non-zero weights, the io style and the reuse factors. It is a first-order
model, meant to be read and argued with by a hardware engineer, not a substitute for the synthesis
report: it is monotone (a bigger layer, a wider format or a smaller reuse factor never costs less) and
every constant below says where it comes from. Measured HLS reports should recalibrate the constants.

The model
=========
Every layer is a datapath that runs ``steps`` times per sample and produces ``elems`` output elements
per step, with ``M`` non-zero multiplications per step.

* **Steps.** Dense layers (one step per leading position, one for a vector) and window ops (conv, max
  and average pooling: one step per output pixel) loop over positions in both io styles, as hls4ml's
  kernels do. Other ops are fully unrolled in ``parallel`` style (one step over every element) and take
  one step per pixel (the channel vector) in ``stream`` style.
* **Reuse R** (per layer; ignored by layers without multiplications, except softmax, whose dividers it
  shares) builds the per-step datapath 1/R as wide and runs it R times: ``ceil(M/R)`` multipliers,
  adders and logic, initiation interval ``ii = steps * R``.
* **DSPs per multiplier** come from the operand widths (signed widths: an unsigned operand needs one
  more bit). A DSP multiplies ``P x Q`` signed bits: 27x18 for the DSP48E2 of UltraScale+ (UG579),
  25x18 for the DSP48E1 of 7-series parts (UG479), 27x24 for the DSP58 of Versal (AM004). A product of
  ``a x b`` bits tiles into ``ceil(a/P) * ceil(b/Q)`` DSPs, or the swapped orientation if fewer. When
  the narrower operand has at most ``LUT_MULT_MAX_BITS`` (6) bits the product goes to fabric instead,
  as synthesis does for narrow products, at ``ceil(a*b/2)`` LUTs (one LUT6 and the carry chain per two
  partial-product bits): at 6 bits that is 3 LUTs per bit of the other operand, about what a DSP and
  its routing cost in a fabric that has ~100-250 LUTs per DSP. DSP post-adders and INT8 packing
  (WP486) are not modelled: an upper bound.
* **Zero weights cost nothing**: M counts non-zero weights, so a pruned layer is a smaller layer.
  Scales of exactly 0 or 1 are wiring too.
* **LUTs**: adders at one LUT per accumulator bit (the carry chain; one adder per product, i.e. the
  tree plus the bias), comparators and selects at two LUTs per bit, the output rounding and
  saturation at one LUT per output bit, softmax dividers at ``quotient x divisor`` bits (an unrolled
  array divider), distributed memories at one LUT per 64 bits of depth per bit of width (LUT6 as a
  64x1 ROM/RAM or SRL), and ``CONTROL_LUT`` per layer for loops, handshakes and FSMs.
* **FFs**: one register per bit of a LUT product and of every adder (every stage is pipelined; DSP
  products are registered inside the DSP, in its M and P registers), the output registers
  (``parallel``: the whole partitioned output array; ``stream``: one step's elements), the window
  registers of a window gathered from its line buffer, and ``CONTROL_FF`` per layer.
* **Weights** (:func:`weight_memory`, which the Vitis emitter's pragmas follow). At R = 1 each weight
  is a constant wired into its multiplier, in both styles: no storage (a memory read every cycle by
  every multiplier would be registers anyway). At R > 1 a layer's ``n`` stored weights (an uncompressed
  array stores its zeros too) form a ROM of words of ``w = ceil(n/R)`` weights (:func:`rom_word`: one
  word feeds all multipliers for one cycle), ``ceil(n/w)`` words deep (:func:`rom_depth`: at most R).
  ``parallel`` keeps it in LUTs. ``stream`` puts it in block RAM only when that fills the blocks at least
  half (``BRAM_MIN_FILL``): block counts come from the 18-Kbit block's aspect ratios (UG573: 512x36,
  1Kx18, 2Kx9, 4Kx4, 8Kx2, 16Kx1), the best of ``ceil(depth/d) * ceil(width/w)``, so a shallow, wide
  ROM (small R) is port-bound: at R = 2 each block would hold 72 of its 18,432 bits. Such a ROM is LUT
  ROM instead, ``width * ceil(depth/64)`` LUTs (a LUT6 is a 64x1 ROM), in proportion to the bits once
  the depth reaches 64. Block RAM is thus in proportion to the weight bits (at most ``1 /
  BRAM_MIN_FILL`` times their 18-Kbit count). A ROM is never UltraRAM: the bitstream cannot initialise
  URAM.
* **Weights in UltraRAM** (layers in ``uram``, io stream; chosen by the fitting): URAM cannot be
  initialised by the bitstream, so such a layer's weights are in the weight image (as off-chip weights
  are) and ``fpgac::preload`` copies them once, on the first call, through the layer's m_axi port into a
  memory of the ROM's shape (:func:`uram_memory`: 4Kx72 blocks); the compute is the on-chip one.
* **Off-chip weights** (layers in ``offchip``, io stream; the kernels of ``fpgac_offchip.h``): the ROM is
  replaced by two tiles of one output's ``fan-in`` weights (ping-pong), refilled from external memory, and
  the layer takes one memory word (``OFFCHIP_WORD_BITS``, 512: the widest burst an m_axi port is widened to)
  of weights a cycle: ``L = 512 / word`` lanes (:func:`offchip_lanes`; ``word`` the weights' stored C
  integer width, 8 to 64 bits; ``L / R`` at reuse R), ``L`` multipliers, and ``ceil(fan-in / L)`` cycles per
  output per position (every weight, zeros included: off-chip weights are dense). A dense layer reads its
  weights once a frame, a conv once per output row (each row read serves the row's windows), so a layer
  reads ``sweeps * weights * word`` bits a frame; all off-chip layers share the board's sustained bandwidth
  (:attr:`~fpgac.boards.Board.mem_bits_per_cycle`), so each of them takes at least the cycles the whole
  off-chip traffic of a frame needs. An off-chip conv (``conv_row_offchip``) copies its row's windows into a
  memory ``L`` cells a cycle (``OW x C x taps`` cells, ``L`` wide: no window registers) and computes the row
  into a second memory (``OW x OC``, one bank per output lane), both mapped as weight ROMs are; the copy
  and the row's output beats add to its cycles.
* **Channel folding** (io stream, :mod:`fpgac.analysis.lanes`): a value folded into ``G`` beats a pixel
  makes the elementwise layers at its ends ``C / G`` units wide at ``G`` cycles a pixel (as reuse
  ``G``), a window layer write its output pixel in ``G`` beats (``ii >= steps * G``) and read its input
  one beat a cycle, a max or average pool scan its input at ``L = gcd(L_in, L_out)`` lanes a cycle
  (``pool_scan``, :mod:`fpgac.analysis.pool_scan`: ``L`` comparators or adders per tap and row memory,
  delay lines and row memories of partials instead of a window), and
  a global average pool (an avg_pool over the whole unpadded input:
  ``global_avg_stream``) keep its ``C`` sums in ``L`` memories ``G`` deep (registers when ``G = 1``)
  instead of a window; a concatenation over channels (a pixel layer) copies a beat of ``C / G`` channels
  a cycle, its inputs' beats of each pixel in turn (no tensor buffer), and a channel shuffle (a
  transpose of a channel split, ``permute_stream``) holds one pixel's channels in registers and writes
  its beats through a channel mux.
* **Tables** (sigmoid, tanh, ELU, softmax's exponential) are ROMs, one copy per two lookups per cycle
  (dual-port). **Line buffers** (:func:`line_buffer`) of windows in ``stream`` style hold the window's
  span of input rows (``k`` rows: the kernel computes a row's windows once the row is stored), each row
  split over its channels into as few memories as the window's reads in the layer's cycles a pixel
  allow (a memory a channel, ``width`` deep, when the whole window is read every cycle); a conv folded
  far enough reads its windows where they lie in the line buffer (no window registers), and a 1 x 1 conv
  stores one pixel instead of a row. The fitting moves line buffers to LUT RAM while block RAM is over
  budget and LUTs are not. A transpose in ``stream`` style (but a channel shuffle) buffers the whole
  tensor.
* **Latency** of a layer is ``ii`` plus its pipeline depth: a multiplier (``DSP_LATENCY`` or
  ``LUT_MULT_LATENCY``), ``ceil(log2(fan-in + 1))`` adder levels (a tree over ``fan-in / R`` products
  per cycle, then an accumulation over R cycles: counted at the R = 1 depth, so latency never falls as
  R grows), a memory read and a cast. A low-rank factor with rank levels takes its level's component
  groups per step instead of R cycles (:mod:`fpgac.analysis.rank_schedule`).
  ``parallel``: the layers run one after the other, so the total latency is the sum and the total ii
  is the slowest layer's. ``stream``: layers overlap in a dataflow region, so the total ii is still the
  slowest stage's, and the total latency is that stage's ii plus every layer's fill time (its depth,
  plus the pixels a line buffer waits for before its first window). Frames per second are the clock
  over the total ii.
* **Fits** when every total is within the board's budget. The layers named in the warning are those
  with the largest share of the resources over budget.
* **Folding and io style** are chosen by :mod:`fpgac.analysis.fit`; ``PARALLEL_MAX_MULTS`` (4096) is
  the most products or elements one step may unroll in ``parallel`` style (beyond that HLS stops
  unrolling, hls4ml issue #1013).

* **Stream FIFOs** (:mod:`fpgac.analysis.fifos`): every layer's output FIFO (2 beats) and every fork's
  outputs, as deep as a join needs to be free of deadlock, each ``L x bits`` wide: shift registers in
  LUTs (``width`` LUTs per 32 beats) when at most 32 deep or under ``BRAM_MIN_BITS``, else block RAM.
  They are charged to the layer that writes them. A fork FIFO the fitting *spills* (``spills``, by
  :attr:`~fpgac.analysis.fifos.Fifo.key`) lives in external memory instead (``fpgac_spill.h``): it costs
  a burst-deep FIFO of its beats out of the spill, plus one into it per spilled value (a value's spilled
  uses share one write), :data:`SPILL_BURST` words each, and, once per design, the read and write buffers
  of the spills' m_axi bundle (``2 x SPILL_BURST`` words each); a spilled value is written once a frame and
  read back once per spilled use (:func:`spill_bits`, stored words as off-chip weights are), traffic that
  shares the board's bandwidth with off-chip weights, and each spill process moves a memory word a cycle,
  so the design's ii is at least :func:`spill_ii`.

Not modelled: the top-level AXI interfaces and routing congestion, which in practice makes designs
above ~80 % of LUTs hard to close at the board's clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from fpgac.analysis.fifos import SRL_DEPTH, Fifo, stream_fifos
from fpgac.analysis.lanes import pixels_channels, scans, stream_mode
from fpgac.analysis.pool_scan import PoolScan
from fpgac.analysis.rank_schedule import step_cycles
from fpgac.boards import Board
from fpgac.errors import FpgacError
from fpgac.ir.bipolar import is_xnor_layer
from fpgac.ir.graph import Graph, Node
from fpgac.ir.levels import is_levelled
from fpgac.ir.shapes import is_global_pool, patch_grid
from fpgac.ir.sign_weights import sign_weights
from fpgac.ir.types import Fixed

IO_STYLES = ("parallel", "stream")
RESOURCES = ("dsp", "bram18", "uram", "lut", "ff")

LUT_MULT_MAX_BITS = 6  # a product with an operand this narrow is cheaper in LUTs than in a DSP
BRAM_MIN_BITS = 4096  # smaller memories are LUT ROM/RAM: a block would be mostly empty
BRAM_MIN_FILL = 0.5  # a weight ROM filling its blocks less than this is LUT ROM (port-bound, see above)
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))  # UG573, SDP
URAM_SHAPE = (4096, 72)  # UltraRAM: 288 Kbit, one aspect ratio
BRAM18_BITS = 18432  # with the parity bits (the 512x36 and 1Kx18 shapes)
URAM_PER_BRAM18 = 16  # capacity ratio: 294,912 / 18,432
LUTRAM_DEPTH = 64  # a LUT6 stores 64x1
CONTROL_LUT, CONTROL_FF = 100, 100  # loop counters, handshakes and FSM of one layer
DSP_LATENCY, LUT_MULT_LATENCY, BRAM_LATENCY = 3, 2, 2
PARALLEL_MAX_MULTS = 4096  # HLS refuses to unroll more (hls4ml issue #1013, "XFORM 203-504")
LARGEST_COUNT = 3
OFFCHIP_WORD_BITS = 512  # an off-chip layer's weights a cycle: one AXI word (m_axi max_widen_bitwidth)
SPILL_BURST = 32  # memory words a spilled FIFO's bursts move (its m_axi max burst length, fpgac_spill.h)


class EstimateError(FpgacError):
    """The estimate cannot be made as asked (float graph, unknown io style)."""


class ReuseError(EstimateError):
    """A reuse factor that is not a positive integer, or names a layer that does not exist."""


# ----------------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Resources:
    """Counts of each FPGA resource kind."""

    dsp: int = 0
    bram18: int = 0
    uram: int = 0
    lut: int = 0
    ff: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, k) + getattr(other, k) for k in RESOURCES))

    def __mul__(self, copies: int) -> Resources:
        """``copies`` of the same block (table copies, line-buffer rows, memory banks)."""
        return Resources(*(getattr(self, k) * copies for k in RESOURCES))

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in RESOURCES}


@dataclass(frozen=True)
class LayerEstimate:
    """One layer: its multipliers and resources, its latency and initiation interval in cycles.

    ``fill_cycles`` is how long the layer delays a dataflow pipeline (depth plus line-buffer wait).
    ``memory`` is where its weights live (:data:`MEMORIES`); ``bound`` what sets its ii: ``steps`` (one
    step per cycle: R = 1, or an op without multipliers), ``reuse`` (R cycles a step), ``serial``
    (off-chip weights, one memory word a cycle) or ``bandwidth`` (off-chip weight reads); ``offchip_bits``
    the external-memory bits it reads per frame.
    """

    name: str
    op: str
    reuse: int
    multipliers: int
    resources: Resources
    latency_cycles: int
    ii: int
    fill_cycles: int
    memory: str = "none"
    bound: str = "steps"
    offchip_bits: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "reuse": self.reuse,
            "multipliers": self.multipliers,
            **self.resources.to_json(),
            "latency_cycles": self.latency_cycles,
            "ii": self.ii,
            "memory": self.memory,
            "bound": self.bound,
            "offchip_bits": self.offchip_bits,
        }


@dataclass(frozen=True)
class Estimate:
    """The whole design: per-layer estimates, totals, and how they compare with the board's budget."""

    io: str
    reuse: int | dict[str, int]
    board: Board
    layers: tuple[LayerEstimate, ...]
    latency_cycles: int
    ii: int
    offchip: frozenset[str] = frozenset()
    spills: frozenset[str] = frozenset()
    spill_bits: int = 0
    total: Resources = field(init=False)

    def __post_init__(self) -> None:
        total = Resources()
        for layer in self.layers:
            total = total + layer.resources
        object.__setattr__(self, "total", total)

    @property
    def multipliers(self) -> int:
        return sum(layer.multipliers for layer in self.layers)

    @property
    def budget(self) -> Resources:
        b = self.board
        return Resources(b.dsp, b.bram18, b.uram, b.lut, b.ff)

    @property
    def utilization(self) -> dict[str, float]:
        """Fraction of the budget each resource takes (a resource the board lacks counts 0 if unused)."""
        used, budget = self.total.to_json(), self.budget.to_json()
        return {
            k: round(used[k] / budget[k], 4) if budget[k] else (0.0 if not used[k] else math.inf)
            for k in RESOURCES
        }

    @property
    def over_budget(self) -> tuple[str, ...]:
        used, budget = self.total.to_json(), self.budget.to_json()
        return tuple(k for k in RESOURCES if used[k] > budget[k])

    @property
    def fits(self) -> bool:
        return not self.over_budget

    @property
    def largest(self) -> tuple[str, ...]:
        """The layers with the largest share of the over-budget resources (of all resources if it fits)."""
        kinds = self.over_budget or RESOURCES
        budget = self.budget.to_json()

        def share(layer: LayerEstimate) -> float:
            used = layer.resources.to_json()
            return max((used[k] / budget[k] if budget[k] else used[k]) for k in kinds)

        ranked = sorted((layer for layer in self.layers if share(layer) > 0), key=share, reverse=True)
        return tuple(layer.name for layer in ranked[:LARGEST_COUNT])

    @property
    def warning(self) -> str | None:
        """One line for the build log when the design does not fit, naming the resources and layers."""
        if self.fits:
            return None
        used, budget, util = self.total.to_json(), self.budget.to_json(), self.utilization
        over = ", ".join(f"{k} {used[k]:,}/{budget[k]:,} ({util[k]:.0%})" for k in self.over_budget)
        return (
            f"estimated design does not fit {self.board.name} ({self.io}): {over}; "
            f"largest layers: {', '.join(self.largest)}; "
            "share their multipliers (reuse), prune or quantize them further"
        )

    @property
    def latency_us(self) -> float:
        return self.latency_cycles / self.board.clock_mhz

    @property
    def fps(self) -> float:
        """Frames per second: one frame every ``ii`` cycles at the board's clock."""
        return self.board.clock_mhz * 1e6 / self.ii

    @property
    def offchip_bits(self) -> int:
        return sum(layer.offchip_bits for layer in self.layers)

    def to_json(self) -> dict[str, Any]:
        util = {k: (None if math.isinf(v) else v) for k, v in self.utilization.items()}
        return {
            "io": self.io,
            "reuse": self.reuse,
            "offchip": sorted(self.offchip),
            "spills": sorted(self.spills),
            "layers": [layer.to_json() for layer in self.layers],
            "total": {
                "multipliers": self.multipliers,
                **self.total.to_json(),
                "latency_cycles": self.latency_cycles,
                "ii": self.ii,
                "latency_us": round(self.latency_us, 3),
                "fps": round(self.fps, 3),
                "offchip_bits": self.offchip_bits,
                "spill_bits": self.spill_bits,
            },
            "budget": self.budget.to_json(),
            "utilization": util,
            "fits": self.fits,
            "largest": list(self.largest),
        }


# ----------------------------------------------------------------------------------------------------------
# options


def reuse_factors(graph: Graph, reuse: int | Mapping[str, int], default: int = 1) -> dict[str, int]:
    """The reuse factor of every node: ``reuse`` for all, or per layer (others get ``default``).

    Validated here so that a typo in a layer name fails before any work, with the name in the message.
    """

    def check(value: object, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ReuseError(f"reuse factor{where} must be a positive integer, not {value!r}")
        return value

    names = [node.name for node in graph.nodes]
    if not isinstance(reuse, Mapping):
        return dict.fromkeys(names, check(reuse, ""))
    default = check(default, "")
    unknown = [name for name in reuse if name not in set(names)]
    if unknown:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ReuseError(f"reuse factor for layer {unknown[0]!r}: no such layer; layers are {shown}")
    return {name: check(reuse[name], f" of layer {name!r}") if name in reuse else default for name in names}


def check_io(io: str) -> str:
    if io not in IO_STYLES:
        raise EstimateError(f"unknown io style {io!r}; choose one of {', '.join(IO_STYLES)}")
    return io


# ----------------------------------------------------------------------------------------------------------
# hardware primitives


def dsp_shape(board: Board) -> tuple[int, int]:
    """Signed operand widths of the board's DSP slice."""
    part = board.part.lower()
    if part.startswith("xc7"):
        return 25, 18  # DSP48E1, 7-series (UG479)
    if part.startswith("xcv"):
        return 27, 24  # DSP58, Versal (AM004)
    return 27, 18  # DSP48E2, UltraScale(+) and Alveo (UG579)


def product_cost(a: int, b: int, board: Board) -> tuple[int, int]:
    """(DSPs, LUTs) of one multiplier of signed widths ``a`` x ``b``."""
    if min(a, b) <= LUT_MULT_MAX_BITS:
        return 0, math.ceil(a * b / 2)
    p, q = dsp_shape(board)
    return min(math.ceil(a / p) * math.ceil(b / q), math.ceil(b / p) * math.ceil(a / q)), 0


def stored_bits(width: int) -> int:
    """Bits of the C integer word a ``width``-bit weight is stored in off chip (the weight image's)."""
    return next(b for b in (8, 16, 32, 64) if width <= b)


def offchip_lanes(weight_bits: int, fan_in: int, reuse: int = 1) -> int:
    """Products a cycle of an off-chip layer: the weights one memory word holds, at most one output's,
    1/R of them at reuse R (a layer with a small share of the frame needs fewer multipliers)."""
    return max(1, min(OFFCHIP_WORD_BITS // stored_bits(weight_bits), fan_in) // reuse)


def direct_lanes(weight_bits: int, group_channels: int, taps: int, reuse: int = 1) -> int:
    """Lanes of an off-chip conv that reads its windows straight from its line buffer (``fpgac_offchip.h``'s
    conv_offchip_stream: a cycle's lanes are consecutive channels of one tap, one word of the buffer, so
    they divide the group's channels): the largest divisor of ``group_channels`` within
    :func:`offchip_lanes`. 0 when even at reuse 1 that is under half the lanes a weight word feeds (few
    channels a group: an RGB input, a depthwise conv), where whole words would idle most products: such a
    conv copies its windows into a memory instead (conv_row_offchip)."""
    widest = offchip_lanes(weight_bits, group_channels * taps)
    if 2 * _divisor_within(group_channels, widest) < widest:
        return 0
    return _divisor_within(group_channels, offchip_lanes(weight_bits, group_channels * taps, reuse))


def _divisor_within(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def offchip_max_reuse(weight_bits: int, fan_in: int) -> int:
    """The reuse factor of an off-chip layer at one product a cycle."""
    return offchip_lanes(weight_bits, fan_in)


def memory_cost(depth: int, width: int, board: Board, allow_uram: bool = True) -> Resources:
    """Cheapest storage of a ``depth`` x ``width``-bit memory: LUTs when small, else BRAM18 or URAM."""
    if depth <= 0 or width <= 0:
        return Resources()
    if depth * width < BRAM_MIN_BITS:
        return Resources(lut=width * math.ceil(depth / LUTRAM_DEPTH))
    bram = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM18_SHAPES)
    if allow_uram and board.uram and depth * width >= URAM_SHAPE[0] * URAM_SHAPE[1]:
        uram = _uram_cost(depth, width).uram
        if URAM_PER_BRAM18 * uram <= bram:
            return Resources(uram=uram)
    return Resources(bram18=bram)


def _signed_width(fmt: object) -> int:
    if not isinstance(fmt, Fixed):
        raise EstimateError(f"estimate needs a quantized graph (run quantize first): found format {fmt}")
    return fmt.width + (0 if fmt.signed else 1)


def _width(fmt: object) -> int:
    _signed_width(fmt)
    assert isinstance(fmt, Fixed)
    return fmt.width


# ----------------------------------------------------------------------------------------------------------
# what each op computes per step


@dataclass(frozen=True)
class _Work:
    """One layer's datapath per step, before reuse; see the module docstring."""

    steps: int
    elems: int
    mults: int = 0
    a_bits: int = 0
    b_bits: int = 0
    adds: int = 0  # adders per step
    add_bits: int = 0
    logic: int = 0  # comparators, selects, dividers, rounding: LUTs per step
    fan_in: int = 1  # products summed into one output
    weights: int = 0  # weights stored (a compressed tensor's non-zero ones)
    weight_bits: int = 0  # bits of one stored weight
    sweeps: int = 1  # reads of all the weights a frame when they are off chip
    tables: tuple[tuple[int, int], ...] = ()  # (entries, width) ROMs read once per element
    window_regs: int = 0  # FF bits of a window register
    windowed: bool = False  # a sliding window on a stream: a line buffer (:func:`line_buffer`)
    line_buffers: tuple[int, int, int, int] = (0, 0, 0, 0)  # (rows, depth, memories a row, bits of each)
    warmup: int = 0  # pixels a line buffer waits for before its first window
    depth: int = 1


def _spatial(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else 1


def _steps(node: Node, io: str) -> int:
    """Sequential steps of a non-engine op: one in parallel style, one per pixel in stream style."""
    return 1 if io == "parallel" else _spatial(node.output.shape)


def _in_bits(node: Node) -> int:
    """Signed width of the first input (of the output for an op without inputs)."""
    return _signed_width(node.inputs[0].type.format if node.inputs else node.output.type.format)


def _per_step(node: Node, io: str) -> tuple[int, int]:
    """(steps, elems) of a non-engine op: see :func:`_steps`."""
    steps = _steps(node, io)
    return steps, max(node.output.type.size // steps, 1)


def _matmul(node: Node, io: str) -> _Work:
    """Dense and conv: one multiply-accumulate per non-zero weight; with binary/ternary weights
    (:func:`~fpgac.ir.sign_weights.sign_weights`) the product is a sign and a shift: an add or a
    subtract, costed as a product with a 2-bit operand (LUTs, no DSP), whatever the weight's width.

    XNOR-popcount layers (binary weights on a bipolar input, :mod:`fpgac.ir.bipolar`): a product is an
    XNOR of two sign bits (a 1 x 1-bit product: one LUT), the sum a popcount tree at about one LUT and one
    register per input bit (6:3 counters, three LUT6 per six bits, halve the bits each level), then per
    output one add of the count, times the constant scale (wiring), to the bias; the weights are stored 1
    bit each."""
    out = node.output
    weight = node.params["weight"]
    signs = sign_weights(weight.data)
    nnz = int(np.count_nonzero(weight.data))
    fan_in = math.prod(weight.shape[1:])
    if node.op == "dense":
        steps, elems = math.prod(out.shape[:-1]), out.shape[-1]
    else:
        steps, elems = _spatial(out.shape), out.shape[0]
    acc = _width(node.attrs["acc"])
    xnor = is_xnor_layer(node)
    return _Work(
        steps=steps,
        elems=elems,
        mults=nnz,
        a_bits=1 if xnor else _in_bits(node),
        b_bits=1 if xnor else 2 if signs is not None else _signed_width(weight.format),
        adds=nnz,
        add_bits=1 if xnor else acc,
        logic=elems * (_width(out.type.format) + (acc if xnor else 0)),
        fan_in=fan_in,
        weights=nnz if weight.encoding is not None else weight.data.size,  # a plain array stores its zeros
        weight_bits=1 if xnor else _width(weight.format),
        sweeps=out.shape[1] if node.op == "conv" and len(out.shape) > 2 else 1,  # conv: once per output row
        **(_window(node, io, fan_in) if node.op == "conv" else {}),
    )


def _pool(node: Node, io: str) -> _Work:
    """Max pooling: a comparator tree per window; average pooling: a sum and one reciprocal product."""
    out = node.output
    ow, xw = _width(out.type.format), _in_bits(node)
    taps = math.prod(node.attrs["kernel"])
    steps, elems = _spatial(out.shape), out.shape[0]
    common: dict[str, Any] = dict(steps=steps, elems=elems, fan_in=taps, **_window(node, io, taps))
    if node.op == "max_pool":
        return _Work(**common, logic=elems * (taps - 1) * 2 * xw + elems * ow)
    acc = _width(node.attrs["acc"])
    recip = node.params["recip"]
    if io == "stream" and is_global_pool(node.inputs[0].shape, node.attrs):
        # fpgac_stream.h's global_avg_stream: one sum a channel, an input pixel a step; the sums' array and
        # the output side are costed by LayerModel (they depend on the folding).
        pixels = _spatial(node.inputs[0].shape)
        return _Work(steps=pixels, elems=elems, adds=elems, add_bits=acc, a_bits=acc,
                     b_bits=_signed_width(recip.format), fan_in=taps, warmup=pixels)  # fmt: skip
    return _Work(
        **common,
        mults=elems,
        a_bits=acc,
        b_bits=_signed_width(recip.format),
        adds=elems * (taps - 1),
        add_bits=acc,
        logic=elems * ow,
        tables=((recip.shape[0], _width(recip.format)),) if recip.shape else (),
    )


def _layout(node: Node, io: str) -> _Work:
    """Reorderings of a register array are wiring in parallel style; a reshape is wiring in both."""
    steps, elems = _per_step(node, io)
    if io == "parallel" or node.op == "reshape":
        return _Work(steps=1, elems=elems, depth=0)
    ow = _width(node.output.type.format)
    if node.op == "transpose":  # stream: the whole tensor is buffered, then read out in the new order
        buffer = (1, node.output.type.size // elems, 1, elems * ow)
        return _Work(steps=steps, elems=elems, line_buffers=buffer)
    return _Work(steps=steps, elems=elems, logic=elems * ow)


def _select(node: Node, io: str) -> _Work:
    """ReLU (one select), clip and quant (two: its clamp; its rounding is the cast every layer has)."""
    steps, elems = _per_step(node, io)
    ow = _width(node.output.type.format)
    return _Work(steps=steps, elems=elems, logic=elems * ow * (2 if node.op in ("clip", "quant") else 1))


def _sum(node: Node, io: str) -> _Work:
    """Add and sub: an adder chain over the inputs."""
    steps, elems = _per_step(node, io)
    ow = _width(node.output.type.format)
    adds = elems * (len(node.inputs) - 1)
    return _Work(steps=steps, elems=elems, adds=adds, add_bits=ow + 1, logic=elems * ow)


def _scaled(key: str | None, adds: bool, selects: int) -> Callable[[Node, str], _Work]:
    """Ops that multiply by param ``key`` (by the second input when ``key`` is None): products that
    are not by 0 or 1 (affine) or all of them, an adder when ``adds``, ``selects`` LUTs per output bit."""

    def work(node: Node, io: str) -> _Work:
        out = node.output
        steps, elems = _per_step(node, io)
        xw, ow = _in_bits(node), _width(out.type.format)
        if key is None:
            factor_bits = _signed_width(node.inputs[1].type.format)
            count = out.type.size
        else:
            factor = node.params[key]
            factor_bits = _signed_width(factor.format)
            data = (
                np.broadcast_to(factor.data, out.shape)
                if factor.data.ndim
                else np.full(out.shape, factor.data)
            )
            count = int(np.count_nonzero((data != 0) & (data != 1))) if node.op == "affine" else out.type.size
        table = node.params.get("table")
        return _Work(
            steps=steps,
            elems=elems,
            mults=math.ceil(count / steps),
            a_bits=xw,
            b_bits=factor_bits,
            adds=elems if adds else 0,
            add_bits=xw + factor_bits,
            logic=elems * ow * selects,
            tables=((table.shape[0], _width(table.format)),) if table is not None else (),
        )

    return work


def _table(node: Node, io: str) -> _Work:
    """A lookup table per element (sigmoid, tanh, elu)."""
    steps, elems = _per_step(node, io)
    table = node.params["table"]
    tables = ((table.shape[0], _width(table.format)),)
    return _Work(steps=steps, elems=elems, logic=elems * _width(node.output.type.format), tables=tables)


def _softmax(node: Node, io: str) -> _Work:
    """An exp table, a max tree, an exact sum and one divider per output."""
    steps, elems = _per_step(node, io)
    xw, ow = _in_bits(node), _width(node.output.type.format)
    table = node.params["table"]
    n = node.inputs[0].shape[node.attrs["axis"]]
    acc = _width(node.attrs["acc"])
    return _Work(
        steps=steps,
        elems=elems,
        adds=elems,
        add_bits=acc,
        logic=elems * (2 * xw + xw + ow * acc),  # max tree, x - max, one divider per output
        fan_in=n,
        tables=((table.shape[0], _width(table.format)),),
        depth=math.ceil(math.log2(max(n, 2))) + ow,  # the max tree; the divider's quotient bits
    )


def _lrn(node: Node, io: str) -> _Work:
    """A square per input, a window sum of ``size`` squares, a power table and one product per output."""
    steps, elems = _per_step(node, io)
    xw, ow = _in_bits(node), _width(node.output.type.format)
    table = node.params["table"]
    size = node.attrs["size"]
    return _Work(
        steps=steps,
        elems=elems,
        mults=2 * elems,  # x * x, and x * table[s]
        a_bits=xw,
        b_bits=max(xw, _width(table.format)),
        adds=elems * (size - 1),
        add_bits=_width(node.attrs["acc"]),
        logic=elems * ow,
        fan_in=size,
        tables=((table.shape[0], _width(table.format)),),
    )


def _reduce(node: Node, io: str) -> _Work:
    """Max: a comparator tree; mean: a sum and one reciprocal product (stream: one input pixel a step)."""
    out = node.output
    xw, ow = _in_bits(node), _width(out.type.format)
    n = math.prod(node.inputs[0].shape[a] for a in node.attrs["axes"])
    steps = 1 if io == "parallel" else _spatial(node.inputs[0].shape)
    elems = max(out.type.size // (1 if io == "parallel" else max(_spatial(out.shape), 1)), 1)
    if node.attrs["mode"] == "max":
        return _Work(steps=steps, elems=elems, logic=elems * 2 * xw * (n - 1 if io == "parallel" else 1))
    acc = _width(node.attrs["acc"])
    recip = node.params["recip"]
    return _Work(
        steps=steps,
        elems=elems,
        mults=elems,
        a_bits=acc,
        b_bits=_signed_width(recip.format),
        adds=elems * (n - 1 if io == "parallel" else 1),
        add_bits=acc,
        logic=elems * ow,
        fan_in=n if io == "parallel" else 1,
    )


def _patch_energy(node: Node, io: str) -> _Work:
    """The OOD monitor's energy (fpgac_ood.h), in both styles: a step per direction of each patch, its T
    products in parallel (the basis a row a word) and one square; without a basis, a patch a step, its T
    squares in parallel; every sum exact."""
    grid, taps = patch_grid(node.inputs[0].shape, node.attrs)
    basis = node.params.get("basis")
    k = basis.shape[0] if basis is not None else 0
    total = _width(node.output.type.format)
    xw = _in_bits(node)
    return _Work(
        steps=math.prod(grid) * max(k, 1),
        elems=1,
        mults=taps + (1 if basis is not None else 0),
        a_bits=xw,
        b_bits=_signed_width(basis.format) if basis is not None else xw,
        adds=taps + 1,
        add_bits=total,
        logic=total,
        fan_in=taps,
        weights=k * taps,
        weight_bits=_width(basis.format) if basis is not None else 0,
    )


def _ood_flag(node: Node, io: str) -> _Work:
    """One exact product tau * den and a comparator."""
    tau = node.params["tau"]
    den = _width(node.inputs[1].type.format)
    return _Work(steps=1, elems=1, mults=1, a_bits=den, b_bits=_signed_width(tau.format), logic=den)


# The datapath of each op with a fixed-point kernel (float-only ops never reach the estimate).
WORK: dict[str, Callable[[Node, str], _Work]] = {
    "dense": _matmul,
    "conv": _matmul,
    "max_pool": _pool,
    "avg_pool": _pool,
    "reduce": _reduce,
    "affine": _scaled("scale", adds=True, selects=1),
    "add": _sum,
    "sub": _sum,
    "mul": _scaled(None, adds=False, selects=1),
    "relu": _select,
    "quant": _select,
    "leaky_relu": _scaled("alpha", adds=False, selects=2),
    "prelu": _scaled("slope", adds=False, selects=2),
    "clip": _select,
    "sigmoid": _table,
    "hard_sigmoid": _scaled("alpha", adds=True, selects=2),
    "tanh": _table,
    "elu": _table,
    "selu": _scaled("gamma", adds=False, selects=2),
    "softmax": _softmax,
    "lrn": _lrn,
    "reshape": _layout,
    "transpose": _layout,
    "concat": _layout,
    "pad": _layout,
    "patch_energy": _patch_energy,
    "ood_flag": _ood_flag,
}


def _work(node: Node, io: str) -> _Work:
    _width(node.output.type.format)  # refuse a float graph before anything else, wiring included
    _in_bits(node)
    fn = WORK.get(node.op)
    if fn is None:
        raise EstimateError(f"node {node.name!r} ({node.op}): no hardware estimate for this op")
    return fn(node, io)


def _window(node: Node, io: str, taps: int) -> dict[str, Any]:
    """Window registers and warm-up of a sliding window in stream style (parallel: none); its line buffer
    depends on the folding (:func:`line_buffer`)."""
    if io != "stream":
        return {}
    x = node.inputs[0]
    channels, spatial = x.shape[0], x.shape[1:]
    kernel = _kernel(node)
    dilations = node.attrs.get("dilations") or [1] * len(kernel)
    kernel = [d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True)]  # the span of the window
    warmup = sum((k - 1) * math.prod(spatial[i + 1 :]) for i, k in enumerate(kernel))
    return {
        "window_regs": channels * _width(x.type.format) * math.prod(kernel),
        "windowed": True,
        "warmup": warmup,
    }


def _kernel(node: Node) -> list[int]:
    return list(node.attrs["kernel"]) if "kernel" in node.attrs else list(node.params["weight"].shape[2:])


@dataclass(frozen=True)
class LineBuffer:
    """A stream window layer's input storage, as fpgac_stream.h declares it: window_stream's line buffer,
    ``rows`` input rows (the window's span of rows, all of which the kernel stores: the row being filled
    is the window's last) of ``width`` pixels, or pointwise_stream's one pixel (``pointwise``: a 1 x 1
    conv, ``rows = width = 1``); of ``channels`` cells of ``bits``, each row split over its channels into
    ``banks`` memories (channel c in memory c % banks; a pixel split into C is registers), whether the
    windows are read where they lie (``in_place``: no window registers), and whether its memories are
    LUT RAM (``lutram``: the fitting's choice when block RAM is over budget and LUTs are not; else they
    are mapped as any memory, :func:`memory_cost`)."""

    rows: int
    width: int
    channels: int
    bits: int
    banks: int
    in_place: bool
    pointwise: bool = False
    lutram: bool = False

    @property
    def depth(self) -> int:
        """Words of each memory."""
        return math.ceil(self.width * self.channels / self.banks)

    def cost(self, board: Board) -> Resources:
        if self.depth == 1:
            return Resources(ff=self.rows * self.channels * self.bits)
        if self.lutram:
            memory = _lutram_cost(self.depth, self.bits)
        else:
            memory = memory_cost(self.depth, self.bits, board, allow_uram=False)
        return memory * (self.rows * self.banks)


def line_buffer(node: Node, in_lanes: int, cycles: int, reads: int, lutram: bool = False) -> LineBuffer:
    """The input storage of window layer ``node`` whose input arrives ``in_lanes`` channels a beat and
    whose pipeline takes ``cycles`` cycles an output pixel; ``reads``: how often its products read each
    window cell a pixel when they read it in place (:func:`pixel_reads`; 0: the layer gathers its window
    into registers first); ``lutram``: its memories in LUT RAM. The Vitis emitter declares what this
    returns.

    A memory serves one read a cycle. A row holds, per channel, the ``KW`` cells of a window row; in place
    each is read ``reads`` times a pixel, which one memory a channel must serve within ``cycles`` (a
    folded layer: otherwise the window is gathered, each cell read once). A row is split into the fewest
    memories whose share of those reads fits in ``cycles``: a divisor of C, at least ``in_lanes`` so that
    an input beat is stored a cycle, or C (a memory a channel) when even that does not fit, as for an
    unfolded layer, which reads its whole window every cycle. A 1 x 1 conv without padding that reads in
    place stores one pixel instead of a row (pointwise_stream), read in place whatever its folding."""
    x = node.inputs[0]
    channels, spatial = x.shape[0], x.shape[1:]
    kernel = _kernel(node)
    pointwise = reads > 0 and math.prod(kernel) == 1 and not any(node.attrs.get("pads") or [])
    dilations = node.attrs.get("dilations") or [1] * len(kernel)
    rows = (kernel[0] - 1) * dilations[0] + 1 if len(spatial) > 1 else 1
    in_place = pointwise or 0 < kernel[-1] * reads <= cycles
    per_channel = kernel[-1] * (reads if in_place else 1)  # reads of one channel's cells of a row a pixel
    fitting = (
        d for d in range(in_lanes, channels + 1) if not channels % d and channels // d * per_channel <= cycles
    )
    banks = next(fitting, channels)
    width = 1 if pointwise else spatial[-1]
    return LineBuffer(rows, width, channels, _width(x.type.format), banks, in_place, pointwise, lutram)


def pixel_reads(node: Node) -> int:
    """How often conv_pixel (a plain conv on chip) reads each cell of its window a pixel: once for each
    output of its group (:func:`line_buffer`)."""
    return node.output.shape[0] // node.attrs["groups"]


# ----------------------------------------------------------------------------------------------------------
# the estimate

MEMORIES = ("none", "const", "lutram", "bram", "uram", "offchip")


def rom_word(count: int, reuse: int) -> int:
    """Weights a reuse-``reuse`` layer reads a cycle: one ROM word of ``ceil(count / reuse)`` weights feeds
    all its multipliers (the Vitis emitter reshapes the weight array by this factor)."""
    return max(math.ceil(count / reuse), 1)


def rom_depth(count: int, reuse: int) -> int:
    """Words of a weight ROM: ``ceil(count / word)``, which can be less than ``reuse`` (10 weights at R = 6
    are 5 words of 2: the last cycle reads nothing new)."""
    return math.ceil(count / rom_word(count, reuse))


def weight_memory(count: int, bits: int, reuse: int, io: str, board: Board) -> tuple[str, Resources]:
    """Where ``count`` weights of ``bits`` bits live at reuse ``reuse``, and what that costs (on chip).

    ``const`` (R = 1: wired into the multipliers), ``lutram`` or ``bram`` (a ROM of :func:`rom_depth` words
    of :func:`rom_word` weights); see the module docstring. The Vitis emitter binds the ROM to the same
    storage, so the estimate and the HLS agree. Never URAM: UltraRAM cannot be initialised by the
    bitstream, so a URAM weight memory is preloaded from the weight image (:func:`uram_memory`), which the
    fitting chooses per layer.
    """
    if not count:
        return "none", Resources()
    if reuse == 1:
        return "const", Resources()
    depth, width = rom_depth(count, reuse), rom_word(count, reuse) * bits
    lutrom = Resources(lut=width * math.ceil(depth / LUTRAM_DEPTH))
    if io != "stream" or count * bits < BRAM_MIN_BITS:
        return "lutram", lutrom
    bram = memory_cost(depth, width, board, allow_uram=False)
    if count * bits >= BRAM_MIN_FILL * bram.bram18 * BRAM18_BITS:
        return "bram", bram
    return "lutram", lutrom


def uram_word(count: int, bits: int, reuse: int) -> int:
    """Weights a word of a URAM weight memory: the ROM's :func:`rom_word`, widened to fill the URAM's
    72-bit port (one 16-bit weight a word would leave 56 of its 72 bits empty: a deep memory would take
    4.5 times the URAMs); a word holding more weights than a cycle reads costs the datapath nothing."""
    return min(count, max(rom_word(count, reuse), URAM_SHAPE[1] // bits))


def uram_memory(count: int, bits: int, reuse: int) -> Resources:
    """UltraRAMs of a weight memory preloaded from the weight image (``fpgac::preload``): words of
    :func:`uram_word` weights in 4Kx72 blocks (port width decides when the word is wide, depth when it
    is deep)."""
    word = uram_word(count, bits, reuse)
    depth = math.ceil(count / word)
    return _uram_cost(depth, word * bits)


@dataclass(frozen=True)
class LayerModel:
    """One layer's datapath on a board in an io style, ready to be costed at any reuse factor.

    Computing the datapath reads the weights (non-zero counts); costing it is arithmetic, so the fitting
    (:mod:`fpgac.analysis.fit`) can try many reuse factors per layer cheaply.
    """

    node: Node
    io: str
    board: Board
    work: _Work
    level: int = 0  # the rank level whose latency it counts (fpgac/analysis/rank_schedule.py)

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def steps(self) -> int:
        return self.work.steps

    @property
    def folds(self) -> bool:
        """Whether a reuse factor changes this layer (it has multipliers, or is a softmax's dividers)."""
        return bool(self.work.mults) or self.node.op == "softmax"

    @property
    def max_reuse(self) -> int:
        """The reuse factor beyond which nothing is saved: one multiplier (one divider) left."""
        if not self.folds:
            return 1
        return max(self.work.mults if self.work.mults else self.work.elems, 1)

    @property
    def weight_bits(self) -> int:
        """Bits of the weights the layer stores (what moving it off chip frees)."""
        return self.work.weights * self.work.weight_bits

    def offchip_bits(self) -> int:
        """External-memory bits read per frame with the weights off chip (see the module docstring)."""
        work = self.work  # every weight, zeros included (elems x fan-in: the [OUT][T] block)
        return work.elems * work.fan_in * stored_bits(work.weight_bits) * work.sweeps

    @property
    def mode(self) -> str:
        """How the layer runs: ``parallel``, or in io stream ``window``, ``beat``, ``pixel``, ``permute``,
        ``buffered``, ``global`` (a global average pool's per-channel sums, fpgac_stream.h's
        global_avg_stream) or ``scan`` (another pool, fpgac_pool.h's pool_scan)."""
        if self.io != "stream":
            return "parallel"
        node = self.node
        if node.op == "avg_pool" and is_global_pool(node.inputs[0].shape, node.attrs):
            return "global"
        return "scan" if scans(node) else stream_mode(node)

    @property
    def preloads(self) -> bool:
        """Whether its weights can live in UltraRAM, preloaded from the weight image (io stream, a plain
        dense or conv weight, not sign bits: the kernels ``fpgac::preload`` feeds)."""
        node = self.node
        weight = node.params.get("weight")
        special = is_levelled(node) or is_xnor_layer(node)  # ranked kernels, sign bits
        plain = weight is not None and weight.encoding is None and not special
        return self.io == "stream" and node.op in ("dense", "conv") and plain and self.work.weights > 0

    def fills_uram(self, reuse: int) -> bool:
        """Whether its weights, preloaded at reuse ``reuse``, fill their URAMs at least ``BRAM_MIN_FILL``
        (as a ROM must fill its block RAM: a shallow, wide memory is port-bound and mostly empty)."""
        if not self.preloads:
            return False
        blocks = uram_memory(self.work.weights, self.work.weight_bits, reuse).uram
        return self.weight_bits >= BRAM_MIN_FILL * blocks * URAM_SHAPE[0] * URAM_SHAPE[1]

    def at(
        self,
        reuse: int,
        offchip: bool = False,
        bandwidth_ii: int = 0,
        groups: tuple[int, int] = (1, 1),
        uram: bool = False,
        uram_rows: bool = False,
        lutram_rows: bool = False,
    ) -> LayerEstimate:
        """The layer at reuse ``reuse``; ``offchip``: weights in external memory, read in at least
        ``bandwidth_ii`` cycles a frame; ``groups``: beats a pixel of its first input and of its output
        (channel-folded streams, :mod:`fpgac.analysis.lanes`); ``uram``: weights preloaded into URAM;
        ``uram_rows``: an off-chip conv's line buffer in URAM (:func:`direct_row_memories`); ``lutram_rows``:
        its line buffer (:meth:`line_buffer`; an off-chip conv's row memories) in LUT RAM."""
        if self.mode == "global":
            return self._global_pool(groups)
        if self.mode == "scan":
            return self._scanned_pool(groups)
        if self.mode == "permute":
            return _permute_estimate(self.node, groups[1])
        node, work, board = self.node, self.work, self.board
        offchip = offchip and bool(work.weights)
        direct = self.direct_lanes(reuse) if offchip else 0  # conv_offchip_stream: reads its line buffer
        lanes = direct or offchip_lanes(work.weight_bits, work.fan_in, reuse)
        # Off chip: ``lanes`` products a cycle, every output's fan-in (zeros too) in ceil(fan-in / lanes).
        r = work.elems * math.ceil(work.fan_in / lanes) if offchip else (reuse if self.folds else 1)
        row_conv = offchip and self.mode == "window"  # a row a weight read: conv_row_offchip or direct
        # L = C / G units, a beat of L channels a cycle: G a pixel (a concat's beats: G of its output)
        beat_units = self.mode in ("beat", "pixel")
        if beat_units:
            r = groups[1]
        mults = lanes if offchip else math.ceil(work.mults / r)
        adders = lanes if offchip else math.ceil(work.adds / r)
        dsp_each, lut_each = product_cost(work.a_bits, work.b_bits, board) if mults else (0, 0)
        window = self.line_buffer(r, groups[0], offchip, lutram_rows) if not direct else None
        res = Resources(
            dsp=mults * dsp_each,
            lut=mults * lut_each + adders * work.add_bits + math.ceil(work.logic / r),
            ff=(0 if dsp_each else mults * (work.a_bits + work.b_bits))
            + adders * work.add_bits
            + (0 if row_conv or (window and window.in_place) else work.window_regs),
        )
        if offchip:  # two tiles of one output's weights (ping-pong) ``lanes`` wide, refilled from memory
            depth = math.ceil(work.fan_in / lanes)
            tile = weight_memory(work.fan_in, work.weight_bits, depth, "stream", board)[1]
            tile = tile if depth > 1 else Resources(ff=lanes * work.weight_bits)  # one word: registers
            memory, storage = "offchip", tile + tile
        elif uram and self.preloads:
            memory, storage = "uram", uram_memory(work.weights, work.weight_bits, r)
        else:
            memory, storage = weight_memory(work.weights, work.weight_bits, r, self.io, board)
        if direct:
            memories = direct_row_memories(node, lanes, groups[1], board, uram_rows, lutram_rows)
            res = res + storage + memories.cost
        else:
            res = res + storage + (self._row_memories(lanes, groups[1]) if row_conv else Resources())
        lookups = math.ceil(work.elems / r) if work.tables else 0
        for entries, width in work.tables:
            copy = memory_cost(entries, width, board, allow_uram=False)
            res = res + copy * math.ceil(lookups / 2)
        rows, lb_depth, lb_count, lb_width = work.line_buffers  # a transpose's tensor
        row = memory_cost(lb_depth, lb_width, board, allow_uram=False)
        res = res + row * (rows * lb_count) + (window.cost(board) if window else Resources())
        ow = _width(node.output.type.format)
        out_regs = (
            node.output.type.size
            if self.io == "parallel"
            else math.ceil(work.elems / (r if beat_units else groups[1] if row_conv else 1))
        )
        if work.depth == 0:  # wiring: no registers, no control, no time
            return LayerEstimate(node.name, node.op, reuse, 0, Resources(), 0, 1, 0)
        res = res + Resources(lut=CONTROL_LUT, ff=CONTROL_FF + out_regs * ow)
        depth = work.depth + 1  # the cast into the output format
        if mults:
            depth += DSP_LATENCY if dsp_each else LUT_MULT_LATENCY
        if work.adds:
            depth += math.ceil(math.log2(work.fan_in + 1))  # tree levels plus the R-cycle accumulation
        if work.tables or rows or window or direct:
            depth += BRAM_LATENCY
        ii = base = work.steps * step_cycles(node, r, self.level)
        if direct:  # each row's beats leave after it; its input is stored word by word in between
            ii += work.steps * groups[1] + self._input_beats(groups[0]) * math.ceil(
                self._input_lanes(groups[0]) / lanes
            )
        elif row_conv:  # each row copies its windows in and writes its beats out; input rows, a beat a
            # cycle, are stored in between (window_stream's fill_row): nothing overlaps in the one loop
            ii += work.steps * (math.ceil(self._window_cells() / lanes) + groups[1]) + self._input_beats(
                groups[0]
            )
        elif self.mode == "window":  # a pixel's output beats leave one a cycle
            ii = max(ii, work.steps * groups[1])
        if self.mode in ("window", "buffered") and groups[0] > 1:  # its input's beats arrive one a cycle
            ii = max(ii, self._input_beats(groups[0]))
        bound = (
            "serial" if offchip else ("reuse" if r > 1 or ii > base else "steps")
        )  # serial: a word a cycle
        if offchip and bandwidth_ii >= ii:
            ii, bound = bandwidth_ii, "bandwidth"
        return LayerEstimate(
            node.name,
            node.op,
            r if offchip else reuse,
            mults,
            res,
            ii + depth,
            ii,
            depth + work.warmup,
            memory,
            bound,
            self.offchip_bits() if offchip else 0,
        )

    def line_buffer(
        self, r: int, g_in: int, offchip: bool = False, lutram: bool = False
    ) -> LineBuffer | None:
        """Its line buffer at ``r`` cycles a pixel and ``g_in`` input beats a pixel. Only conv_pixel (a plain
        conv on chip, its weights in ROM or preloaded into URAM) reads its windows in place and splits
        its line buffer by its ``r`` cycles a pixel; the other window layers' (XNOR, compressed,
        ranked and off-chip convs) keep a memory a channel; a ranked conv's own kernel
        (fpgac_levels.h's conv_stream_ranked) keeps it out of LUT RAM. None: not a window layer in io
        stream (a pool scans its input instead: :mod:`fpgac.analysis.pool_scan`)."""
        node = self.node
        if not self.work.windowed or self.mode != "window":
            return None
        if is_levelled(node):
            return line_buffer(node, self._input_lanes(g_in), 1, 0)
        weight = node.params.get("weight")
        if weight is not None and weight.encoding is None and not offchip and not is_xnor_layer(node):
            return line_buffer(node, self._input_lanes(g_in), r, pixel_reads(node), lutram)
        return line_buffer(node, self._input_lanes(g_in), 1, 0, lutram)

    def groups(self, folded: Mapping[str, int]) -> tuple[int, int]:
        """(G of its first input, G of its output) from the folded values' beats a pixel."""
        node = self.node
        first = folded.get(node.inputs[0].name, 1) if node.inputs else 1
        return first, folded.get(node.output.name, 1)

    def _window_cells(self) -> int:
        """Cells of one conv window: C x the kernel's taps."""
        return self.node.inputs[0].shape[0] * math.prod(self.node.params["weight"].shape[2:])

    def direct_lanes(self, reuse: int) -> int:
        """Its lanes off chip as a conv reading its line buffer (:func:`direct_lanes`; 0: not such a conv)."""
        if self.node.op != "conv" or self.mode != "window":
            return 0
        shape = self.node.params["weight"].shape
        return direct_lanes(self.work.weight_bits, shape[1], math.prod(shape[2:]), reuse)

    @cached_property  # the fitting asks at every II it tries
    def wide_row_reuse(self) -> int:
        """Its largest reuse factor off chip whose line buffer word (its lanes x the input's bits) still
        holds as many lanes as a URAM word's 72 bits take (or all it can have); else its reuse at one
        product a cycle. At one lane a word, a conv's line buffer (span x W x C words, 16 bits) is deep and
        narrow: in URAM it leaves 56 of 72 bits a word empty, so the fitting widens it when block RAM
        is over (DenseNet-121's 120 convs on zcu104)."""
        most = offchip_max_reuse(self.work.weight_bits, self.work.fan_in)
        widest = self.direct_lanes(1)
        if not widest:
            return most
        want = min(widest, max(1, URAM_SHAPE[1] // _width(self.node.inputs[0].type.format)))
        return max(r for r in range(1, most + 1) if self.direct_lanes(r) >= want)

    def _row_memories(self, lanes: int, g_out: int) -> Resources:
        """conv_row_offchip's memories: a row's windows (OW x C*taps cells, reshaped ``lanes`` wide) and its
        outputs (:func:`_output_row`)."""
        x, board = self.node.inputs[0], self.board
        cells = self.node.output.shape[-1] * self._window_cells()
        windows = _buffer_cost(math.ceil(cells / lanes), lanes * _width(x.type.format), board)
        return windows + _output_row(self.node, g_out, board)

    def _input_lanes(self, groups: int) -> int:
        return pixels_channels(self.node.inputs[0])[1] // groups

    def _input_beats(self, groups: int) -> int:
        return pixels_channels(self.node.inputs[0])[0] * groups

    def _global_pool(self, groups: tuple[int, int]) -> LayerEstimate:
        """fpgac_stream.h's global_avg_stream: L_in adders into an array of C sums (registers when
        unfolded, else L_in memories G_in deep: the kernel's cyclic partition), then L_out products by
        the constant reciprocal and casts, one output beat a cycle."""
        node, work, board = self.node, self.work, self.board
        g_in, g_out = groups
        channels = work.elems
        adders, mults = math.ceil(channels / g_in), math.ceil(channels / g_out)
        dsp_each, lut_each = product_cost(work.a_bits, work.b_bits, board)
        ow = _width(node.output.type.format)
        sums = (
            Resources(ff=channels * work.add_bits)
            if g_in == 1
            else memory_cost(g_in, work.add_bits, board, False) * adders
        )
        res = sums + Resources(
            dsp=mults * dsp_each,
            lut=mults * lut_each + adders * work.add_bits + mults * ow + CONTROL_LUT,
            ff=(0 if dsp_each else mults * (work.a_bits + work.b_bits))
            + adders * work.add_bits
            + mults * ow
            + CONTROL_FF,
        )
        ii = self._input_beats(g_in) + g_out
        depth = 1 + (DSP_LATENCY if dsp_each else LUT_MULT_LATENCY) + (BRAM_LATENCY if g_in > 1 else 0) + 1
        bound = "reuse" if g_in > 1 else "steps"
        return LayerEstimate(
            node.name, node.op, 1, mults, res, ii + depth, ii, depth + work.warmup, bound=bound
        )

    def _scanned_pool(self, groups: tuple[int, int]) -> LayerEstimate:
        """fpgac_pool.h's pool_scan at ``L = gcd(L_in, L_out)`` lanes (:mod:`fpgac.analysis.pool_scan`):
        per lane a reduction of the row's KW taps and two updates per row memory (the output row ending
        at this input row and the one beginning there share it; comparators and selects, or adders in
        acc_t), ``span_w - 1`` delay lines (``C / L`` deep, ``L`` input cells wide:
        registers at ``C / L = 1``) and ``slots`` row memories (``OW x C / L`` deep, ``L`` partials wide,
        in LUT RAM as the kernel binds them);
        an average pool also multiplies each lane by its window's reciprocal (one table read a cycle).
        An input and an output beat register; ``scan_h x scan_w x C / L`` cycles."""
        node, work, board = self.node, self.work, self.board
        scan = PoolScan.of(node)
        lanes = math.gcd(scan.channels // groups[0], scan.channels // groups[1])
        depth_g = scan.channels // lanes
        xw, ow = _width(node.inputs[0].type.format), _width(node.output.type.format)
        average = node.op == "avg_pool"
        part = work.add_bits if average else xw
        ops = lanes * (scan.kernel[1] + 2 * scan.slots)  # a slot's two rows: the ending one, the next
        res = Resources(
            lut=ops * part * (1 if average else 2) + lanes * ow + CONTROL_LUT,
            ff=ops * part
            + (scan.channels // groups[0]) * xw
            + (scan.channels // groups[1]) * ow
            + CONTROL_FF,
        )
        delay = Resources(ff=lanes * xw) if depth_g == 1 else _buffer_cost(depth_g, lanes * xw, board)
        res = (
            res
            + delay * (scan.spans[1] - 1)
            + Resources(lut=lanes * part * math.ceil(scan.out[1] * depth_g / LUTRAM_DEPTH)) * scan.slots
        )
        depth = 1 + BRAM_LATENCY + math.ceil(math.log2(scan.kernel[1] + 2 * scan.slots)) + 1
        mults = 0
        if average:
            mults = lanes
            dsp_each, lut_each = product_cost(work.a_bits, work.b_bits, board)
            res = res + Resources(dsp=mults * dsp_each, lut=mults * lut_each,
                                  ff=0 if dsp_each else mults * (work.a_bits + work.b_bits))  # fmt: skip
            for entries, width in work.tables:
                res = res + memory_cost(entries, width, board, allow_uram=False)
            depth += DSP_LATENCY if dsp_each else LUT_MULT_LATENCY
        ii = scan.cycles(lanes)
        bound = "reuse" if lanes < scan.channels else "steps"
        return LayerEstimate(
            node.name, node.op, 1, mults, res, ii + depth, ii, depth + work.warmup, bound=bound
        )


def _permute_estimate(node: Node, groups: int) -> LayerEstimate:
    """fpgac_stream.h's permute_stream (a channel shuffle): a pixel's C input channels in registers, then
    its G = C / L output beats, each lane choosing its channel through a mux (C-to-1 when folded: the
    channel map is a ROM read by the beat's index; wiring when whole), read and written one beat a
    cycle in two loops a pixel (two more cycles a pixel to enter them)."""
    pixels, channels = pixels_channels(node.output)
    in_bits, out_bits = _width(node.inputs[0].type.format), _width(node.output.type.format)
    lanes = channels // groups
    mux = lanes * in_bits * math.ceil((channels - 1) / 3) if groups > 1 else 0
    res = Resources(
        lut=mux + lanes * out_bits + CONTROL_LUT,
        ff=channels * in_bits + lanes * out_bits + CONTROL_FF,
    )
    per_pixel = 2 * groups + 2
    ii = pixels * per_pixel
    return LayerEstimate(node.name, node.op, 1, 0, res, ii + 2, ii, per_pixel + 2, bound="steps")


def _buffer_cost(depth: int, width: int, board: Board) -> Resources:
    """A working memory (no storage pragma: HLS maps it) as weight ROMs are mapped: block RAM when it
    fills its blocks at least ``BRAM_MIN_FILL``, else LUT RAM (a shallow, wide memory is port-bound)."""
    block = memory_cost(depth, width, board, allow_uram=False)
    if block.bram18 and depth * width >= BRAM_MIN_FILL * block.bram18 * BRAM18_BITS:
        return block
    return Resources(lut=width * math.ceil(depth / LUTRAM_DEPTH))


def _output_row(node: Node, g_out: int, board: Board) -> Resources:
    """An off-chip conv's output row (OW x OC, partitioned into the L_out banks one output beat reads), as
    both row kernels keep it out of URAM."""
    out = node.output
    cols, channels = out.shape[-1], out.shape[0]
    banks = channels // g_out
    return _buffer_cost(math.ceil(cols * channels / banks), _width(out.type.format), board) * banks


@dataclass(frozen=True)
class RowMemories:
    """conv_offchip_stream's working memories, as the Vitis emitter declares them: its line buffer (the
    window's span of input rows, W x C / L words of the conv's L lanes) and its output row (OW x OC
    elements, ``out_words`` a word: the L_out banks one output beat reads, or URAM words); ``lutram``: both
    in LUT RAM (the fitting's choice)."""

    line_buffer_uram: bool
    out_words: int
    out_uram: bool
    cost: Resources
    lutram: bool = False


def direct_row_memories(
    node: Node, lanes: int, g_out: int, board: Board, uram_rows: bool = False, lutram_rows: bool = False
) -> RowMemories:
    """Where conv_offchip_stream's memories live (:func:`row_memory`); ``lanes``: its lanes, ``g_out``: its
    output's beats a pixel; ``uram_rows``: its line buffer in URAM whatever its share (the fitting's
    choice when block RAM is over budget and URAM is not); ``lutram_rows``: both memories in LUT RAM (the
    fitting's choice when block RAM is over budget and LUTs are not). The output row in URAM packs as many
    whole elements into each 72-bit column of a word as fit (4 of 16 bits), since one element a cycle is
    written and one beat read."""
    x, out = node.inputs[0], node.output
    kernel = node.params["weight"].shape[2:]
    span = (node.attrs.get("dilations") or [1])[0] * (kernel[0] - 1) + 1 if len(kernel) > 1 else 1
    words = span * x.shape[-1] * math.ceil(x.shape[0] / lanes)
    rows_uram, rows = row_memory(words, lanes * _width(x.type.format), board)
    if uram_rows and board.uram:
        rows_uram, rows = True, _uram_cost(words, lanes * _width(x.type.format))
    width, cells, out_lanes = _width(out.type.format), out.shape[-1] * out.shape[0], out.shape[0] // g_out
    if lutram_rows:
        banks_lut = _lutram_cost(math.ceil(cells / out_lanes), width) * out_lanes
        return RowMemories(
            False, out_lanes, False, _lutram_cost(words, lanes * _width(x.type.format)) + banks_lut, True
        )
    banks = _output_row(node, g_out, board)
    packed = out_lanes * max(1, URAM_SHAPE[1] // width)
    out_uram, in_uram = row_memory(math.ceil(cells / packed), packed * width, board, banks)
    if not out_uram:
        return RowMemories(rows_uram, out_lanes, False, rows + banks)
    return RowMemories(rows_uram, packed, True, rows + in_uram)


def row_memory(
    depth: int, width: int, board: Board, block: Resources | None = None
) -> tuple[bool, Resources]:
    """(in URAM, cost) of an off-chip conv's working memory of ``depth`` x ``width`` bits, ``block`` its
    cost out of URAM (default: mapped as working memories are, :func:`_buffer_cost`). URAM when the board
    has it and the memory takes a smaller share of the board's URAM than of its block RAM that way: such
    designs leave URAM idle, and a URAM holds 16 BRAM18s but a board has far fewer of them."""
    block = _buffer_cost(depth, width, board) if block is None else block
    uram = _uram_cost(depth, width)
    if board.uram and block.bram18 and uram.uram * board.bram18 < block.bram18 * board.uram:
        return True, uram
    return False, block


def _lutram_cost(depth: int, width: int) -> Resources:
    """LUTs of a ``depth`` x ``width``-bit memory in LUT RAM: a LUT6 holds 64 x 1."""
    return Resources(lut=width * math.ceil(depth / LUTRAM_DEPTH))


def _uram_cost(depth: int, width: int) -> Resources:
    """UltraRAMs of a ``depth`` x ``width``-bit memory: its one aspect ratio, 4Kx72."""
    return Resources(uram=math.ceil(depth / URAM_SHAPE[0]) * math.ceil(width / URAM_SHAPE[1]))


def fifo_cost(depth: int, width: int, board: Board) -> Resources:
    """A stream FIFO of ``depth`` beats of ``width`` bits: shift registers (SRL32, ``width`` LUTs per 32
    beats) when shallow or small, else block RAM (:mod:`fpgac.analysis.fifos`)."""
    if depth <= SRL_DEPTH or depth * width < BRAM_MIN_BITS:
        return Resources(lut=width * math.ceil(depth / SRL_DEPTH))
    return memory_cost(depth, width, board, allow_uram=False)


def fifo_resources(
    fifos: Sequence[Fifo], groups: Mapping[str, int], board: Board, spills: frozenset[str] = frozenset()
) -> dict[str, Resources]:
    """What the stream FIFOs cost at the folding ``groups``, by the layer each is charged to; the FIFOs
    named in ``spills`` live in external memory (:func:`spill_cost`; the spills' m_axi buffers are charged
    to the first one's writer)."""
    costs: dict[str, Resources] = {}
    shared = spill_bundle_cost(board) if spills else Resources()
    written: set[str] = set()  # spilled values whose FIFO into the spill is charged
    for fifo in fifos:
        g = groups.get(fifo.value.name, 1)
        if fifo.key in spills:
            into = (
                fifo_cost(SPILL_BURST, fifo.width(g), board)
                if fifo.value.name not in written
                else Resources()
            )
            written.add(fifo.value.name)
            cost, shared = fifo_cost(SPILL_BURST, fifo.width(g), board) + into + shared, Resources()
        else:
            cost = fifo_cost(fifo.depth(g), fifo.width(g), board)
        costs[fifo.writer] = costs.get(fifo.writer, Resources()) + cost
    return costs


def spill_cost(fifo: Fifo, groups: int, board: Board) -> Resources:
    """A spilled FIFO on chip, alone (the most it costs): the burst-deep FIFOs into and out of its
    external-memory region."""
    return fifo_cost(SPILL_BURST, fifo.width(groups), board) * 2


def spill_bundle_cost(board: Board) -> Resources:
    """The read and write buffers of the m_axi bundle every spill shares (``num_*_outstanding=2`` bursts
    of :data:`SPILL_BURST` words each)."""
    return memory_cost(2 * SPILL_BURST, OFFCHIP_WORD_BITS, board, allow_uram=False) * 2


def spill_bits(fifos: Sequence[Fifo], spills: frozenset[str]) -> int:
    """External-memory bits a frame the spilled FIFOs move: each spilled value written once and read back
    once per spilled use, in the C integer words of its format (as the weight image stores weights)."""
    spilled = [f for f in fifos if f.key in spills]
    values = {f.value.name: f for f in spilled}
    return sum(_spilled_bits(f) for f in spilled) + sum(_spilled_bits(f) for f in values.values())


def spill_ii(fifos: Sequence[Fifo], spills: frozenset[str]) -> int:
    """The most cycles a frame one spill process (a value's writer, a use's reader) takes at a memory word
    a cycle (0 without spills)."""
    spilled = (f for f in fifos if f.key in spills)
    return max((math.ceil(_spilled_bits(f) / OFFCHIP_WORD_BITS) for f in spilled), default=0)


def _spilled_bits(fifo: Fifo) -> int:
    """Bits of a spilled value a frame, in stored words."""
    fmt = fifo.value.type.format
    assert isinstance(fmt, Fixed)  # the estimate refuses float graphs first
    return fifo.value.type.size * stored_bits(fmt.width)


def layer_models(graph: Graph, io: str, board: Board) -> tuple[LayerModel, ...]:
    """Every node's :class:`LayerModel` (refuses a float graph or an unknown io style)."""
    check_io(io)
    for value in graph.inputs:
        _width(value.type.format)
    return tuple(LayerModel(node, io, board, _work(node, io)) for node in graph.nodes)


def bandwidth_ii(
    models: Sequence[LayerModel], offchip: frozenset[str], board: Board, spilled_bits: int = 0
) -> int:
    """Cycles a frame's off-chip traffic (weights, and ``spilled_bits`` of spilled FIFOs) takes at the
    board's sustained bandwidth (0 if none)."""
    bits = sum(m.offchip_bits() for m in models if m.name in offchip) + spilled_bits
    if not bits:
        return 0
    if board.mem_gb_s <= 0:
        raise EstimateError(f"board {board.name} has no external-memory bandwidth: all must stay on chip")
    return math.ceil(bits / board.mem_bits_per_cycle)


def assemble(
    models: Sequence[LayerModel],
    factors: Mapping[str, int],
    offchip: frozenset[str] = frozenset(),
    shown_reuse: int | dict[str, int] | None = None,
    groups: Mapping[str, int] | None = None,
    uram: frozenset[str] = frozenset(),
    uram_rows: frozenset[str] = frozenset(),
    fifos: Sequence[Fifo] = (),
    spills: frozenset[str] = frozenset(),
    lutram_rows: frozenset[str] = frozenset(),
) -> Estimate:
    """The whole design from its layer models at the given reuse factors and off-chip layers; ``groups``:
    the beats a pixel of the channel-folded values, by value name (:mod:`fpgac.analysis.lanes`); ``uram``:
    the layers whose weights are preloaded into UltraRAM; ``uram_rows``: the off-chip convs whose line
    buffers the fitting put in URAM; ``fifos``: a stream design's FIFOs
    (:func:`~fpgac.analysis.fifos.stream_fifos`), charged to their writers; ``spills``: the keys of those
    in external memory; ``lutram_rows``: the window layers whose line buffers the fitting put in LUT RAM."""
    if not models:
        raise EstimateError("estimate of an empty graph")
    board, io = models[0].board, models[0].io
    spilled = spill_bits(fifos, spills)
    bw = bandwidth_ii(models, offchip, board, spilled)
    layers = tuple(
        m.at(
            factors[m.name],
            m.name in offchip,
            bw,
            m.groups(groups or {}),
            m.name in uram,
            m.name in uram_rows,
            m.name in lutram_rows,
        )
        for m in models
    )
    if fifos:
        costs = fifo_resources(fifos, groups or {}, board, spills)
        layers = tuple(replace(e, resources=e.resources + costs.get(e.name, Resources())) for e in layers)
    ii = max((layer.ii for layer in layers), default=1)
    if spills:  # the spills' traffic and their own pace bound the frame like any stage's
        ii = max(ii, bw, spill_ii(fifos, spills))
    if io == "parallel":
        latency = sum(layer.latency_cycles for layer in layers)
    else:
        latency = ii + sum(layer.fill_cycles for layer in layers)
    shown = dict(factors) if shown_reuse is None else shown_reuse
    stored = frozenset(layer.name for layer in layers if layer.memory == "offchip")
    return Estimate(io, shown, board, layers, latency, ii, stored, spills, spilled)


def estimate(
    graph: Graph,
    board: Board,
    io: str,
    reuse: int | Mapping[str, int] = 1,
    offchip: frozenset[str] = frozenset(),
    uram: frozenset[str] = frozenset(),
    spills: frozenset[str] = frozenset(),
) -> Estimate:
    """Estimate resources and latency of ``graph`` built in ``io`` style with the given reuse factors.

    Args:
        graph: a quantized graph (every value and param fixed point).
        board: the target, for its DSP kind, URAM, memory bandwidth and budgets.
        io: ``"parallel"`` or ``"stream"``.
        reuse: one factor for every layer, or a mapping from layer name to factor (others get 1).
        offchip: names of the layers whose weights live in external memory.
        uram: names of the layers whose weights are preloaded into UltraRAM.
        spills: keys of the fork FIFOs kept in external memory (io stream).

    Raises:
        EstimateError: an unknown io style or a float graph; ReuseError: a bad reuse factor.
    """
    check_io(io)
    factors = reuse_factors(graph, reuse)
    models = layer_models(graph, io, board)
    shown = dict(reuse) if isinstance(reuse, Mapping) else int(reuse)
    fifos = stream_fifos(graph) if io == "stream" else ()
    return assemble(models, factors, offchip, shown, uram=uram, fifos=fifos, spills=spills)
