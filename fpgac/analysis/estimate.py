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
  registers of a line buffer, and ``CONTROL_FF`` per layer.
* **Weights.** At R = 1 each weight is a constant wired into its multiplier, in both styles: no
  storage (a memory read every cycle by every multiplier would be registers anyway). At R > 1,
  ``parallel`` keeps them in the fabric, each multiplier reading its R weights from a LUT ROM;
  ``stream`` reshapes each layer's weights into a memory ``R`` words deep and ``ceil(M/R) * b`` bits
  wide (one word feeds all multipliers for one cycle), in block RAM once it holds ``BRAM_MIN_BITS``
  or more. Block RAM counts come from the 18-Kbit block's aspect ratios (UG573: 512x36, 1Kx18, 2Kx9,
  4Kx4, 8Kx2, 16Kx1), the best of ``ceil(depth/d) * ceil(width/w)``: capacity and port width both
  count, so a shallow, wide memory (small R) needs many blocks, which is why large models need a large
  R. A memory of at least one URAM (4Kx72, 288 Kbit) goes to URAM on boards that have it when that
  takes no more capacity than block RAM (``16 * urams <= bram18s``): deep arrays.
* **Tables** (sigmoid, tanh, ELU, softmax's exponential) are ROMs, one copy per two lookups per cycle
  (dual-port). **Line buffers** of 2-d (and higher) windows in ``stream`` style hold ``k - 1`` input
  rows of channel vectors, each row its own memory because all are read every cycle. A transpose in
  ``stream`` style buffers the whole tensor.
* **Latency** of a layer is ``ii`` plus its pipeline depth: a multiplier (``DSP_LATENCY`` or
  ``LUT_MULT_LATENCY``), ``ceil(log2(fan-in + 1))`` adder levels (a tree over ``fan-in / R`` products
  per cycle, then an accumulation over R cycles: counted at the R = 1 depth, so latency never falls as
  R grows), a memory read and a cast.
  ``parallel``: the layers run one after the other, so the total latency is the sum and the total ii
  is the slowest layer's. ``stream``: layers overlap in a dataflow region, so the total ii is still the
  slowest stage's, and the total latency is that stage's ii plus every layer's fill time (its depth,
  plus the pixels a line buffer waits for before its first window).
* **Fits** when every total is within the board's budget. The layers named in the warning are those
  with the largest share of the resources over budget.
* **Default io style** (:func:`default_io`): ``parallel`` when no layer unrolls more than
  ``PARALLEL_MAX_MULTS`` (4096) multiplications or elements per step (beyond that HLS stops unrolling,
  hls4ml issue #1013) and the ``parallel`` estimate at R = 1 fits the board: weights as constants in
  the fabric, every multiplier within the DSP (or LUT) budget, every activation in registers. Else
  ``stream``, whose block-RAM weights and pixel-serial layers scale with R.

Not modelled: the top-level AXI interfaces and stream FIFOs (sized by the backend), and routing
congestion, which in practice makes designs above ~80 % of LUTs hard to close at the board's clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpgac.boards import Board
from fpgac.errors import FpgacError
from fpgac.ir.graph import Graph, Node
from fpgac.ir.types import Fixed

IO_STYLES = ("parallel", "stream")
RESOURCES = ("dsp", "bram18", "uram", "lut", "ff")

LUT_MULT_MAX_BITS = 6  # a product with an operand this narrow is cheaper in LUTs than in a DSP
BRAM_MIN_BITS = 4096  # smaller memories are LUT ROM/RAM: a block would be mostly empty
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))  # UG573, SDP
URAM_SHAPE = (4096, 72)  # UltraRAM: 288 Kbit, one aspect ratio
URAM_PER_BRAM18 = 16  # capacity ratio: 294,912 / 18,432
LUTRAM_DEPTH = 64  # a LUT6 stores 64x1
CONTROL_LUT, CONTROL_FF = 100, 100  # loop counters, handshakes and FSM of one layer
DSP_LATENCY, LUT_MULT_LATENCY, BRAM_LATENCY = 3, 2, 2
PARALLEL_MAX_MULTS = 4096  # HLS refuses to unroll more (hls4ml issue #1013, "XFORM 203-504")
LARGEST_COUNT = 3


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

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in RESOURCES}


@dataclass(frozen=True)
class LayerEstimate:
    """One layer: its multipliers and resources, its latency and initiation interval in cycles.

    ``fill_cycles`` is how long the layer delays a dataflow pipeline (depth plus line-buffer wait).
    """

    name: str
    op: str
    reuse: int
    multipliers: int
    resources: Resources
    latency_cycles: int
    ii: int
    fill_cycles: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "reuse": self.reuse,
            "multipliers": self.multipliers,
            **self.resources.to_json(),
            "latency_cycles": self.latency_cycles,
            "ii": self.ii,
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

    def to_json(self) -> dict[str, Any]:
        util = {k: (None if math.isinf(v) else v) for k, v in self.utilization.items()}
        return {
            "io": self.io,
            "reuse": self.reuse,
            "layers": [layer.to_json() for layer in self.layers],
            "total": {
                "multipliers": self.multipliers,
                **self.total.to_json(),
                "latency_cycles": self.latency_cycles,
                "ii": self.ii,
                "latency_us": round(self.latency_us, 3),
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


def memory_cost(depth: int, width: int, board: Board, allow_uram: bool = True) -> Resources:
    """Cheapest storage of a ``depth`` x ``width``-bit memory: LUTs when small, else BRAM18 or URAM."""
    if depth <= 0 or width <= 0:
        return Resources()
    if depth * width < BRAM_MIN_BITS:
        return Resources(lut=width * math.ceil(depth / LUTRAM_DEPTH))
    bram = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM18_SHAPES)
    if allow_uram and board.uram and depth * width >= URAM_SHAPE[0] * URAM_SHAPE[1]:
        uram = math.ceil(depth / URAM_SHAPE[0]) * math.ceil(width / URAM_SHAPE[1])
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
    weights: int = 0  # non-zero weights stored (stream: in memory)
    tables: tuple[tuple[int, int], ...] = ()  # (entries, width) ROMs read once per element
    window_regs: int = 0  # FF bits of a window register
    line_buffers: tuple[int, int, int] = (0, 0, 0)  # (rows, depth, width bits)
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
    """Dense and conv: one multiply-accumulate per non-zero weight."""
    out = node.output
    weight = node.params["weight"]
    nnz = int(np.count_nonzero(weight.data))
    fan_in = math.prod(weight.shape[1:])
    if node.op == "dense":
        steps, elems = math.prod(out.shape[:-1]), out.shape[-1]
    else:
        steps, elems = _spatial(out.shape), out.shape[0]
    acc = _width(node.attrs["acc"])
    return _Work(
        steps=steps,
        elems=elems,
        mults=nnz,
        a_bits=_in_bits(node),
        b_bits=_signed_width(weight.format),
        adds=nnz,
        add_bits=acc,
        logic=elems * _width(out.type.format),
        fan_in=fan_in,
        weights=nnz,
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
        return _Work(steps=steps, elems=elems, line_buffers=(1, node.output.type.size // elems, elems * ow))
    return _Work(steps=steps, elems=elems, logic=elems * ow)


def _select(node: Node, io: str) -> _Work:
    """ReLU (one select) and clip (two)."""
    steps, elems = _per_step(node, io)
    ow = _width(node.output.type.format)
    return _Work(steps=steps, elems=elems, logic=elems * ow * (2 if node.op == "clip" else 1))


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
}


def _work(node: Node, io: str) -> _Work:
    _width(node.output.type.format)  # refuse a float graph before anything else, wiring included
    _in_bits(node)
    fn = WORK.get(node.op)
    if fn is None:
        raise EstimateError(f"node {node.name!r} ({node.op}): no hardware estimate for this op")
    return fn(node, io)


def _window(node: Node, io: str, taps: int) -> dict[str, Any]:
    """Line buffer and window registers of a sliding window in stream style (parallel: none)."""
    if io != "stream":
        return {}
    x = node.inputs[0]
    channels, spatial = x.shape[0], x.shape[1:]
    kernel = node.attrs["kernel"] if "kernel" in node.attrs else list(node.params["weight"].shape[2:])
    dilations = node.attrs.get("dilations", [1] * len(kernel))
    kernel = [d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True)]  # the span of the window
    bits = channels * _width(x.type.format)
    rows = (kernel[0] - 1) if len(spatial) > 1 else 0
    warmup = sum((k - 1) * math.prod(spatial[i + 1 :]) for i, k in enumerate(kernel))
    return {
        "window_regs": bits * math.prod(kernel),
        "line_buffers": (rows, math.prod(spatial[1:]), bits),
        "warmup": warmup,
    }


# ----------------------------------------------------------------------------------------------------------
# the estimate


def _layer(node: Node, io: str, reuse: int, board: Board) -> LayerEstimate:
    work = _work(node, io)
    r = reuse if work.mults or node.op == "softmax" else 1  # softmax shares its dividers
    mults = math.ceil(work.mults / r)
    adders = math.ceil(work.adds / r)
    dsp_each, lut_each = product_cost(work.a_bits, work.b_bits, board) if mults else (0, 0)
    res = Resources(
        dsp=mults * dsp_each,
        lut=mults * lut_each + adders * work.add_bits + math.ceil(work.logic / r),
        ff=(0 if dsp_each else mults * (work.a_bits + work.b_bits))
        + adders * work.add_bits
        + work.window_regs,
    )
    res = res + _weight_storage(work, mults, r, io, board)
    lookups = math.ceil(work.elems / r) if work.tables else 0
    for entries, width in work.tables:
        copy = memory_cost(entries, width, board, allow_uram=False)
        res = res + Resources(*(getattr(copy, k) * math.ceil(lookups / 2) for k in RESOURCES))
    rows, lb_depth, lb_width = work.line_buffers
    for _ in range(rows):
        res = res + memory_cost(lb_depth, lb_width, board, allow_uram=False)
    ow = _width(node.output.type.format)
    out_regs = node.output.type.size if io == "parallel" else work.elems
    if work.depth == 0:  # wiring: no registers, no control, no time
        return LayerEstimate(node.name, node.op, reuse, 0, Resources(), 0, 1, 0)
    res = res + Resources(lut=CONTROL_LUT, ff=CONTROL_FF + out_regs * ow)
    depth = work.depth + 1  # the cast into the output format
    if mults:
        depth += DSP_LATENCY if dsp_each else LUT_MULT_LATENCY
    if work.adds:
        depth += math.ceil(math.log2(work.fan_in + 1))  # tree levels plus the R-cycle accumulation
    if work.tables or rows:
        depth += BRAM_LATENCY
    ii = work.steps * r
    return LayerEstimate(node.name, node.op, reuse, mults, res, ii + depth, ii, depth + work.warmup)


def _weight_storage(work: _Work, mults: int, r: int, io: str, board: Board) -> Resources:
    """Weights wired as constants (R = 1), in LUT ROMs (parallel, small), or in BRAM/URAM (stream)."""
    if not work.weights or r == 1:
        return Resources()
    width = mults * work.b_bits
    if io == "stream" and work.weights * work.b_bits >= BRAM_MIN_BITS:
        return memory_cost(r, width, board)
    return Resources(lut=width * math.ceil(r / LUTRAM_DEPTH))


def estimate(graph: Graph, board: Board, io: str, reuse: int | Mapping[str, int] = 1) -> Estimate:
    """Estimate resources and latency of ``graph`` built in ``io`` style with the given reuse factors.

    Args:
        graph: a quantized graph (every value and param fixed point).
        board: the target, for its DSP kind, URAM and budgets.
        io: ``"parallel"`` or ``"stream"``.
        reuse: one factor for every layer, or a mapping from layer name to factor (others get 1).

    Raises:
        EstimateError: an unknown io style or a float graph; ReuseError: a bad reuse factor.
    """
    check_io(io)
    factors = reuse_factors(graph, reuse)
    for value in graph.inputs:
        _width(value.type.format)
    layers = tuple(_layer(node, io, factors[node.name], board) for node in graph.nodes)
    ii = max((layer.ii for layer in layers), default=1)
    if io == "parallel":
        latency = sum(layer.latency_cycles for layer in layers)
    else:
        latency = ii + sum(layer.fill_cycles for layer in layers)
    shown = dict(reuse) if isinstance(reuse, Mapping) else int(reuse)
    return Estimate(io, shown, board, layers, latency, ii)


def default_io(graph: Graph, board: Board) -> str:
    """``parallel`` for models small enough to unroll, ``stream`` otherwise.

    Parallel style needs, at reuse 1: no layer with more than ``PARALLEL_MAX_MULTS`` multiplications or
    output elements per step (HLS stops unrolling beyond that, hls4ml issue #1013), and the whole
    design, with its weights as constants in the fabric, its multipliers in DSPs or LUTs and every
    activation in registers, within the board's budget. That is the regime hls4ml recommends
    io_parallel for (MLPs and small CNNs); anything larger streams pixels between layers and keeps
    weights in block RAM, where reuse factors can bring it into budget.
    """
    for node in graph.nodes:
        work = _work(node, "parallel")
        if max(work.mults, work.elems) > PARALLEL_MAX_MULTS:
            return "stream"
    return "parallel" if estimate(graph, board, "parallel", 1).fits else "stream"
