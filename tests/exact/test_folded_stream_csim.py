"""Channel-folded io_stream (beats of L < C channels) through g++ C-simulation: zero mismatching bits.

A small residual CNN built in the IR, its inner values folded to several widths (``lanes``): convs and
pools read folded pixels into their line buffers and write folded outputs, elementwise ops (ReLU, the
residual add, an affine) run one beat of L channels a cycle, max and average pools with a folded output
compute one beat a cycle, the global average pool keeps its sums in an array, off-chip convs copy their
windows into a memory and write folded rows, and the dense layer gathers a folded vector. The simulator
computes values, not beats, so ``fpgac verify`` must find every layer equal bit for bit, folded or not.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fpgac.analysis.estimate import layer_models
from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis.ccode import VitisError
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.ir import Graph, TensorType
from fpgac.ir.graph import Value
from fpgac.ir.serialize import graph_files
from fpgac.passes.quantize import Quantize
from tests.csim_support import skip_without_csim
from tests.vitis_zoo import _normal, residual_cnn

skip_without_csim()


def _folder(
    graph: Graph,
    lanes: dict[str, int],
    folder: Path,
    offchip: frozenset[str] = frozenset(),
    reuse: dict[str, int] | None = None,
) -> Path:
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    board = get_board("zcu104")
    reuse = {"c2": 3} if reuse is None else reuse
    hls = vitis_plan(graph, board, "stream", reuse, model=graph.name, offchip=offchip, lanes=lanes)
    plan.merge(hls, prefix="hls/")
    return write_plan(plan, folder, force=True)


# Lanes (channels a beat) per layer output; "offchip" keeps the convs' weights in external memory (their
# row kernel writes folded pixels).
# "mixed": pools scan at the lanes of their folded inputs (8 channels into 2-lane parts), the global pool
# reads whole pixels; "offchip": pools scan folded inputs into folded outputs, the global pool reads folded
# pixels. The flatten after the global pool keeps its stream (a beat copy), so it folds as the pool's
# output does.
FOLDS = {
    "mixed": {"c1": 2, "r1": 2, "c2": 2, "res": 2, "r2": 2, "mp": 8, "bn": 8, "ap": 8, "gap": 2, "flat": 2},
    "offchip": {"c1": 4, "r1": 4, "c2": 4, "res": 4, "r2": 4, "mp": 2, "bn": 2, "ap": 2, "gap": 8},
}


@pytest.mark.slow
@pytest.mark.parametrize("fold", sorted(FOLDS))
def test_folded_stream_is_bit_exact(fold: str, tmp_path: Path) -> None:
    graph = residual_cnn()
    lanes = {graph.node(n).output.name: k for n, k in FOLDS[fold].items()}
    offchip = frozenset({"c1", "c2"} if fold == "offchip" else ())
    folder = _folder(graph, lanes, tmp_path / fold, offchip)
    result = verify(str(folder), random_inputs(graph, 16, seed=3))
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad


def _line_buffer_convs() -> Graph:
    """16x7x7 -> conv 3x3 stride 2 (16) -> ReLU -> conv 1x1 (32) -> ReLU -> conv 3x3 in 2 groups (32)
    -> conv 1x1 stride 2 (8) -> flatten -> dense 3: off chip, every conv reads its line buffer."""
    rng = np.random.default_rng(11)
    graph = Graph("line_buffer_convs")
    x = graph.add_input("image", TensorType((16, 7, 7)))

    def conv(name: str, value: Value, out: int, k: int, stride: int, groups: int = 1) -> Value:
        attrs = {"strides": [stride] * 2, "pads": [k // 2] * 4, "dilations": [1, 1], "groups": groups}
        params = {"weight": _normal(rng, out, value.shape[0] // groups, k, k), "bias": _normal(rng, out)}
        return graph.add("conv", [value], name=name, attrs=attrs, params=params).output

    r1 = graph.add("relu", [conv("k3s2", x, 16, 3, 2)], name="r1").output
    r2 = graph.add("relu", [conv("k1", r1, 32, 1, 1)], name="r2").output
    k1s2 = conv("k1s2", conv("k3g2", r2, 32, 3, 1, groups=2), 8, 1, 2)
    flat = graph.add("reshape", [k1s2], name="flat", attrs={"shape": [8 * 2 * 2]})
    fc = graph.add("dense", [flat.output], name="fc",
                   params={"weight": _normal(rng, 3, 32), "bias": _normal(rng, 3)})  # fmt: skip
    graph.set_outputs([fc.output])
    calib = rng.uniform(-1, 1, (32, 16, 7, 7)).astype(np.float32)
    return Quantize(precision=10, calib=(calib,)).run(graph)


# Lanes of the conv outputs (r1, r2 fold alike) and reuse factors: whole and folded inputs, a beat wider
# than the conv's lanes (16 channels into 8 lanes at reuse 3: two words a beat) and narrower.
LINE_BUFFER_FOLDS = {
    "folded": ({"k3s2": 4, "r1": 4, "k1": 8, "r2": 8, "k3g2": 2, "k1s2": 4}, {}),
    "reused": ({"k3g2": 16}, {"k3s2": 3, "k1": 2, "k1s2": 5}),
}


@pytest.mark.slow
@pytest.mark.parametrize("fold", sorted(LINE_BUFFER_FOLDS))
def test_offchip_convs_reading_their_line_buffer_are_bit_exact(fold: str, tmp_path: Path) -> None:
    graph = _line_buffer_convs()
    folds, reuse = LINE_BUFFER_FOLDS[fold]
    lanes = {graph.node(n).output.name: k for n, k in folds.items()}
    convs = [n for n in graph.nodes if n.op == "conv"]
    models = {m.name: m for m in layer_models(graph, "stream", get_board("zcu104"))}
    assert all(models[n.name].direct_lanes(reuse.get(n.name, 1)) for n in convs)
    folder = _folder(graph, lanes, tmp_path / fold, frozenset(n.name for n in convs), reuse)
    layers = (folder / "hls" / "firmware" / "layers.h").read_text()
    assert layers.count("fpgac::conv_offchip_stream<") == len(convs)
    result = verify(str(folder), random_inputs(graph, 16, seed=3))
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad


@pytest.mark.slow
def test_onchip_convs_reading_their_line_buffer_in_place_are_bit_exact(tmp_path: Path) -> None:
    """On chip, folded far enough, a conv reads its windows where they lie in its line buffer (k3s2, no
    window registers) or gathers them from a line buffer split into fewer memories than channels (k3g2),
    and a 1 x 1 conv stores one pixel (pointwise_stream) in memories (k1) or registers (k1s2)."""
    graph = _line_buffer_convs()
    folds, _ = LINE_BUFFER_FOLDS["folded"]
    lanes = {graph.node(n).output.name: k for n, k in folds.items()}
    reuse = {"k3s2": 200, "k1": 100, "k3g2": 40, "k1s2": 1}
    folder = _folder(graph, lanes, tmp_path / "in_place", reuse=reuse)
    layers = (folder / "hls" / "firmware" / "layers.h").read_text()
    declared = {  # each layer's line (or pixel) buffer split over its channels, and its kernel
        "k3s2": ("rows cyclic factor=16 dim=3", "window_stream<k3s2_config, k3s2_pixel, true>"),
        "k3g2": ("rows cyclic factor=8 dim=3", "window_stream<k3g2_config, k3g2_pixel, false>"),
        "k1": ("px cyclic factor=8 dim=1", "pointwise_stream<k1_config, k1_pixel>"),
        "k1s2": ("px cyclic factor=32 dim=1", "pointwise_stream<k1s2_config, k1s2_pixel>"),
    }
    for name, (split, kernel) in declared.items():
        body = layers[layers.index(f"static void {name}(") :].split("\n}\n")[0]
        assert f"ARRAY_PARTITION variable={split})" in body and f"fpgac::{kernel}(" in body, body
    result = verify(str(folder), random_inputs(graph, 16, seed=3))
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad


def test_lanes_must_divide_the_channels(tmp_path: Path) -> None:
    graph = residual_cnn()
    with pytest.raises(VitisError, match="3 lanes do not divide its 8 channels"):
        _folder(graph, {graph.node("r1").output.name: 3}, tmp_path / "bad")


# Pool windows the scan must get right (fpgac_pool.h): kernel 2 and 3, stride 1 and 2, symmetric and
# asymmetric padding (its windows' last rows and columns scanned as virtual ones), ceil mode, dilation,
# count_include_pad, on an odd 7x5 input, and 1-d pools.
POOLS = {
    "max_k2s2": ("max_pool", [2, 2], [2, 2], [0, 0, 0, 0], {}),
    "max_k3s1p1": ("max_pool", [3, 3], [1, 1], [1, 1, 1, 1], {}),
    "max_k3s2p1_ceil": ("max_pool", [3, 3], [2, 2], [1, 1, 1, 1], {"ceil_mode": True}),
    "max_k3s2_asym": ("max_pool", [3, 2], [2, 1], [0, 1, 2, 0], {}),
    "max_k2_dilated": ("max_pool", [2, 2], [1, 2], [1, 0, 1, 1], {"dilations": [2, 2]}),
    "avg_k2s2": ("avg_pool", [2, 2], [2, 2], [0, 0, 0, 0], {}),
    "avg_k3s1p1": ("avg_pool", [3, 3], [1, 1], [1, 1, 1, 1], {}),
    "avg_k3s2p1_pad_ceil": ("avg_pool", [3, 3], [2, 2], [1, 1, 1, 1], {"count_include_pad": True,
                                                                       "ceil_mode": True}),
    "avg_k3s1_asym": ("avg_pool", [3, 2], [1, 2], [1, 0, 0, 1], {}),
}  # fmt: skip
POOL_INPUT = (6, 7, 5)


def pool_windows() -> Graph:
    """The input (5 x 42, whole pixels) reshaped to 6 x 7 x 5 (a reshape that regroups channels gathers
    its input, so its output can be folded), feeding every pool of :data:`POOLS` and a 1-d max and
    average pool (of the input as 6 x 35), each flattened into a graph output."""
    rng = np.random.default_rng(5)
    graph = Graph("pool_windows")
    x = graph.add_input("image", TensorType((POOL_INPUT[2], POOL_INPUT[0] * POOL_INPUT[1])))
    src = graph.add("reshape", [x], name="src", attrs={"shape": list(POOL_INPUT)})
    row = graph.add("reshape", [x], name="row", attrs={"shape": [POOL_INPUT[0], 35]})
    outs = []
    for name, (op, kernel, strides, pads, extra) in POOLS.items():
        attrs = {"kernel": kernel, "strides": strides, "pads": pads, "ceil_mode": False, **extra}
        if op == "max_pool":
            attrs.setdefault("dilations", [1, 1])
        else:
            attrs.setdefault("count_include_pad", False)
        outs.append(graph.add(op, [src.output], name=name, attrs=attrs))
    line_attrs = {"kernel": [3], "strides": [2], "pads": [1, 1], "ceil_mode": False}
    outs.append(graph.add("max_pool", [row.output], name="max_1d", attrs={**line_attrs, "dilations": [1]}))
    outs.append(
        graph.add("avg_pool", [row.output], name="avg_1d", attrs={**line_attrs, "count_include_pad": False})
    )
    flats = [graph.add("reshape", [p.output], name=f"{p.name}_flat",
                       attrs={"shape": [math.prod(p.output.shape)]}) for p in outs]  # fmt: skip
    graph.set_outputs([f.output for f in flats])
    calib = rng.uniform(-1, 1, (32, POOL_INPUT[2], POOL_INPUT[0] * POOL_INPUT[1])).astype(np.float32)
    return Quantize(precision=10, calib=(calib,)).run(graph)


# (lanes of each pool's input, lanes of its output): whole pixels, folded alike, and folded unlike
# (the scan then works on gcd(L_in, L_out) lanes, splitting input beats or assembling output beats).
POOL_LANES = {"whole": (6, 6), "folded": (2, 2), "split": (6, 3), "assembled": (1, 2), "unlike": (3, 2)}


@pytest.mark.slow
@pytest.mark.parametrize("fold", sorted(POOL_LANES))
def test_pool_windows_are_bit_exact(fold: str, tmp_path: Path) -> None:
    graph = pool_windows()
    l_in, l_out = POOL_LANES[fold]
    lanes = {graph.node(n).output.name: l_in for n in ("src", "row")}
    lanes |= {graph.node(n).output.name: l_out for n in [*POOLS, "max_1d", "avg_1d"]}
    folder = _folder(graph, lanes, tmp_path / fold)
    result = verify(str(folder), random_inputs(graph, 16, seed=4))
    bad = [(d.layer, d.op, d.mismatches) for d in result.layers if d.mismatches]
    assert not bad, bad
