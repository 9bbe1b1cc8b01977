"""The resource and latency estimate: the properties a hardware engineer relies on.

Bigger models never estimate smaller, reuse R divides multipliers and multiplies the initiation interval,
DSPs follow operand widths and the DSP kind of the board, zero weights are free, block RAM is in
proportion to the weight bits, a ResNet-50-sized model does not fit a PYNQ-Z2 (and the warning names its
largest layers), and bad options fail with one clear line. Small graphs are built in float and quantized
with calibration data, as the build does; the ResNet-50-sized one is built directly in fixed point (with
broadcast weights, so it costs no memory) because calibrating 4 GMACs would take minutes.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from fpgac.analysis.estimate import (
    LUT_MULT_MAX_BITS,
    RESOURCES,
    EstimateError,
    ReuseError,
    direct_lanes,
    direct_row_memories,
    estimate,
    fifo_resources,
    layer_models,
    line_buffer,
    memory_cost,
    pixel_reads,
    product_cost,
    reuse_factors,
    rom_depth,
    rom_word,
    uram_memory,
    uram_word,
    weight_memory,
)
from fpgac.analysis.fifos import stream_fifos
from fpgac.boards import BOARDS
from fpgac.errors import FpgacError
from fpgac.ir import Graph, Param, TensorType, Value, verify
from fpgac.ir.types import Fixed, Overflow, Rounding
from fpgac.passes.quantize import Quantize

ZCU104, PYNQ, VCK190, ZCU102 = BOARDS["zcu104"], BOARDS["pynq-z2"], BOARDS["vck190"], BOARDS["zcu102"]
CONV3 = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
POOL2 = {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1], "ceil_mode": False}


# -- graphs ------------------------------------------------------------------------------------------------


def quantized(graph: Graph, shape: tuple[int, ...], precision: int = 16) -> Graph:
    x = np.random.default_rng(1).standard_normal((8, *shape)).astype(np.float32)
    graph = Quantize(precision=precision, calib=(x,)).run(graph)
    verify(graph)
    return graph


def mlp(sizes: list[int], precision: int = 16, sparsity: float = 0.0) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("mlp")
    x = g.add_input("x", TensorType((sizes[0],)))
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.5
        w[rng.random(w.shape) < sparsity] = 0.0
        b = rng.standard_normal(n_out).astype(np.float32)
        x = g.add("dense", [x], name=f"fc{i}", params={"weight": Param(w), "bias": Param(b)}).output
        if i < len(sizes) - 2:
            x = g.add("relu", [x], name=f"relu{i}").output
    g.set_outputs([x])
    return quantized(g, (sizes[0],), precision)


def cnn(channels: list[int], size: int = 8, precision: int = 16) -> Graph:
    """conv3x3+ReLU per channel pair, 2x2 max pool, flatten, dense, softmax."""
    rng = np.random.default_rng(0)
    g = Graph("cnn")
    x = g.add_input("x", TensorType((channels[0], size, size)))
    for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        w = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32) * 0.3
        x = g.add("conv", [x], name=f"conv{i}", attrs=CONV3, params={"weight": Param(w)}).output
        x = g.add("relu", [x], name=f"relu{i}").output
    x = g.add("max_pool", [x], name="pool", attrs=POOL2).output
    flat = channels[-1] * (size // 2) ** 2
    x = g.add("reshape", [x], name="flatten", attrs={"shape": [flat]}).output
    w = rng.standard_normal((10, flat)).astype(np.float32) * 0.1
    x = g.add("dense", [x], name="fc", params={"weight": Param(w)}).output
    x = g.add("softmax", [x], name="softmax", attrs={"axis": 0}).output
    g.set_outputs([x])
    return quantized(g, (channels[0], size, size), precision)


def resnet50_like(bits: int = 8) -> Graph:
    """ResNet-50's layers (25.6 M weights, 4.1 GMACs) in fixed point, without calibration."""
    act, wfmt = Fixed(bits, 4, True, Rounding.RND, Overflow.SAT), Fixed(bits, 1, True, Rounding.RND_CONV)
    acc = Fixed(32, 16)
    g = Graph("resnet50")
    x = g.add_input("x", TensorType((3, 224, 224), act))

    def conv(x: Value, c_out: int, k: int, stride: int = 1, name: str = "conv") -> Value:
        weight = np.broadcast_to(np.float64(2.0**-4), (c_out, x.shape[0], k, k))
        attrs = {"strides": [stride] * 2, "pads": [k // 2] * 4, "dilations": [1, 1], "groups": 1}
        node = g.add(
            "conv", [x], name=name, attrs={**attrs, "acc": acc}, params={"weight": Param(weight, wfmt)}
        )
        return g.add("relu", [node.output], name=f"{name}_relu").output

    x = conv(x, 64, 7, 2, "conv1")
    x = g.add("max_pool", [x], name="pool1", attrs={**POOL2, "kernel": [3, 3], "pads": [1] * 4}).output
    for stage, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512], strict=True)):
        for block in range(blocks):
            name, stride = f"s{stage}b{block}", 2 if block == 0 and stage > 0 else 1
            y = conv(x, width, 1, 1, f"{name}_a")
            y = conv(y, width, 3, stride, f"{name}_b")
            y = conv(y, 4 * width, 1, 1, f"{name}_c")
            if block == 0:
                x = conv(x, 4 * width, 1, stride, f"{name}_proj")
            x = g.add("add", [x, y], name=f"{name}_add").output
    recip = Param(np.array([1 / 49]), Fixed(18, 1, False, Rounding.TRN, Overflow.SAT))
    pool_attrs = {"mode": "mean", "axes": [1, 2], "keepdims": False, "acc": Fixed(14, 10)}
    x = g.add("reduce", [x], name="avgpool", attrs=pool_attrs, params={"recip": recip}).output
    fc = np.broadcast_to(np.float64(2.0**-4), (1000, 2048))
    x = g.add("dense", [x], name="fc", attrs={"acc": acc}, params={"weight": Param(fc, wfmt)}).output
    g.set_outputs([x])
    verify(g)
    return g


def layer(est: object, name: str) -> dict:
    return next(entry for entry in est.to_json()["layers"] if entry["name"] == name)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def resnet50() -> Graph:
    return resnet50_like()


# -- primitives --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "board", "dsp"),
    [
        (16, 16, ZCU104, 1),
        (27, 18, ZCU104, 1),
        (18, 27, ZCU104, 1),  # the swapped orientation
        (28, 18, ZCU104, 2),
        (24, 24, ZCU104, 2),
        (24, 24, VCK190, 1),  # DSP58 is 27x24
        (26, 18, ZCU104, 1),
        (26, 18, PYNQ, 2),  # 7-series DSP48E1 is 25x18
        (32, 32, ZCU104, 4),
        (36, 36, ZCU104, 4),
        (55, 18, ZCU104, 3),
    ],
)
def test_dsps_per_product_follow_operand_widths(a: int, b: int, board: object, dsp: int) -> None:
    assert product_cost(a, b, board) == (dsp, 0)  # type: ignore[arg-type]


def test_narrow_products_go_to_luts() -> None:
    assert product_cost(LUT_MULT_MAX_BITS, 16, ZCU104) == (0, math.ceil(LUT_MULT_MAX_BITS * 16 / 2))
    assert product_cost(16, 2, ZCU104) == (0, 16)
    assert product_cost(LUT_MULT_MAX_BITS + 1, 16, ZCU104)[0] == 1


@pytest.mark.parametrize(
    ("depth", "width", "board", "expected"),
    [
        (512, 36, ZCU104, {"bram18": 1}),
        (1024, 18, ZCU104, {"bram18": 1}),
        (16384, 1, ZCU104, {"bram18": 1}),
        (1024, 36, ZCU104, {"bram18": 2}),
        (1, 18432, ZCU104, {"bram18": 512}),  # shallow and wide: port width, not capacity, decides
        (64, 16, ZCU104, {"lut": 16}),  # 1 Kbit: LUT RAM
        (200, 16, ZCU104, {"lut": 64}),
        (8192, 72, ZCU104, {"uram": 2}),  # deep: UltraRAM where the board has it
        (8192, 72, ZCU102, {"bram18": 32}),
        (4096, 1152, ZCU104, {"uram": 16}),  # as much capacity as 256 BRAM18s: URAM frees the BRAM
        (512, 720, ZCU104, {"bram18": 20}),  # 10 URAMs hold 8 times as much as 20 BRAM18s: wasted
    ],
)
def test_memory_blocks_count_capacity_and_port_width(
    depth: int, width: int, board: object, expected: dict
) -> None:
    cost = memory_cost(depth, width, board).to_json()  # type: ignore[arg-type]
    assert cost == {k: expected.get(k, 0) for k in RESOURCES}


# -- monotone in model size and precision ------------------------------------------------------------------


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_bigger_models_estimate_bigger(io: str) -> None:
    for small, big in [
        (mlp([16, 16, 10]), mlp([16, 64, 10])),
        (mlp([16, 32, 10]), mlp([16, 32, 32, 10])),
        (cnn([1, 4, 8]), cnn([1, 8, 16])),
        (cnn([1, 4, 8], size=8), cnn([1, 4, 8], size=16)),
    ]:
        a, b = estimate(small, ZCU104, io), estimate(big, ZCU104, io)
        assert b.multipliers > a.multipliers
        for kind in RESOURCES:
            assert getattr(b.total, kind) >= getattr(a.total, kind), kind
        assert b.total.lut > a.total.lut and b.total.ff > a.total.ff
        assert b.latency_cycles >= a.latency_cycles


def test_wider_formats_cost_more() -> None:
    ests = [estimate(mlp([16, 32, 10], precision=p), ZCU104, "parallel") for p in (10, 20, 28)]
    # DSP48E2 is 27x18: 10-bit products take one DSP, 20-bit two, 28-bit four.
    assert [e.total.dsp / e.multipliers for e in ests] == [1, 2, 4]
    assert ests[0].total.lut < ests[1].total.lut < ests[2].total.lut
    assert ests[0].total.ff < ests[1].total.ff < ests[2].total.ff
    narrow = estimate(mlp([16, 32, 10], precision=4), ZCU104, "parallel")
    assert narrow.total.dsp == 0 and narrow.total.lut > 0  # 4-bit products live in LUTs


def test_zero_weights_cost_nothing() -> None:
    dense = estimate(mlp([64, 64, 10]), ZCU104, "parallel", reuse=1)
    pruned = estimate(mlp([64, 64, 10], sparsity=0.75), ZCU104, "parallel", reuse=1)
    graph = mlp([64, 64, 10], sparsity=0.75)
    nnz = int(np.count_nonzero(graph.node("fc0").params["weight"].data))
    assert layer(pruned, "fc0")["multipliers"] == nnz < 0.3 * 64 * 64
    assert pruned.total.dsp < 0.4 * dense.total.dsp


# -- reuse -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_reuse_divides_multipliers_and_multiplies_ii(io: str) -> None:
    graph = mlp([64, 32, 10])
    base = estimate(graph, ZCU104, io, 1)
    for r in (2, 4, 8, 16):
        est = estimate(graph, ZCU104, io, r)
        fc0 = layer(est, "fc0")
        assert fc0["multipliers"] == math.ceil(64 * 32 / r)
        assert fc0["dsp"] == math.ceil(64 * 32 / r)  # 16 x 16 bits: one DSP each
        assert fc0["ii"] == r and est.ii == r
        assert fc0["latency_cycles"] >= r
        assert est.total.dsp == pytest.approx(base.total.dsp / r, rel=0.05)
        assert est.latency_cycles > estimate(graph, ZCU104, io, r // 2).latency_cycles
        assert layer(est, "relu0")["ii"] == 1  # no multiplications: reuse does not apply


def test_reuse_of_a_stream_conv_is_per_pixel() -> None:
    graph = cnn([1, 8, 16], size=8)
    for r in (1, 3, 9):
        conv1 = layer(estimate(graph, ZCU104, "stream", r), "conv1")
        assert conv1["multipliers"] == math.ceil(8 * 16 * 9 / r)
        assert conv1["ii"] == 64 * r  # 8 x 8 output pixels, R cycles each


def test_stream_weights_move_to_block_ram_only_when_it_fills() -> None:
    graph = cnn([1, 8, 16], size=8)
    rs = (1, 2, 8, 32, 128, 512)
    conv1 = [layer(estimate(graph, ZCU104, "stream", r), "conv1") for r in rs]
    assert conv1[0]["bram18"] == 0 and conv1[0]["memory"] == "const"  # R = 1: wired into the multipliers
    # R > 1: 1,152 16-bit weights reshaped into R words of 18,432 / R bits. A shallow, wide ROM would be
    # port-bound in block RAM (R = 2: 256 blocks for 18 Kbit), so it is LUT ROM, in proportion to the bits.
    for r, c in zip(rs[1:5], conv1[1:5], strict=True):
        assert c["memory"] == "lutram" and c["bram18"] == 0
        assert weight_memory(1152, 16, r, "stream", ZCU104)[1].lut == 18432 // r * math.ceil(r / 64)
    assert conv1[5]["memory"] == "bram" and conv1[5]["bram18"] == 2  # 512 x 48 bits: half of 2 blocks
    assert layer(estimate(graph, ZCU104, "parallel", 8), "conv1")["bram18"] == 0  # parallel: LUT ROMs


def test_block_ram_is_in_proportion_to_the_weight_bits() -> None:
    for count, bits in ((1152, 16), (30_000, 8), (250_000, 4), (2_000_000, 16)):
        for r in (2, 4, 16, 64, 256, 1024, 4096):
            kind, cost = weight_memory(count, bits, r, "stream", ZCU104)
            assert cost.bram18 * 18432 * 0.5 <= count * bits + 18432 * 0.5, (count, bits, r, kind)
            assert cost.uram * 294912 * 0.5 <= count * bits + 294912 * 0.5, (count, bits, r, kind)


def test_per_layer_reuse() -> None:
    graph = mlp([64, 32, 10])
    est = estimate(graph, ZCU104, "parallel", {"fc0": 8})
    assert layer(est, "fc0")["multipliers"] == 64 * 32 // 8 and layer(est, "fc0")["reuse"] == 8
    assert layer(est, "fc1")["multipliers"] == 32 * 10 and layer(est, "fc1")["reuse"] == 1
    assert est.to_json()["reuse"] == {"fc0": 8}
    assert reuse_factors(graph, {"fc1": 2}, default=4) == {"fc0": 4, "relu0": 4, "fc1": 2}


# -- totals, budget, fit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_report_totals_add_up(io: str) -> None:
    est = estimate(cnn([1, 4, 8]), ZCU104, io, 2)
    data = json.loads(json.dumps(est.to_json()))
    assert set(data) == {
        "io",
        "reuse",
        "offchip",
        "spills",
        "layers",
        "total",
        "budget",
        "utilization",
        "fits",
        "largest",
    }
    assert data["io"] == io and data["reuse"] == 2
    for kind in (*RESOURCES, "multipliers"):
        assert data["total"][kind] == sum(entry[kind] for entry in data["layers"])
        if kind in RESOURCES:
            assert data["budget"][kind] == getattr(ZCU104, kind)
            assert data["utilization"][kind] == pytest.approx(
                data["total"][kind] / data["budget"][kind], abs=1e-4
            )
    layers = data["layers"]
    assert data["total"]["ii"] == max(entry["ii"] for entry in layers)
    if io == "parallel":  # layers one after another
        assert data["total"]["latency_cycles"] == sum(entry["latency_cycles"] for entry in layers)
    else:  # dataflow: no longer than running them one after another, no shorter than the slowest layer
        assert max(e["latency_cycles"] for e in layers) <= data["total"]["latency_cycles"]
        assert data["total"]["latency_cycles"] <= sum(e["latency_cycles"] for e in layers) + 16
    assert data["total"]["latency_us"] == pytest.approx(
        data["total"]["latency_cycles"] / ZCU104.clock_mhz, abs=1e-3
    )


def test_small_model_fits() -> None:
    est = estimate(mlp([16, 32, 10]), ZCU104, "parallel")
    assert est.fits and est.warning is None and est.to_json()["fits"] is True
    assert est.largest[0] == "fc0"


def test_resnet50_does_not_fit_a_pynq_z2(resnet50: Graph) -> None:
    est = estimate(resnet50, PYNQ, "stream", 64)  # shallow weight ROMs in LUTs: 25.6 M 8-bit weights
    assert not est.fits and "lut" in est.over_budget
    est = estimate(resnet50, PYNQ, "stream", 4096)  # deep ones in block RAM: 40 times the board's
    assert not est.fits and "bram18" in est.over_budget
    assert est.total.bram18 * 18432 >= 25_000_000 * 8
    est = estimate(resnet50, PYNQ, "stream", 1)
    assert set(est.over_budget) >= {"dsp", "lut", "ff"}  # R = 1: weights wired in, line buffers in LUTs
    largest = est.largest
    assert len(largest) == 3 and all(name.startswith(("s", "conv1", "fc")) for name in largest)
    assert est.warning is not None and est.warning.startswith(
        "estimated design does not fit pynq-z2 (stream)"
    )
    for name in largest:
        assert name in est.warning
    assert est.to_json()["largest"] == list(largest) and est.to_json()["fits"] is False


def test_largest_layers_are_those_over_budget() -> None:
    graph = mlp([64, 128, 10])  # fc0 has 8192 multipliers, fc1 1280
    est = estimate(graph, PYNQ, "parallel")
    assert not est.fits and "dsp" in est.over_budget
    assert est.largest[:2] == ("fc0", "fc1")
    assert "fc0" in (est.warning or "") and "dsp" in (est.warning or "")


def test_resnet50_estimate_is_in_a_sensible_range(resnet50: Graph) -> None:
    est = estimate(resnet50, BOARDS["alveo-u250"], "stream", 1)
    assert (
        est.multipliers
        == sum(
            int(np.count_nonzero(n.params["weight"].data))
            for n in resnet50.nodes
            if n.op in ("conv", "dense")
        )
        + 2048
    )
    # ~4.1 GMACs per sample: at R = 1 the slowest stage is conv1 (112 x 112 pixels).
    assert est.ii == 112 * 112
    assert not est.fits


# -- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -2, True, 2.5, "4", None])
def test_bad_global_reuse(bad: object) -> None:
    with pytest.raises(ReuseError, match="reuse factor must be a positive integer"):
        estimate(mlp([4, 2]), ZCU104, "parallel", bad)  # type: ignore[arg-type]


def test_bad_per_layer_reuse() -> None:
    graph = mlp([4, 4, 2])
    with pytest.raises(
        ReuseError, match=r"reuse factor for layer 'fc9': no such layer; layers are fc0, relu0, fc1"
    ):
        estimate(graph, ZCU104, "parallel", {"fc9": 2})
    with pytest.raises(ReuseError, match=r"reuse factor of layer 'fc1' must be a positive integer, not 0"):
        estimate(graph, ZCU104, "parallel", {"fc1": 0})
    assert issubclass(ReuseError, FpgacError) and issubclass(EstimateError, FpgacError)


def test_unknown_io_style() -> None:
    with pytest.raises(EstimateError, match=r"unknown io style 'serial'; choose one of parallel, stream"):
        estimate(mlp([4, 2]), ZCU104, "serial")


def test_float_graph_is_refused() -> None:
    g = Graph("float")
    x = g.add_input("x", TensorType((4,)))
    g.set_outputs([g.add("dense", [x], params={"weight": Param(np.ones((2, 4), np.float32))}).output])
    with pytest.raises(EstimateError, match="needs a quantized graph"):
        estimate(g, ZCU104, "parallel")


def test_versal_dsp58_takes_wider_products() -> None:
    graph = mlp([16, 32, 10], precision=20)  # 20 x 21-bit products: two DSP48E2s, one DSP58
    assert estimate(graph, ZCU104, "parallel").total.dsp == 2 * estimate(graph, VCK190, "parallel").total.dsp


def test_stream_convolutions_buffer_rows_per_channel() -> None:
    graph = cnn([1, 16, 16], size=32)
    conv1 = graph.node("conv1")
    width = conv1.inputs[0].type.format.width
    # Three rows of 32 pixels (3x3 kernel: window_stream stores the window's span of rows), each channel
    # its own memory 32 deep at R = 1 (the whole window is read every cycle): 16 small LUT RAMs a row, no
    # block RAM; weights are constants at R = 1.
    est = layer(estimate(graph, ZCU104, "stream"), "conv1")
    assert est["bram18"] == 0
    assert est["lut"] >= 3 * 16 * width
    assert layer(estimate(graph, ZCU104, "parallel"), "conv1")["bram18"] == 0  # input in registers
    # The dataflow pipeline waits for two rows and two pixels before conv1's first window.
    stream = estimate(graph, ZCU104, "stream")
    fill = next(entry for entry in stream.layers if entry.name == "conv1").fill_cycles
    assert fill >= 2 * 32 + 2


def every_op_graph() -> Graph:
    """One node of every op the quantize pass supports, on a (4, 6, 6) feature map."""
    rng = np.random.default_rng(0)
    g = Graph("ops")
    x = g.add_input("x", TensorType((4, 6, 6)))

    def add(op: str, inputs: list[Value], attrs: dict | None = None, params: dict | None = None) -> Value:
        return g.add(op, inputs, name=op, attrs=attrs or {}, params=params or {}).output

    per_channel = (rng.random((4, 1, 1)) + 0.5).astype(np.float32)
    a = add("affine", [x], params={"scale": Param(per_channel), "shift": Param(per_channel)})
    b = add("conv", [a], CONV3, {"weight": Param(rng.standard_normal((4, 4, 3, 3)).astype(np.float32))})
    c = add("add", [a, b])
    c = add("sub", [c, a])
    c = add("mul", [c, b])
    c = add("leaky_relu", [c], {"alpha": 0.1})
    c = add("prelu", [c], params={"slope": Param(per_channel)})
    c = add("clip", [c], {"min": -1.0, "max": 1.0})
    c = add("hard_sigmoid", [c], {"alpha": 0.2, "beta": 0.5})
    quant = {"bits": 4, "signed": True, "narrow": False, "rounding": "ROUND"}
    c = add("quant", [c], quant, {"scale": Param(np.float32(0.25)), "zero_point": Param(np.float32(0))})
    d = add("elu", [b], {"alpha": 1.0})
    d = add("selu", [d], {"alpha": 1.67, "gamma": 1.05})
    d = add("sigmoid", [d])
    d = add("tanh", [d])
    d = add("lrn", [d], {"size": 3, "alpha": 1e-4, "beta": 0.75, "bias": 1.0})
    e = add("concat", [c, d], {"axis": 0})
    e = add("pad", [e], {"pads": [0, 1, 1, 0, 1, 1], "mode": "constant", "value": 0.0})
    e = add("transpose", [e], {"perm": [0, 2, 1]})
    e = add("relu", [e])
    avg = {
        "kernel": [2, 2],
        "strides": [2, 2],
        "pads": [0] * 4,
        "ceil_mode": False,
        "count_include_pad": False,
    }
    e = add("avg_pool", [e], avg)
    e = add("max_pool", [e], {**POOL2, "kernel": [2, 2], "strides": [1, 1]})
    m = add("reduce", [e], {"mode": "mean", "axes": [1, 2], "keepdims": False})
    n = g.add(
        "reduce", [e], name="reduce_max", attrs={"mode": "max", "axes": [1, 2], "keepdims": False}
    ).output
    f = g.add("concat", [m, n], name="concat_flat", attrs={"axis": 0}).output
    f = add("reshape", [f], {"shape": [1, 16]})
    f = add("dense", [f], params={"weight": Param(rng.standard_normal((5, 16)).astype(np.float32))})
    window = {"kernel": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1]}
    basis = Param(rng.standard_normal((2, 36)).astype(np.float32))
    num = add("patch_energy", [a], window, {"basis": basis})
    den = g.add("patch_energy", [a], name="patch_energy_den", attrs=window).output
    g.set_outputs([add("softmax", [f], {"axis": 1}), add("ood_flag", [num, den], {"tau": 0.5})])
    return quantized(g, (4, 6, 6))


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_every_quantized_op_has_an_estimate(io: str) -> None:
    from fpgac.passes.quantize import _RULES  # the ops with a fixed-point kernel

    graph = every_op_graph()
    assert {n.op for n in graph.nodes} == set(_RULES)
    est = estimate(graph, ZCU104, io, 2)
    json.dumps(est.to_json())
    fifos = fifo_resources(stream_fifos(graph), {}, ZCU104) if io == "stream" else {}
    for entry in est.layers:
        assert entry.ii >= 1 and entry.latency_cycles >= 0
        wiring = entry.op == "reshape" or (io == "parallel" and entry.op in ("transpose", "pad", "concat"))
        lut = entry.resources.lut - (fifos[entry.name].lut if entry.name in fifos else 0)
        assert (lut == 0) == wiring, entry.name  # moves of wires cost nothing but the FIFO they write


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_emitted_weight_storage_is_the_estimated_one(io: str) -> None:
    from fpgac.backends.vitis.emitter import design

    graph = cnn([1, 8, 16], size=8)
    for r in (1, 2, 64, 512):
        memory = layer(estimate(graph, ZCU104, io, {"conv1": r}), "conv1")["memory"]
        body = next(
            x["body"] for x in design(graph, io, {"conv1": r}, ZCU104)["layers"] if x["name"] == "conv1"
        )
        if memory == "const":
            assert "ARRAY_PARTITION variable=conv1_weight complete" in body
        else:
            assert f"impl={memory})" in body
    assert memory == ("bram" if io == "stream" else "lutram")


def test_offchip_layer_takes_a_memory_word_a_cycle() -> None:
    """An off-chip conv makes one 512-bit word of products a cycle (32 int16 weights): 8x8 pixels x 8
    output channels x ceil(36 / 32) = 2 cycles, plus its row's window copy and output beats; on an HBM
    card (1,073 bits a cycle) its 0.15 Mbit a frame bound nothing slower, so the products set II
    ("serial"); both are what fpgac_offchip.h does."""
    u280 = BOARDS["alveo-u280"]
    est = estimate(cnn([4, 8]), u280, "stream", 1, frozenset({"conv0"}))
    conv = next(layer for layer in est.layers if layer.name == "conv0")
    assert conv.memory == "offchip" and conv.multipliers == 32 and conv.bound == "serial"
    # each pixel's window (36 cells) is also copied in 32 a cycle, the pixel written out in one beat, and
    # each input pixel stored in the line buffer in one beat, all in turn
    assert conv.ii == 8 * 8 * (8 * math.ceil(36 / 32) + math.ceil(36 / 32) + 1) + 8 * 8 == est.ii
    assert conv.offchip_bits == 8 * 36 * 16 * 8  # the [OC][T] block of int16 words once per output row


def test_rom_depth_is_the_reshaped_arrays() -> None:
    """A ROM of n weights at reuse R holds words of ceil(n / R) weights, ceil(n / word) deep: the factor
    the emitter reshapes the array by and the depth the estimate charges (1,152 weights at R = 700 are
    576 words of 2, not 700 words)."""
    from fpgac.backends.vitis.emitter import design

    assert (rom_word(10, 6), rom_depth(10, 6)) == (2, 5)
    assert (rom_word(1152, 700), rom_depth(1152, 700)) == (2, 576)
    assert weight_memory(1152, 16, 700, "parallel", ZCU104)[1].lut == 32 * math.ceil(576 / 64)
    graph = cnn([1, 8, 16], size=8)
    body = next(
        x["body"] for x in design(graph, "stream", {"conv1": 700}, ZCU104)["layers"] if x["name"] == "conv1"
    )
    assert "ARRAY_RESHAPE variable=conv1_weight cyclic factor=2)" in body


def test_uram_weights_fill_the_ports_the_emitter_reshapes() -> None:
    """A weight memory in URAM holds words of at least 72 // bits weights (one 16-bit weight a word would
    leave 56 of 72 bits empty), as the emitter reshapes ``<layer>_weight_uram``; 4Kx72 blocks."""
    from fpgac.backends.vitis.emitter import uram_pragmas

    assert uram_word(1_000_000, 16, 1_000_000) == 4 and uram_word(1_000_000, 16, 1000) == 1000
    assert uram_word(3, 16, 3) == 3  # never more than the weights
    assert uram_memory(1_000_000, 16, 1_000_000).uram == math.ceil(250_000 / 4096)  # 62 deep, 64 bits wide
    assert uram_memory(1_000_000, 16, 1000).uram == math.ceil(16_000 / 72)  # 1,000 words: port-bound
    graph = cnn([1, 8, 16], size=8)
    est = estimate(graph, ZCU104, "stream", {"conv1": 400}, uram=frozenset({"conv1"}))
    assert layer(est, "conv1")["memory"] == "uram" and layer(est, "conv1")["uram"] == 1
    assert "cyclic factor=4)" in uram_pragmas(graph.node("conv1"), "conv1", 400)[0]  # 1,152 / 400 -> 3 -> 4


def test_offchip_conv_reads_its_line_buffer_and_keeps_its_output_row_in_uram() -> None:
    """A 64-channel 3x3 conv off chip reads 32 channels of its line buffer a cycle (its lanes divide the
    channels; an RGB or depthwise conv copies windows instead), no window memory: its line buffer (3 rows
    of 14 x 64 int16) and its output row (14 x 1024 int16, packed 4 a URAM word: one URAM on a zcu104
    instead of 14 BRAM18) are all its memory besides the weight tiles, declared where the estimate puts
    them; a board without URAM keeps the row in block RAM. Its output leaves one channel a beat (a
    1024-channel beat would read 1024 banks of the row at once)."""
    from fpgac.backends.vitis.emitter import design

    assert (direct_lanes(16, 64, 9), direct_lanes(16, 64, 9, reuse=3)) == (32, 8)
    assert direct_lanes(16, 3, 49) == direct_lanes(16, 1, 9) == 0
    rng = np.random.default_rng(0)
    graph = Graph("wide")
    x = graph.add_input("x", TensorType((64, 14, 14)))
    params = {"weight": Param(rng.normal(0, 0.1, (1024, 64, 3, 3)).astype(np.float32))}
    conv = graph.add("conv", [x], name="conv", attrs=CONV3, params=params).output
    graph.set_outputs([graph.add("reshape", [conv], name="flat", attrs={"shape": [1024 * 14 * 14]}).output])
    graph = Quantize(precision=16, calib=(rng.normal(0, 1, (2, 64, 14, 14)).astype(np.float32),)).run(graph)
    for board, uram in ((ZCU104, True), (ZCU102, False)):
        conv = layer_models(graph, "stream", board)[0].at(
            1, offchip=True, groups=(1, 1024)
        )  # 1 channel a beat
        rows = direct_row_memories(graph.node("conv"), 32, 1024, board)
        assert conv.multipliers == 32 and (rows.out_uram, rows.line_buffer_uram) == (uram, False)
        assert (conv.resources.uram, conv.resources.bram18) == ((1, 0) if uram else (0, 14))
        # in turn: 18 words of products an output per pixel, its 1024 beats out, each input pixel's
        # 64 channels stored as 2 words
        assert conv.ii == 14 * 14 * (1024 * 18 + 1024) + 14 * 14 * 2
        lanes = {graph.node("conv").output.name: 1}  # its output leaves a channel a beat
        body = design(graph, "stream", {}, board, frozenset({"conv"}), lanes)["layers"][0]["body"]
        assert (
            "fpgac::conv_offchip_stream<" in body and "ARRAY_RESHAPE variable=rows cyclic factor=32" in body
        )
        assert ("BIND_STORAGE variable=out type=ram_2p impl=uram" in body) == uram


def test_folded_convs_read_their_line_buffer_in_place_from_fewer_memories() -> None:
    """A conv's line buffer is split into as few memories as its reads in its cycles a pixel allow (at
    least a beat's channels); folded far enough, its products read the line buffer in place (no window
    registers); a 1 x 1 conv stores one pixel. The estimate charges what the emitter declares."""
    graph = cnn([1, 16, 16], size=32)
    conv1 = graph.node("conv1")
    reads = pixel_reads(conv1)
    assert reads == 16  # each cell a pixel, once for each of the 16 outputs
    unfolded = line_buffer(conv1, 16, 1, reads)
    assert (unfolded.rows, unfolded.width, unfolded.banks, unfolded.in_place) == (3, 32, 16, False)
    gathered = line_buffer(conv1, 1, 12, reads)  # 3 x 16 reads of a channel's row > 12 cycles: registers
    assert (gathered.banks, gathered.in_place) == (4, False)  # 16 / 4 channels x 3 cells <= 12
    in_place = line_buffer(conv1, 2, 200, reads)
    assert (in_place.banks, in_place.in_place) == (4, True)  # 16 / 4 channels x 3 cells x 16 reads <= 200
    assert in_place.cost(ZCU104) == memory_cost(32 * 4, conv1.inputs[0].type.format.width, ZCU104) * 12

    (model,) = [m for m in layer_models(graph, "stream", ZCU104) if m.name == "conv1"]
    window_regs = 16 * 9 * conv1.inputs[0].type.format.width
    fast, slow = model.at(12, groups=(16, 1)), model.at(200, groups=(8, 1))
    assert fast.resources.ff >= window_regs > slow.resources.ff  # in place: no window registers

    pointwise = Graph("pointwise")
    x = pointwise.add_input("x", TensorType((16, 8, 8)))
    w = np.random.default_rng(0).standard_normal((8, 16, 1, 1)).astype(np.float32)
    attrs = {**CONV3, "pads": [0, 0, 0, 0]}
    y = pointwise.add("conv", [x], name="pw", attrs=attrs, params={"weight": Param(w)}).output
    pointwise.set_outputs([y])
    pw = quantized(pointwise, (16, 8, 8)).node("pw")
    pixel = line_buffer(pw, 4, 16, pixel_reads(pw))  # 16 / 8 channels x 8 reads <= 16 cycles
    assert (pixel.rows, pixel.width, pixel.banks, pixel.pointwise) == (1, 1, 8, True)
    registers = line_buffer(pw, 4, 1, pixel_reads(pw))
    assert registers.banks == 16 and registers.cost(ZCU104).ff == 16 * pw.inputs[0].type.format.width
