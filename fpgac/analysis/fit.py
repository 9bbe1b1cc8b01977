"""Fitting: the folding (reuse factor) of every layer, the io style and the off-chip weights for a board.

``fpgac build --board B`` must give a design that fits B, at the highest frame rate that fits, without the
user searching reuse factors by trial and error. The estimate (:mod:`fpgac.analysis.estimate`) says what a
design costs; this module chooses the design.

Balanced folding
================
A layer runs ``steps`` steps a frame at R cycles each (``ii = steps * R``) on ``ceil(M / R)``
multipliers. Layers overlap in a dataflow region (``stream``) or run one after another (``parallel``);
either way a frame leaves every ``max(ii)`` cycles, so a layer faster than the slowest one wastes
multipliers. As FINN folds for a target frame rate, the fitting picks one target II for the whole design
and gives each layer the largest R with ``steps * R <= II`` (capped where one multiplier is left): the
multipliers go where the MACs are. The target is the smallest II whose design fits within ``util`` of
every resource of the board (DSP, LUT, FF, BRAM18, URAM); with ``target_fps``, the largest II that still
makes that rate (the cheapest design that meets it), or the fastest that fits when none does, saying so.
A resource that is over budget even at the most folding (the layers that do not fold: pools, elementwise
ops and line buffers work on a pixel's channels at once) cannot be helped by folding: the fitting then
fits the other resources and the note names what does not fit.
A design's cost falls as II grows (fewer multipliers, narrower weight ROMs), so a binary search over II
finds it; each layer's cost at a reuse factor is arithmetic on a datapath read once
(:class:`~fpgac.analysis.estimate.LayerModel`), so ResNet-50's ~120 layers fit in well under a second.

Fpgac's Vitis kernels take any positive reuse factor: ``ceil(products / R)`` multipliers
(``ALLOCATION``) and a cyclic reshape by ``ceil(size / R)``, neither of which needs R to divide anything.
A backend whose kernels take only some factors (hls4ml's Resource strategy) passes ``accepts``: each
fitted factor is rounded down to one it accepts, so the layer still makes the design's II.

Reuse factors the user gives (a global ``--reuse``, per-layer ``reuse`` in ``--config``) are kept as
given; the fitting folds only the other layers.

IO style
========
``auto`` takes ``parallel`` (every activation in registers, layers one after another: the lowest latency)
when no layer unrolls more than ``PARALLEL_MAX_MULTS`` products or elements per step (HLS stops
unrolling beyond that, hls4ml issue #1013) and the fitted parallel design fits; else ``stream``.

Off-chip weights
================
``weights="auto"`` keeps every weight on chip when the most folded design fits the block RAM and URAM
budget; otherwise it moves the layers with the most weight bits to external memory, one at a time, until
it does (skipping a layer whose off-chip buffers take as much block RAM as its weights). Where memory
(block RAM, URAM, LUT ROM) then binds the fitted design, the next layers in that order go off chip too,
1, 2, 4, ... at a time, while the design gets faster: a smaller budget must not leave a slower design than
a larger one (resnet_1m on ultra96v2 at 0.5 stayed at 127 fps, block-RAM bound, with one layer more off
chip it makes 1,121).
``offchip`` moves every layer with weights, ``onchip`` none. Off-chip weights need io stream. Off-chip
layers compute one product a cycle and read their weights at the board's sustained bandwidth, which
bounds the design's II from below (see the estimate). An off-chip layer takes the fewest lanes (products
a cycle, the word's weights / R) that still make the design's II.
At one lane an off-chip conv's line buffer (span x W x C words of one 16-bit channel) is deep and narrow:
block RAM holds it whole, and URAM's 72-bit words would be three-quarters empty. Where the design so fitted
does not fit, it is fitted again with every off-chip conv at least a URAM word's worth of lanes (4 of 16
bits: wide, shallow rows a URAM holds), kept when it fits: DenseNet-121's 120 convs off chip at one lane
take 1,264 BRAM18 (zcu104's budget: 499); at four the design fits (499 BRAM18, 73 URAMs, 13.4 fps).

Weights in UltraRAM
===================
UltraRAM cannot be initialised by the bitstream, so weights live there only preloaded from the weight
image at start (``fpgac::preload``), which needs external memory: with ``weights="auto"`` in io stream on
a board with URAM and memory bandwidth, at each design the fitting moves the on-chip layers that free the
most block RAM and LUT ROM (as fractions of their budgets) per URAM into URAM while the URAMs fit their
budget, each only where its weights fill its URAMs at least half (as block RAM must be filled: a shallow,
wide memory is port-bound); the off-chip choice counts that placement, so fewer layers go off chip, and
brings back into URAM (smallest first) the off-chip layers whose row buffers take more block RAM than
their weights' URAM saves.

Spilled FIFOs
=============
In io stream on a board with memory bandwidth (and weights not ``onchip``: then nothing goes to external
memory), while the design at its most folding (weights where the off-chip choice puts them, values folded to a
channel a beat) takes more block RAM than the budget, the fork FIFO that takes the most block RAM goes to
external memory (:mod:`fpgac.analysis.fifos`, "Spilling"), largest first; a FIFO whose spill would take as
much block RAM stays, and none goes when all of them would not free the spills' m_axi buffers. Where block RAM
still binds the design fitted with them (it is over budget, or it is what stops a faster design), every FIFO
whose spill saves block RAM at the folding reached goes too, the design is fitted again and the better of the
two (within the budget, then faster) is kept. Their traffic shares the bandwidth with off-chip weights (the
estimate's ``spill_bits``), which bounds the design's II from below as off-chip weights do. Block RAM a deep
FIFO holds buys nothing but the lag between two branches, while a frame's skip is a few MB of
memory traffic against GB/s, so FIFOs go before folding or weights pay for them.

Line buffers in LUT RAM
=======================
A folded window layer's line buffer is a few deep memories, and an off-chip conv's row memories a few
wide ones, which the estimate puts in block RAM. At each design whose block RAM is over budget, the
fitting moves them into LUT RAM (a LUT per 64 bits), the most BRAM18 freed a LUT first, while block RAM
is over and the LUTs fit (:func:`_lutram_line_buffers`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fpgac.analysis.estimate import (
    PARALLEL_MAX_MULTS,
    RESOURCES,
    URAM_PER_BRAM18,
    Estimate,
    EstimateError,
    LayerEstimate,
    LayerModel,
    Resources,
    assemble,
    bandwidth_ii,
    fifo_cost,
    fifo_resources,
    layer_models,
    offchip_max_reuse,
    spill_bits,
    spill_bundle_cost,
    spill_cost,
    spill_ii,
)
from fpgac.analysis.fifos import Fifo, stream_fifos
from fpgac.analysis.lanes import groups_at, lanes_of, most_folding, pixels_channels
from fpgac.boards import DEFAULT_UTIL, Board
from fpgac.ir.graph import Graph

WEIGHT_PLACES = ("auto", "onchip", "offchip")
MEMORY = ("bram18", "uram")  # the budget off-chip weights relieve
Accepts = Callable[[str, str, int], int]  # (io, layer, R) -> the largest factor <= R the backend takes


class FitError(EstimateError):
    """Fitting options that cannot be used (utilisation, frame rate, weight placement)."""


@dataclass(frozen=True)
class Fitting:
    """The chosen design and why.

    Attributes:
        io: the io style chosen (``parallel`` or ``stream``).
        reuse: every layer's reuse factor, by name.
        fixed: the layers whose reuse factor the user gave.
        offchip: layers whose weights live in external memory.
        uram: layers whose weights are preloaded into UltraRAM.
        lanes: io stream: the channel-folded values, by name, and the channels each beat carries.
        estimate: the design's estimate on the board.
        limit: what stops a faster design: a resource over ``util`` of the board (``dsp``, ``lut``, ...),
            ``steps`` (a layer already at one step a cycle), ``bandwidth`` (off-chip weights, and spilled
            FIFOs' traffic), ``spill`` (a spill process moving a memory word a cycle), ``reuse`` (a layer
            whose reuse factor the user fixed) or ``target-fps`` (the rate asked for is met).
        limit_layer: the layer that sets the limit when one does (``steps``, ``bandwidth``, ``reuse``).
        util: the fraction of each resource the design was fitted into.
        within_util: whether the design takes at most ``util`` of every resource.
        target_fps: the frame rate asked for, if any.
        note: one line when the design does not fit or misses ``target_fps``; else None.
        uram_rows: off-chip convs whose line buffers are in URAM (:func:`_uram_line_buffers`).
        spills: io stream: the fork FIFOs kept in external memory, by :attr:`~fpgac.analysis.fifos.Fifo.key`.
        lutram_rows: window layers whose line buffers are in LUT RAM (:func:`_lutram_line_buffers`).
    """

    io: str
    reuse: dict[str, int]
    fixed: frozenset[str]
    offchip: frozenset[str]
    uram: frozenset[str]
    lanes: dict[str, int]
    estimate: Estimate
    limit: str
    limit_layer: str | None
    util: float
    within_util: bool
    target_fps: float | None
    note: str | None
    uram_rows: frozenset[str] = frozenset()
    spills: frozenset[str] = frozenset()
    lutram_rows: frozenset[str] = frozenset()

    @property
    def fits(self) -> bool:
        return self.estimate.fits

    def bound(self, layer: LayerEstimate) -> str:
        """What sets a layer's ii: ``bandwidth``, ``steps`` (one step a cycle), ``reuse`` (the user's
        factor), or for a folded layer the design's limit (``dsp``, ``lut``, ``target-fps``, ...)."""
        if layer.bound != "reuse":
            return layer.bound
        return "reuse" if layer.name in self.fixed else self.limit

    def to_json(self) -> dict[str, object]:
        return {
            "io": self.io,
            "util": self.util,
            "within_util": self.within_util,
            "target_fps": self.target_fps,
            "fps": round(self.estimate.fps, 3),
            "limit": self.limit,
            "limit_layer": self.limit_layer,
            "offchip": sorted(self.offchip),
            "uram": sorted(self.uram),
            "lanes": dict(sorted(self.lanes.items())),
            "uram_rows": sorted(self.uram_rows),
            "spills": sorted(self.spills),
            "lutram_rows": sorted(self.lutram_rows),
            "note": self.note,
        }


def fit(
    graph: Graph,
    board: Board,
    io: str = "auto",
    *,
    util: float = DEFAULT_UTIL,
    target_fps: float | None = None,
    fixed: Mapping[str, int] | None = None,
    weights: str = "auto",
    accepts: Accepts | None = None,
    fold_channels: bool = True,
) -> Fitting:
    """Choose the io style (``auto``), reuse factors and off-chip layers of ``graph`` on ``board``.

    ``fixed`` maps layer names to the reuse factors the user gave (kept as given); ``accepts(io, layer,
    R)`` is the largest factor at most R the backend's kernels take for the layer (default: R);
    ``fold_channels``: the Vitis kernels, whose io stream values may be channel-folded and whose line
    buffers may go to LUT RAM (not hls4ml's).
    """
    if not 0 < util <= 1:
        raise FitError(f"utilisation target {util} must be in (0, 1]")
    if target_fps is not None and not target_fps > 0:
        raise FitError(f"target frame rate {target_fps} must be positive")
    if weights not in WEIGHT_PLACES:
        raise FitError(f"unknown weight placement {weights!r}; choose one of {', '.join(WEIGHT_PLACES)}")
    fixed = dict(fixed or {})
    if io == "parallel" and weights == "offchip":
        raise FitError("off-chip weights need io stream (the parallel kernels keep weights on chip)")
    if io == "auto" and weights != "offchip":
        models = layer_models(graph, "parallel", board)
        if max(_unrolled(m) for m in models) <= PARALLEL_MAX_MULTS:
            parallel = _fit_style(graph, models, util, target_fps, fixed, weights, accepts, False)
            if parallel.within_util:
                return parallel
    if io == "auto":
        io = "stream"
    models = layer_models(graph, io, board)
    return _fit_style(graph, models, util, target_fps, fixed, weights, accepts, fold_channels)


def _unrolled(model: LayerModel) -> int:
    """Products or elements one step unrolls in parallel style."""
    return max(model.work.mults, model.work.elems)


def _fit_style(
    graph: Graph,
    models: Sequence[LayerModel],
    util: float,
    target_fps: float | None,
    fixed: Mapping[str, int],
    weights: str,
    accepts: Accepts | None,
    fold_channels: bool,
) -> Fitting:
    board, io = models[0].board, models[0].io
    budget = Resources(*(math.floor(getattr(board, k) * util) for k in RESOURCES))
    preload = weights == "auto" and io == "stream" and board.uram > 0 and board.mem_gb_s > 0
    fifos = stream_fifos(graph) if io == "stream" else ()  # the same for every choice: found once
    spillable = fifos if weights != "onchip" else ()  # onchip: nothing in external memory
    folded = groups_at(graph, most_folding(graph)) if fold_channels and spillable else {}
    channels = {f.value.name: pixels_channels(f.value)[1] for f in spillable}

    def rank(f: Fitting) -> tuple[bool, float]:
        return f.within_util, f.estimate.fps

    def fitted(wide_rows: bool) -> Fitting:
        """The fastest design with off-chip convs at the fewest lanes that make its II, or (``wide_rows``)
        at least a URAM word's worth of lanes (:attr:`~fpgac.analysis.estimate.LayerModel.wide_row_reuse`)."""
        # Counting URAM moves fewer layers off chip, but the URAM that fits at the most folding may not at the
        # II reached (wider words): both choices are fitted and the faster design that fits is kept.
        choices = {_offchip(models, budget, fixed, weights, p, wide_rows) for p in {preload, False}}

        def most_reuse(m: LayerModel, offchip: frozenset[str]) -> int:
            return _most(m, wide_rows) if m.name in offchip else m.max_reuse

        def fit_at(offchip: frozenset[str], spills: frozenset[str]) -> Fitting:
            args = (fold_channels, offchip, preload, fifos, spills, wide_rows)
            return _fit_design(graph, models, util, target_fps, fixed, accepts, *args)

        def design(offchip: frozenset[str]) -> Fitting:
            # Spills are chosen at the most folding first; where block RAM still binds the design fitted with
            # them (over budget, or what stops a faster one), every FIFO whose spill saves block RAM at the
            # folding reached is spilled too, and the better of the two designs kept.
            most = [
                m.at(fixed.get(m.name) or most_reuse(m, offchip), m.name in offchip, 0, m.groups(folded))
                for m in models
            ]
            bram = sum(layer.resources.bram18 for layer in most)
            bram += sum(r.bram18 for r in fifo_resources(spillable, folded, board).values())
            spills = _spills(spillable, board, bram, budget, folded)
            first = fit_at(offchip, spills)
            if first.limit != "bram18" and first.estimate.total.bram18 <= budget.bram18:
                return first
            groups = {v: channels[v] // lanes for v, lanes in first.lanes.items() if v in channels}
            more = spills | {k for k, saved in _savings(spillable, board, groups).items() if saved > 0}
            if more == spills or board.mem_gb_s <= 0:
                return first
            other = fit_at(offchip, more)
            return max([first, other], key=rank)

        best = max((design(offchip) for offchip in sorted(choices, key=sorted)), key=rank)
        # The choice above moves the fewest layers that let the most folded design fit; where memory then
        # binds the fitted design, each further layer off chip frees memory for less folding until the
        # bandwidth binds instead. The next layers go too, 1, 2, 4, ... at a time, while it gets faster.
        if weights != "auto" or io != "stream" or board.mem_gb_s <= 0:
            return best
        rest = [name for name in _offchip_order(models, fixed) if name not in best.offchip]
        step = 1
        while (
            rest and best.limit in (*MEMORY, "lut") and (target_fps is None or best.estimate.fps < target_fps)
        ):
            trial = design(best.offchip | frozenset(rest[:step]))
            if rank(trial) <= rank(best):
                break
            best, rest, step = trial, rest[step:], step * 2
        return best

    best = fitted(False)
    # Where that design does not fit, off-chip convs' line buffers at one lane a word may be what block RAM
    # cannot hold: a design at a URAM word's worth of lanes each (wider, shallower rows that pack URAM) is
    # fitted too, and kept if it fits (else the first, whose note says what does not).
    wide = fold_channels and io == "stream" and weights != "onchip" and board.uram > 0 and board.mem_gb_s > 0
    if best.within_util or not wide:
        return best
    wider = fitted(True)
    return wider if wider.within_util else best


def _fit_design(
    graph: Graph,
    models: Sequence[LayerModel],
    util: float,
    target_fps: float | None,
    fixed: Mapping[str, int],
    accepts: Accepts | None,
    fold_channels: bool,
    offchip: frozenset[str],
    preload: bool,
    fifos: Sequence[Fifo],
    spills: frozenset[str],
    wide_rows: bool = False,
) -> Fitting:
    """The fitted design with ``offchip`` layers off chip; ``preload``: weights may go to URAM; ``fifos``:
    the design's stream FIFOs (none in io parallel), those named in ``spills`` in external memory;
    ``wide_rows``: off-chip convs at least a URAM word's worth of lanes (:func:`_most`)."""
    board, io = models[0].board, models[0].io
    fold_channels = fold_channels and io == "stream"
    budget = Resources(*(math.floor(getattr(board, k) * util) for k in RESOURCES))
    bw = bandwidth_ii(models, offchip, board, spill_bits(fifos, spills))
    cache: dict[tuple[str, int, tuple[int, int], bool, bool], LayerEstimate] = {}

    def layer_at(
        m: LayerModel, r: int, groups: tuple[int, int] = (1, 1), uram: bool = False, lutram: bool = False
    ) -> LayerEstimate:
        key = (m.name, r, groups, uram, lutram)
        if key not in cache:
            cache[key] = m.at(r, m.name in offchip, bw, groups, uram, lutram_rows=lutram)
        return cache[key]

    def groups_of(ii: int) -> dict[str, int]:
        return groups_at(graph, ii) if fold_channels else {}

    def folded(m: LayerModel, ii: int) -> int:
        if m.name in offchip:  # the fewest lanes that make the II (the most at one product a cycle)
            return _largest(lambda r: layer_at(m, r).ii <= ii, 1, _most(m, wide_rows))
        r = min(max(ii // m.steps, 1), m.max_reuse)
        return accepts(io, m.name, r) if accepts else r

    def reuse_at(ii: int) -> dict[str, int]:
        return {m.name: fixed.get(m.name) or folded(m, ii) for m in models}

    def uram_at(factors: Mapping[str, int], beats: Mapping[str, int]) -> frozenset[str]:
        movable = [m for m in models if preload and m.fills_uram(factors[m.name]) and m.name not in offchip]
        if not movable:
            return frozenset()
        # URAM the design takes without preloads (off-chip convs' row memories that went there on their own)
        taken = sum(layer_at(m, factors[m.name], m.groups(beats)).resources.uram for m in models)
        return _preloaded(
            [
                (
                    m.name,
                    layer_at(m, factors[m.name], m.groups(beats)).resources,
                    layer_at(m, factors[m.name], m.groups(beats), True).resources,
                )
                for m in movable
            ],
            budget,
            budget.uram - taken,
        )

    limits = _vector(budget)

    def total_at(
        factors: Mapping[str, int], beats: Mapping[str, int], uram: frozenset[str], lutram: frozenset[str]
    ) -> Resources:
        at = [(m, factors[m.name], m.groups(beats), m.name in uram, m.name in lutram) for m in models]
        layers = [layer_at(*args).resources for args in at]
        return sum([*layers, *fifo_resources(fifos, beats, board, spills).values()], Resources())

    def lutram_at(
        factors: Mapping[str, int], beats: Mapping[str, int], uram: frozenset[str]
    ) -> tuple[frozenset[str], Resources]:
        """The line buffers moved to LUT RAM, and the design's total with them there."""
        total = total_at(factors, beats, uram, frozenset())
        if not fold_channels or total.bram18 <= budget.bram18 or total.lut >= budget.lut:
            return frozenset(), total

        def moved(m: LayerModel) -> tuple[str, Resources, Resources]:
            r, groups, preloaded = factors[m.name], m.groups(beats), m.name in uram
            before, after = (layer_at(m, r, groups, preloaded, lutram) for lutram in (False, True))
            return m.name, before.resources, after.resources

        windows = [m for m in models if m.line_buffer(factors[m.name], m.groups(beats)[0], m.name in offchip)]
        chosen = _lutram_line_buffers([moved(m) for m in windows], total, budget)
        return chosen, total_at(factors, beats, uram, chosen) if chosen else total

    def over(ii: int) -> tuple[str, ...]:
        factors, beats = reuse_at(ii), groups_of(ii)
        total = _vector(lutram_at(factors, beats, uram_at(factors, beats))[1])
        return tuple(k for k, n, limit in zip(RESOURCES, total, limits, strict=True) if n > limit)

    floor_layer, floor, floor_kind = _floor(models, fixed, offchip, bw, layer_at)
    # The spills' traffic (and the weights', sharing the bandwidth) or one spill process may set the pace.
    spilled_floor, spilled_kind = (
        max((bw, "bandwidth"), (spill_ii(fifos, spills), "spill")) if spills else (0, "")
    )
    if spilled_floor > floor:
        floor_layer, floor, floor_kind = None, spilled_floor, spilled_kind
    ceiling = max(floor, *(m.steps * (fixed.get(m.name) or m.max_reuse) for m in models))
    slowest = [layer_at(m, fixed.get(m.name) or _most(m, wide_rows)).ii for m in models if m.name in offchip]
    ceiling = max([ceiling, *slowest, most_folding(graph) if fold_channels else 1])
    goal = math.floor(board.clock_mhz * 1e6 / target_fps) if target_fps else None
    note = None
    # Resources over budget even at the most folding cannot be helped: fit the others, and say so.
    stuck = set(over(ceiling))

    def fixable_over(ii: int) -> list[str]:
        return [k for k in over(ii) if k not in stuck]

    ii = _smallest(lambda c: not fixable_over(c), floor, ceiling)
    limit, limit_layer = (
        (floor_kind, floor_layer) if ii == floor else ((*fixable_over(ii - 1), "dsp")[0], None)
    )
    if goal is not None and goal >= ii:
        slow = min(goal, ceiling)  # the cheapest design that makes the rate (if cost falls with II)
        ii, limit, limit_layer = (ii if fixable_over(slow) else slow), "target-fps", None
    elif goal is not None:
        best = board.clock_mhz * 1e6 / ii
        why = f"{limit} of layer {limit_layer!r}" if limit_layer else f"{limit} at {util:.0%}"
        note = f"target {target_fps:g} fps cannot be met: the fastest design that fits makes "
        note += f"{best:,.1f} fps ({why})"
    factors, beats = reuse_at(ii), groups_of(ii)
    uram = uram_at(factors, beats)
    lutram_rows = lutram_at(factors, beats, uram)[0]
    uram_rows = _uram_line_buffers(
        models, factors, beats, offchip, bw, budget, uram, fifos, spills, lutram_rows
    )
    est = assemble(
        models, factors, offchip, groups=beats, uram=uram, uram_rows=uram_rows, fifos=fifos,
        spills=spills, lutram_rows=lutram_rows,
    )  # fmt: skip
    within = all(getattr(est.total, k) <= getattr(budget, k) for k in RESOURCES)
    if not within:
        note = _no_fit(est, budget, util, stuck)
    return Fitting(
        models[0].io,
        factors,
        frozenset(fixed),
        offchip,
        uram,
        lanes_of(graph, beats),
        est,
        limit,
        limit_layer,
        util,
        within,
        target_fps,
        note,
        uram_rows,
        spills,
        lutram_rows,
    )


def _lutram_line_buffers(
    choices: Sequence[tuple[str, Resources, Resources]], total: Resources, budget: Resources
) -> frozenset[str]:
    """Window layers whose line buffers move to LUT RAM while the design's block RAM is over budget: the
    most BRAM18 freed a LUT first, while the LUTs fit their budget. ``choices``: (layer, its resources,
    its resources with its line buffer in LUT RAM); ``total``: the design's resources with none moved.
    (The estimate maps a line buffer as any memory, in block RAM once it is deep: a folded layer's few
    deep memories, which LUT RAM holds at a LUT per 64 bits, as well as LUTs have room.)"""
    moves = [(name, before.bram18 - after.bram18, after.lut - before.lut) for name, before, after in choices]
    return _out_of_block_ram(moves, total.bram18, budget.bram18, total.lut, budget.lut)


def _uram_line_buffers(
    models: Sequence[LayerModel],
    factors: Mapping[str, int],
    beats: Mapping[str, int],
    offchip: frozenset[str],
    bw: int,
    budget: Resources,
    preloaded: frozenset[str] = frozenset(),
    fifos: Sequence[Fifo] = (),
    spills: frozenset[str] = frozenset(),
    lutram: frozenset[str] = frozenset(),
) -> frozenset[str]:
    """Off-chip convs whose line buffers move to URAM when the design's block RAM is over budget and its
    URAM is not: the most BRAM18 freed a URAM first, while the URAM budget holds (what the weights
    preloaded into URAM, ``preloaded``, leave of it; ``fifos`` are charged too, ``spills`` off chip; those
    whose row memories are in LUT RAM, ``lutram``, stay there). (The estimate puts a memory in URAM on its
    own only when that takes a smaller share of the board, which leaves a wide line buffer, a few hundred
    words of L channels, in block RAM even while URAM sits idle.)"""
    total = assemble(
        models, factors, offchip, groups=beats, uram=preloaded, fifos=fifos, spills=spills, lutram_rows=lutram
    ).total
    moves = []
    for m in models:
        if m.name not in offchip or m.name in lutram or not m.direct_lanes(factors[m.name]):
            continue
        at = (factors[m.name], True, bw, m.groups(beats))
        before, after = m.at(*at).resources, m.at(*at, uram_rows=True).resources
        moves.append((m.name, before.bram18 - after.bram18, after.uram - before.uram))
    return _out_of_block_ram(moves, total.bram18, budget.bram18, total.uram, budget.uram)


def _out_of_block_ram(
    moves: Sequence[tuple[str, int, int]], bram: int, bram_budget: int, other: int, other_budget: int
) -> frozenset[str]:
    """The memories to move out of block RAM into another resource (URAM, LUT RAM) while block RAM is over
    its budget: from (name, BRAM18 freed, other resource taken), the most BRAM18 freed per unit taken
    first (by name on ties), each while the other resource stays within its budget."""
    chosen: set[str] = set()
    for name, freed, taken in sorted(
        (m for m in moves if m[1] > 0), key=lambda m: (-m[1] / max(m[2], 1), m[0])
    ):
        if bram <= bram_budget:
            break
        if other + taken <= other_budget:
            chosen.add(name)
            bram, other = bram - freed, other + taken
    return frozenset(chosen)


def _spills(
    fifos: Sequence[Fifo], board: Board, bram: int, budget: Resources, groups: Mapping[str, int]
) -> frozenset[str]:
    """The fork FIFOs to keep in external memory while a design of ``bram`` BRAM18s (its FIFOs at the
    folding ``groups`` on chip) is over the budget: the most block RAM first, only where spilling saves
    some, and none when all of them would not free the spills' m_axi buffers; by key."""
    if board.mem_gb_s <= 0:
        return frozenset()
    saved = _savings(fifos, board, groups)
    if sum(saved.values()) <= spill_bundle_cost(board).bram18:
        return frozenset()
    cost = {f.key: fifo_cost(f.depth(groups.get(f.value.name, 1)), f.width(groups.get(f.value.name, 1)),
                             board).bram18 for f in fifos}  # fmt: skip
    spills: set[str] = set()
    for key in sorted(saved, key=lambda k: (-cost[k], k)):
        if bram <= budget.bram18:
            break
        bram -= saved[key] - (0 if spills else spill_bundle_cost(board).bram18)
        spills.add(key)
    return frozenset(spills)


def _savings(fifos: Sequence[Fifo], board: Board, groups: Mapping[str, int]) -> dict[str, int]:
    """The BRAM18s spilling each fork FIFO saves at the folding ``groups`` (only those that save some)."""
    saved = {}
    for f in fifos:
        g = groups.get(f.value.name, 1)
        gain = fifo_cost(f.depth(g), f.width(g), board).bram18 - spill_cost(f, g, board).bram18
        if f.reader and gain > 0:
            saved[f.key] = gain
    return saved


def _offchip(
    models: Sequence[LayerModel],
    budget: Resources,
    fixed: Mapping[str, int],
    weights: str,
    preload: bool,
    wide_rows: bool = False,
) -> frozenset[str]:
    """The layers whose weights go to external memory (see the module docstring); ``preload``: on-chip
    weights may be preloaded into UltraRAM (:func:`_preloaded`); ``wide_rows``: off-chip layers at their
    largest reuse factor :func:`_most` takes."""
    stored = [m for m in models if m.weight_bits]
    if weights == "onchip" or not stored or models[0].io != "stream":
        return frozenset()
    if weights == "offchip":
        return frozenset(m.name for m in stored)
    if models[0].board.mem_gb_s <= 0:
        return frozenset()
    # Each layer's memory at its most folding: on chip, off chip and in URAM; moving a layer swaps them.
    on, off, ur, fills = {}, {}, {}, set()
    for m in models:
        r = fixed.get(m.name) or m.max_reuse
        far = fixed.get(m.name) or (_most(m, wide_rows) if m.weight_bits else r)
        on[m.name], off[m.name], ur[m.name] = m.at(r), m.at(far, offchip=True), m.at(r, uram=True)
        fills |= {m.name} if preload and m.fills_uram(r) else set()
    limits = _vector(budget)

    def memory(offchip: set[str]) -> list[int]:
        movable = [m.name for m in models if m.name in fills and m.name not in offchip]
        taken = sum((off[m.name] if m.name in offchip else on[m.name]).resources.uram for m in models)
        uram = _preloaded(
            [(n, on[n].resources, ur[n].resources) for n in movable], budget, budget.uram - taken
        )
        total = [0] * len(RESOURCES)
        for m in models:
            layer = off[m.name] if m.name in offchip else ur[m.name] if m.name in uram else on[m.name]
            total = [t + n for t, n in zip(total, _vector(layer.resources), strict=True)]
        return total

    def memory_fits(offchip: set[str]) -> bool:
        total = memory(offchip)
        return all(t <= limit for t, limit, k in zip(total, limits, RESOURCES, strict=True) if k in MEMORY)

    offchip: set[str] = set()
    for name in _offchip_order(models, fixed, on, off):
        if memory_fits(offchip):
            break
        offchip.add(name)
    # An off-chip layer whose weights fill URAM comes back on chip into it where that takes less block RAM
    # than its off-chip buffers (a conv row's windows and outputs): smallest first, while URAM lasts.
    bram = RESOURCES.index("bram18")
    back = [m for m in stored if m.name in offchip and m.name in fills]
    for m in sorted(back, key=lambda m: (m.weight_bits, m.name)):
        if memory(offchip - {m.name})[bram] < memory(offchip)[bram]:
            offchip.discard(m.name)
    return frozenset(offchip)


def _offchip_order(
    models: Sequence[LayerModel],
    fixed: Mapping[str, int],
    on: Mapping[str, LayerEstimate] | None = None,
    off: Mapping[str, LayerEstimate] | None = None,
) -> list[str]:
    """The layers with weights in the order they go off chip: the most weight bits first, skipping a layer
    whose off-chip buffers (a conv row's windows) take no fewer memory blocks than its weights, each at its
    most folding (``on``/``off``: those layer costs where the caller has them)."""
    names = []
    for m in sorted((m for m in models if m.weight_bits), key=lambda m: (-m.weight_bits, m.name)):
        r = fixed.get(m.name) or m.max_reuse
        here = on[m.name] if on is not None else m.at(r)
        there = off[m.name] if off is not None else m.at(r, offchip=True)
        if _memory_blocks(_vector(there.resources)) < _memory_blocks(_vector(here.resources)):
            names.append(m.name)
    return names


def _preloaded(
    choices: Sequence[tuple[str, Resources, Resources]], budget: Resources, spare: int
) -> frozenset[str]:
    """The layers to preload into UltraRAM, from (name, cost with its ROM, cost with URAM): the most block
    RAM and LUT ROM freed (as fractions of their budgets) per URAM first, while their URAMs fit in
    ``spare``, what the rest of the design leaves of the URAM budget; a layer that frees nothing stays."""

    def freed(rom: Resources, uram: Resources) -> float:
        bram = (rom.bram18 - uram.bram18) / max(budget.bram18, 1)
        return bram + (rom.lut - uram.lut) / max(budget.lut, 1)

    ranked = sorted(
        (
            (freed(rom, uram) / max(uram.uram - rom.uram, 1), name, uram.uram - rom.uram)
            for name, rom, uram in choices
        ),
        key=lambda c: (-c[0], c[1]),
    )
    chosen, used = set(), 0
    for gain, name, blocks in ranked:
        if gain > 0 and used + blocks <= spare:
            chosen.add(name)
            used += blocks
    return frozenset(chosen)


def _memory_blocks(vector: tuple[int, ...]) -> int:
    """Block RAM of a resource vector, URAM counted at its capacity in BRAM18s."""
    res = dict(zip(RESOURCES, vector, strict=True))
    return res["bram18"] + URAM_PER_BRAM18 * res["uram"]


def _vector(res: Resources) -> tuple[int, ...]:
    return (res.dsp, res.bram18, res.uram, res.lut, res.ff)


def _floor(
    models: Sequence[LayerModel],
    fixed: Mapping[str, int],
    offchip: frozenset[str],
    bw: int,
    layer_at: Callable[[LayerModel, int], LayerEstimate],
) -> tuple[str | None, int, str]:
    """The lowest II any folding can reach, the layer that sets it and why (steps, reuse, bandwidth)."""
    best: tuple[str | None, int, str] = (None, 1, "steps")
    for m in models:
        r = fixed.get(m.name, 1)
        layer = layer_at(m, r)
        if layer.ii > best[1]:
            kind = "bandwidth" if layer.bound == "bandwidth" else ("reuse" if m.name in fixed else "steps")
            best = (m.name, layer.ii, kind)
    return best


def _most(m: LayerModel, wide_rows: bool = False) -> int:
    """An off-chip layer's largest reuse factor: at one product a cycle, or (``wide_rows``) a conv's at a
    URAM word's worth of lanes (:attr:`~fpgac.analysis.estimate.LayerModel.wide_row_reuse`)."""
    return m.wide_row_reuse if wide_rows else offchip_max_reuse(m.work.weight_bits, m.work.fan_in)


def _largest(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest ``x`` in [lo, hi] with ``ok(x)`` (``lo`` if none), given ``ok`` monotone falling."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _smallest(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    """The smallest ``x`` in [lo, hi] with ``ok(x)``, given ``ok(hi)`` and ``ok`` monotone."""
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _no_fit(est: Estimate, budget: Resources, util: float, stuck: set[str]) -> str:
    """One line: the resources over ``util`` of the board (``stuck``: even at the most folding allowed,
    so the design is the fastest that fits the others) and the layers that take most of them."""
    used = est.total
    over = [k for k in RESOURCES if getattr(used, k) > getattr(budget, k)]
    parts = ", ".join(f"{k} {getattr(used, k):,}/{getattr(budget, k):,}" for k in over)
    why = "even at the most folding allowed" if set(over) <= stuck else "at this folding"
    return (
        f"does not fit {est.board.name} at {util:.0%} {why}: {parts}; "
        f"largest layers: {', '.join(est.largest)}"
    )
