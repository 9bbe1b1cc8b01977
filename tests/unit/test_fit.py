"""Fitting: every design the fitting chooses fits its board within the utilisation target, runs at the
fastest balanced folding that does (or the asked frame rate), keeps the user's reuse factors, and moves
weights off chip only when they cannot stay.

Graphs are small quantized models (the builders of test_estimate.py): the jet-tagging MLP of hls4ml's
papers (16-64-32-32-5) and an MNIST-sized CNN, plus the ResNet-50-sized graph built directly in fixed
point (no calibration, broadcast weights).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fpgac.analysis.estimate import RESOURCES, Resources, assemble, estimate, layer_models
from fpgac.analysis.fifos import stream_fifos
from fpgac.analysis.fit import FitError, Fitting, _lutram_line_buffers, _uram_line_buffers, fit
from fpgac.backends.vitis.emitter import design
from fpgac.boards import BOARDS
from fpgac.build import BuildOptions, compile_model
from fpgac.frontend.onnx import load_onnx
from fpgac.ir import Graph, Param, TensorType
from fpgac.passes.quantize import Quantize
from tests.models import export_named, random_input
from tests.unit.test_estimate import CONV3, cnn, mlp, quantized, resnet50_like

ZCU104, PYNQ = BOARDS["zcu104"], BOARDS["pynq-z2"]


@pytest.fixture(scope="module")
def jet() -> Graph:
    return mlp([16, 64, 32, 32, 5])


@pytest.fixture(scope="module")
def mnist() -> Graph:
    return cnn([1, 16, 32], size=28, precision=8)


def within(f: Fitting, util: float) -> bool:
    board = f.estimate.board
    return all(getattr(f.estimate.total, k) <= math.floor(getattr(board, k) * util) for k in RESOURCES)


def assert_balanced(f: Fitting, graph: Graph) -> None:
    """Every folded layer takes the largest reuse factor the design's II allows (or one multiplier)."""
    for m in layer_models(graph, f.io, f.estimate.board):
        if m.folds:
            assert f.reuse[m.name] == min(max(f.estimate.ii // m.steps, 1), m.max_reuse), m.name


def fitted(graph: Graph, board: object, io: str = "auto", **kwargs: object) -> Fitting:
    return fit(graph, board, io, **kwargs)  # type: ignore[arg-type]


# -- fits, balanced, fastest -------------------------------------------------------------------------------


@pytest.mark.parametrize("board", [ZCU104, PYNQ], ids=["zcu104", "pynq-z2"])
def test_jet_tagging_mlp_fits(jet: Graph, board: object) -> None:
    assert not estimate(jet, board, "parallel", 1).fits  # 4,256 multipliers at reuse 1
    f = fitted(jet, board)
    assert f.fits and within(f, 0.8) and f.note is None
    assert_balanced(f, jet)
    assert f.limit in RESOURCES  # folding any less would exceed 80 % of a resource
    faster = {name: max(r // 2, 1) for name, r in f.reuse.items()}
    assert not within(Fitting(**{**f.__dict__, "estimate": estimate(jet, board, f.io, faster)}), 0.8)


def test_mnist_cnn_fits_a_pynq_z2_without_trial_and_error(mnist: Graph) -> None:
    assert not estimate(mnist, PYNQ, "stream", 4).fits
    f = fitted(mnist, PYNQ)
    assert f.fits and within(f, 0.8) and not f.offchip
    assert_balanced(f, mnist)
    assert f.estimate.fps > 1000


def test_a_small_model_stays_parallel_at_reuse_1() -> None:
    f = fitted(mlp([16, 32, 10]), ZCU104)
    assert f.io == "parallel" and set(f.reuse.values()) == {1} and f.limit == "steps"


def test_stream_balances_layers_by_their_steps(mnist: Graph) -> None:
    f = fitted(mnist, ZCU104, "stream")
    assert_balanced(f, mnist)
    est = f.estimate
    assert f.reuse["fc"] > f.reuse["conv1"]  # one step a frame vs one per pixel
    folded = [layer.ii for layer in est.layers if layer.multipliers]
    assert max(folded) == est.ii


def test_parallel_unroll_limit_forces_stream() -> None:
    graph = mlp([64, 4096 // 64 + 16, 2], precision=6)  # narrow products in LUTs, too wide to unroll
    assert fitted(graph, BOARDS["alveo-u250"]).io == "stream"


# -- the user's choices ------------------------------------------------------------------------------------


def test_explicit_reuse_wins(jet: Graph) -> None:
    f = fitted(jet, ZCU104, fixed={"fc0": 7})
    assert f.reuse["fc0"] == 7 and f.fits
    every = {n.name: 3 for n in jet.nodes}
    f = fitted(jet, ZCU104, fixed=every)
    assert f.reuse == every and f.estimate.ii == estimate(jet, ZCU104, f.io, 3).ii


def test_target_fps(jet: Graph) -> None:
    fastest = fitted(jet, ZCU104, "stream")
    slow = fitted(jet, ZCU104, "stream", target_fps=fastest.estimate.fps / 8)
    assert slow.note is None and slow.limit == "target-fps"
    assert slow.estimate.fps >= fastest.estimate.fps / 8
    assert slow.estimate.total.dsp < fastest.estimate.total.dsp
    too_fast = fitted(jet, ZCU104, "stream", target_fps=fastest.estimate.fps * 10)
    assert too_fast.estimate.ii == fastest.estimate.ii
    assert too_fast.note is not None and "cannot be met" in too_fast.note


def test_util(jet: Graph) -> None:
    loose, tight = fitted(jet, ZCU104, "stream"), fitted(jet, ZCU104, "stream", util=0.2)
    assert within(tight, 0.2) and tight.estimate.fps < loose.estimate.fps


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"util": 0}, "utilisation"),
        ({"util": 1.5}, "utilisation"),
        ({"target_fps": -1.0}, "frame rate"),
        ({"weights": "ddr"}, "weight placement"),
    ],
)
def test_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(FitError, match=match):
        fit(mlp([4, 2]), ZCU104, **kwargs)


# -- off-chip weights --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide() -> Graph:
    """6.3 Mbit of 6-bit weights: more than a PYNQ-Z2's 5.2 Mbit of block RAM."""
    return mlp([1024, 1024, 10], precision=6)


def test_weights_that_cannot_stay_on_chip_go_off_chip(wide: Graph) -> None:
    onchip = fitted(wide, PYNQ, weights="onchip")
    assert not onchip.fits and onchip.note is not None
    assert onchip.note.startswith("does not fit pynq-z2 at 80% even at the most folding")
    auto = fitted(wide, PYNQ)
    assert auto.offchip == {"fc0"} and auto.fits  # the largest layer only: fc1 stays
    layer = next(x for x in auto.estimate.layers if x.name == "fc0")
    # Off chip: two tiles of one output's 1,024 weights (12 Kbit, LUT RAM) instead of 5.7 Mbit of ROM, up to
    # a 512-bit word of them a cycle (64 int8 words: 64 products), its reads at 4.3 GB/s x 70 % and 100 MHz
    # (241 bits a cycle) bounding the layer: 34,837 cycles of reads, so half the lanes (32 products a cycle,
    # 32,768 cycles) make the same II.
    assert layer.memory == "offchip" and layer.resources.bram18 == 0 and layer.multipliers == 32
    assert layer.offchip_bits == 1024 * 1024 * 8  # every stored int8 word, once a frame (a dense layer)
    compute = 1024 * math.ceil(1024 / 32)
    assert layer.ii == math.ceil(layer.offchip_bits / PYNQ.mem_bits_per_cycle) == auto.estimate.ii > compute
    assert layer.bound == "bandwidth"
    everything = fitted(wide, PYNQ, weights="offchip")
    assert everything.offchip == {"fc0", "fc1"}


def test_weights_stay_on_chip_when_they_fit(jet: Graph) -> None:
    assert not fitted(jet, PYNQ).offchip


def test_resnet50_sized_graph_gets_a_design_for_zcu104() -> None:
    f = fitted(resnet50_like(), ZCU104)
    assert f.io == "stream" and f.offchip  # 205 Mbit of weights: far beyond 28 Mbit of BRAM and URAM
    assert f.estimate.fps > 0 and (f.fits or f.note)
    # Its deep skip FIFOs (hundreds of BRAM18 on chip) are spilled to external memory: it fits.
    assert f.fits and len(f.spills) > 10 and f.estimate.spill_bits > 0
    # Convs whose off-chip row buffers would take more block RAM than their weights in URAM stay on chip.
    assert f.uram and not f.uram & f.offchip and f.estimate.total.uram <= math.floor(0.8 * ZCU104.uram)
    assert all(x.memory == "uram" for x in f.estimate.layers if x.name in f.uram)


def test_the_demo_takes_block_ram_in_proportion_to_its_weight_bits() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    options = BuildOptions(calib=examples / "digits_batch.npy", backend="none", io="stream", reuse=2)
    report = compile_model(examples / "digits_cnn.onnx", options).report
    assert report["weight_bits"] < 32_000  # one global reuse 2 used to cost 399 BRAM18 for these
    assert report["resources"]["bram18"] * 18432 <= 2 * report["weight_bits"] + 18432
    assert {layer["memory"] for layer in report["layers"]} <= {"none", "lutram"}


def test_config_reuse_wins_and_the_other_layers_are_fitted() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    dense = "/classifier/Gemm"
    options = BuildOptions(calib=examples / "digits_batch.npy", backend="none", layer_reuse={dense: 5})
    compiled = compile_model(examples / "digits_cnn.onnx", options)
    reuse = compiled.decisions.layer_reuse
    assert reuse[dense] == 5 and compiled.decisions.reuse is None
    bounds = {layer["name"]: layer["bound"] for layer in compiled.report["layers"]}
    assert bounds[dense] == "reuse"  # the user's factor
    assert bounds["/features/features.4/Conv"] == compiled.report["fit"]["limit"]  # folded by the fitting
    assert max(reuse.values()) > 1 and compiled.report["fit"]["within_util"]


def test_off_chip_weights_need_io_stream(jet: Graph) -> None:
    with pytest.raises(FitError, match="off-chip weights need io stream"):
        fit(jet, ZCU104, "parallel", weights="offchip")
    assert fit(jet, ZCU104, weights="offchip").io == "stream"


def test_weights_beyond_block_ram_are_preloaded_into_uram() -> None:
    """16.8 Mbit of 16-bit weights: twice zcu104's block RAM (at 80 %), within its URAM. URAM cannot be
    initialised by the bitstream, so it needs the weight image (weights=auto, io stream): there the
    slow design keeps every weight on chip in URAM, within its budget, and reads nothing a frame; with
    weights=onchip it does not fit; a faster target reads the big layer off chip instead (URAM words
    widen with the rate), the small one still filling a URAM."""
    graph = mlp([1024, 1024, 10])
    slow = fitted(graph, ZCU104, "stream", target_fps=150)
    assert slow.fits and within(slow, 0.8) and not slow.offchip and slow.uram == {"fc0", "fc1"}
    memories = {layer.name: layer.memory for layer in slow.estimate.layers}
    assert memories["fc0"] == memories["fc1"] == "uram" and slow.estimate.total.bram18 == 0
    assert slow.estimate.offchip_bits == 0 and slow.to_json()["uram"] == ["fc0", "fc1"]
    assert not fitted(graph, ZCU104, "stream", target_fps=150, weights="onchip").uram
    fast = fitted(graph, ZCU104, "stream", target_fps=1000)
    assert fast.fits and fast.offchip == {"fc0"} and fast.uram == {"fc1"}


def test_line_buffers_move_to_uram_when_block_ram_is_over() -> None:
    """An off-chip 3x3 conv on 128 channels keeps its line buffer (3 rows of 28 x 128 int16, 336 words of
    32 channels) in 15 BRAM18 while that takes a smaller share of a zcu104 than its 8 URAMs would; when the
    design's block RAM is over budget and its URAM is not, the fitting moves it to URAM, and the HLS
    declares it there; in LUT RAM, its line buffer and output row take no block RAM."""
    rng = np.random.default_rng(0)
    graph = Graph("rows")
    x = graph.add_input("x", TensorType((128, 28, 28)))
    params = {"weight": Param(rng.normal(0, 0.1, (128, 128, 3, 3)).astype(np.float32))}
    graph.set_outputs([graph.add("conv", [x], name="conv", attrs=CONV3, params=params).output])
    graph = Quantize(precision=16, calib=(rng.normal(0, 1, (1, 128, 28, 28)).astype(np.float32),)).run(graph)
    models, offchip, factors = layer_models(graph, "stream", ZCU104), frozenset({"conv"}), {"conv": 1}
    before = assemble(models, factors, offchip).total
    moved = assemble(models, factors, offchip, uram_rows=offchip).total
    assert (before.bram18 - moved.bram18, moved.uram - before.uram) == (15, 8)
    for budget, chosen in (((10, 50), offchip), ((10, 7), frozenset()), ((100, 50), frozenset())):
        limits = Resources(dsp=10**6, bram18=budget[0], uram=budget[1], lut=10**7, ff=10**7)
        assert _uram_line_buffers(models, factors, {}, offchip, 0, limits) == chosen
    for uram in (False, True):
        body = design(graph, "stream", {}, ZCU104, offchip, None, uram_rows=offchip if uram else frozenset())
        rows = "BIND_STORAGE variable=rows type=ram_2p impl=uram" in body["layers"][0]["body"]
        assert rows == uram
    # In LUT RAM instead (the fitting's other choice, when LUTs have room): both row memories, no block RAM
    lutram = assemble(models, factors, offchip, lutram_rows=offchip).total
    assert (before.bram18, lutram.bram18, lutram.uram) == (15, 0, before.uram) and lutram.lut > before.lut
    body = design(graph, "stream", {}, ZCU104, offchip, None, lutram_rows=offchip)["layers"][0]["body"]
    assert all(f"BIND_STORAGE variable={v} type=ram_2p impl=lutram" in body for v in ("rows", "out"))


def test_line_buffers_move_to_lutram_when_block_ram_is_over() -> None:
    """A 3x3 conv on 64 channels, a channel a beat, folded to one product a cycle reads its line buffer in
    place from one memory a row (3 rows of 32 x 64 cells: 2 BRAM18 each); when the design's block RAM is
    over budget and its LUTs are not, the fitting moves it to LUT RAM (a LUT per 64 bits of each row), the
    most BRAM18 freed a LUT first while the LUTs fit, and the HLS declares it there."""
    rng = np.random.default_rng(0)
    graph = Graph("rows")
    x = graph.add_input("x", TensorType((64, 32, 32)))
    params = {"weight": Param(rng.normal(0, 0.1, (64, 64, 3, 3)).astype(np.float32))}
    head = graph.add("conv", [x], name="head", attrs=CONV3, params=params).output  # folded: a port is not
    graph.set_outputs([graph.add("conv", [head], name="conv", attrs=CONV3, params=params).output])
    graph = Quantize(precision=16, calib=(rng.normal(0, 1, (1, 64, 32, 32)).astype(np.float32),)).run(graph)
    models = layer_models(graph, "stream", ZCU104)
    factors, beats = {"head": 1, "conv": 64 * 64 * 9}, {head.name: 64}
    line = models[1].line_buffer(factors["conv"], 64)
    assert line is not None and (line.rows, line.banks, line.in_place, line.depth) == (3, 1, True, 2048)
    before = assemble(models, factors, groups=beats).total
    moved = assemble(models, factors, groups=beats, lutram_rows=frozenset({"conv"})).total
    bits = head.type.format.width
    assert (before.bram18 - moved.bram18, moved.lut - before.lut) == (6, 3 * bits * 2048 // 64)
    choices = [("conv", before, moved), ("small", Resources(bram18=1), Resources(lut=10_000))]
    for over, room, chosen in ((6, 10**6, {"conv"}), (7, 10**6, {"conv", "small"}), (6, 100, set())):
        limits = Resources(
            dsp=10**6, bram18=before.bram18 - over, uram=10**6, lut=before.lut + room, ff=10**7
        )
        assert _lutram_line_buffers(choices, before, limits) == chosen
    for lutram in (False, True):
        rows = frozenset({"conv"}) if lutram else frozenset()
        body = design(graph, "stream", factors, ZCU104, lanes={head.name: 1}, lutram_rows=rows)["layers"][1][
            "body"
        ]
        assert ("BIND_STORAGE variable=rows type=ram_2p impl=lutram" in body) == lutram


def _residual(channels: int = 64, size: int = 64) -> Graph:
    """ReLU forked into a transpose of the rows and columns -> ReLU, and the skip -> add: the transpose
    gathers its whole input, so the skip's FIFO holds a frame (4,096 beats of 64 channels of 8 bits)."""
    g = Graph("residual")
    x = g.add_input("x", TensorType((channels, size, size)))
    r = g.add("relu", [x], name="r0").output
    t = g.add("transpose", [r], name="t", attrs={"perm": [0, 2, 1]}).output
    branch = g.add("relu", [t], name="r1").output
    g.set_outputs([g.add("add", [branch, r], name="join").output])
    return quantized(g, (channels, size, size), precision=8)


def test_deep_fifos_spill_only_when_block_ram_is_over() -> None:
    """With block RAM to spare nothing spills; with too little the skip (the deepest FIFO) goes to external
    memory and the design fits, its traffic counted; never with weights=onchip or without memory."""
    graph = _residual()
    skip = next(f.key for f in stream_fifos(graph) if f.reader == "join")
    roomy = fitted(graph, ZCU104, "stream")
    assert roomy.fits and not roomy.spills and roomy.estimate.spill_bits == 0
    tight = replace(ZCU104, bram18=roomy.estimate.total.bram18)  # at 80 %: the skip's blocks are too many
    spilled = fitted(graph, tight, "stream")
    assert spilled.spills == {skip} and spilled.fits and spilled.to_json()["spills"] == [skip]
    assert spilled.estimate.spill_bits == 2 * 64 * 64 * 64 * 8
    assert spilled.estimate.total.bram18 < roomy.estimate.total.bram18
    assert not fitted(graph, tight, "stream", weights="onchip").spills
    assert not fitted(graph, replace(tight, mem_gb_s=0.0), "stream").spills


def test_a_larger_utilisation_target_is_never_slower(tmp_path: Path) -> None:
    """The off-chip choice moves the fewest layers that let the most folded design fit; on ultra96v2 at a
    target of 0.5 that left block RAM binding resnet_1m at 127 fps while 0.8 reached 1,261. Moving the next
    layers off chip while the design gets faster gives 1,121 fps: more budget, never a slower design."""
    graph = load_onnx(export_named("resnet_1m", "torchscript", tmp_path))
    graph = Quantize(precision=16, calib=(random_input("resnet_1m", 8),)).run(graph)
    fps = [fit(graph, BOARDS["ultra96v2"], util=util).estimate.fps for util in (0.5, 0.8, 1.0)]
    assert fps == sorted(fps) and fps[0] > 1000


def test_off_chip_convs_widen_their_rows_into_uram_when_one_lane_does_not_fit() -> None:
    """Four off-chip 3x3 convs on 128 channels at 28 x 28, int16. At one lane a word each line buffer (3 rows
    of 28 x 128 words, 16 bits) fills 3 URAMs' depth but a fifth of their 72-bit width: on a zcu104 cut to
    16 BRAM18 and 9 URAMs (80 % of 20 and 12), even the most folded design takes 16 BRAM18 and 12 URAMs.
    At a URAM word's worth of lanes (4: reuse 8 of one output's 32-weight word) a row is 2,688 words of
    64 bits, a URAM, and the design fits; the HLS declares those lanes and rows in URAM."""
    rng = np.random.default_rng(0)
    graph = Graph("rows")
    x = graph.add_input("x", TensorType((128, 28, 28)))
    for i in range(4):
        params = {"weight": Param(rng.normal(0, 0.1, (128, 128, 3, 3)).astype(np.float32))}
        x = graph.add("conv", [x], name=f"conv{i}", attrs=CONV3, params=params).output
    graph.set_outputs([x])
    graph = Quantize(precision=16, calib=(rng.normal(0, 1, (1, 128, 28, 28)).astype(np.float32),)).run(graph)
    board = replace(ZCU104, bram18=20, uram=12)
    models = layer_models(graph, "stream", board)
    convs = frozenset(m.name for m in models)
    assert [(m.wide_row_reuse, m.direct_lanes(m.wide_row_reuse)) for m in models] == [(8, 4)] * 4
    one_lane = assemble(models, dict.fromkeys(convs, 32), convs).total
    assert (one_lane.bram18, one_lane.uram) == (16, 12)  # URAM over its 9 even at the most folding
    f = fitted(graph, board)
    assert f.fits and within(f, 0.8) and f.offchip == convs and set(f.reuse.values()) == {8}
    body = design(graph, "stream", f.reuse, board, f.offchip, f.lanes)["layers"]
    for layer in body:  # a word of the line buffer: 4 channels of a tap, in URAM
        assert "HLS ARRAY_RESHAPE variable=rows cyclic factor=4 dim=3" in layer["body"]
        assert "BIND_STORAGE variable=rows type=ram_2p impl=uram" in layer["body"]
