"""Graphs for the Vitis backend tests: an ONNX "op zoo" covering every fixed-point op, and build helpers.

The zoo is one model whose input feeds about thirty independent branches, each a graph output, so one
g++ compile covers every op of ``FIXED_OPS`` (a compile costs seconds; a branch costs milliseconds).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.build import BuildOptions, compile_model
from fpgac.ir import Param, TensorType
from fpgac.ir.graph import Graph
from fpgac.ir.serialize import graph_files
from fpgac.ir.types import Fixed, Overflow, Rounding
from fpgac.passes.quantize import Quantize

ZOO_SHAPE = (4, 6, 6)


def zoo_model(path: Path, seed: int = 0) -> Path:
    """The op zoo as an ONNX file (opset 17), input ``x`` of shape (N, 4, 6, 6)."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    outputs: list[str] = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op: str, inputs: list[str], out: bool = True, **attrs: object) -> str:
        name = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        if out:
            outputs.append(name)
        return name

    f32 = np.float32
    w = const("conv_w", rng.normal(0, 0.4, (6, 2, 3, 3)).astype(f32))
    b = const("conv_b", rng.normal(0, 0.2, 6).astype(f32))
    node("Conv", ["x", w, b], group=2, strides=[2, 2], pads=[1, 1, 1, 1])
    shape1d = const("shape1d", np.array([0, 4, 36], np.int64))
    flat1d = node("Reshape", ["x", shape1d])
    w1 = const("conv1d_w", rng.normal(0, 0.4, (3, 4, 3)).astype(f32))
    node("Conv", [flat1d, w1], dilations=[2], pads=[1, 0])
    node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 0, 0, 1], count_include_pad=1)
    gap = node("GlobalAveragePool", ["x"])
    node("GlobalMaxPool", ["x"])
    scale, bias = (
        const("bn_s", rng.uniform(0.5, 2, 4).astype(f32)),
        const("bn_b", rng.normal(0, 1, 4).astype(f32)),
    )
    mean, var = (
        const("bn_m", rng.normal(0, 1, 4).astype(f32)),
        const("bn_v", rng.uniform(0.5, 2, 4).astype(f32)),
    )
    node("BatchNormalization", ["x", scale, bias, mean, var])
    node("Add", ["x", node("Relu", ["x"])])
    node("Sub", [node("Sigmoid", ["x"]), "x"])
    node("Mul", [node("Tanh", ["x"]), "x"])
    node("Mul", ["x", gap])  # broadcast (4, 1, 1) against (4, 6, 6)
    node("Sum", ["x", gap, node("Relu", ["x"], out=False)])  # three terms, left to right
    node("LeakyRelu", ["x"], alpha=0.1)
    node("PRelu", ["x", const("slope", np.array([-0.3, 0.1, 0.25, 0.6], f32).reshape(4, 1, 1))])
    node("Clip", ["x", const("lo", np.array(-0.5, f32)), const("hi", np.array(0.75, f32))])
    node("Clip", ["x", const("lo6", np.array(0.0, f32)), const("hi6", np.array(6.0, f32))])
    node("HardSigmoid", ["x"], alpha=0.3, beta=0.4)
    node("Elu", ["x"], alpha=0.7)
    node("Selu", ["x"])
    node("Softmax", ["x"], axis=1)
    node("LRN", ["x"], size=3, alpha=0.5, beta=0.75, bias=1.0)
    node("Transpose", ["x"], perm=[0, 2, 3, 1])
    pads = const("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))
    node("Pad", ["x", pads, const("pad_value", np.array(0.3, f32))], mode="constant")
    node("Pad", ["x", pads], mode="reflect")
    node("Pad", ["x", pads], mode="edge")
    node("Concat", ["x", node("Relu", ["x"], out=False)], axis=1)
    flat = node("Flatten", ["x"], out=False)
    wd = const("fc_w", rng.normal(0, 0.1, (144, 5)).astype(f32))
    node("Gemm", [flat, wd, const("fc_b", rng.normal(0, 0.1, 5).astype(f32))])
    node(
        "Softmax",
        [node("MatMul", [flat, const("fc2_w", rng.normal(0, 0.5, (144, 7)).astype(f32))], out=False)],
    )
    qonnx = "qonnx.custom_op.general"

    shapes: dict[str, list[object]] = {}  # ONNX shape inference does not know QONNX's ops

    def quant(op: str, inputs: list[str], channels: int = 4, **attrs: object) -> None:
        name = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [name], name=name, domain=qonnx, **attrs))
        outputs.append(name)
        shapes[name] = ["N", channels, *ZOO_SHAPE[1:]]

    zero, po2 = const("q_zero", np.array(0.0, f32)), lambda e: np.array(2.0**e, f32)
    per_channel = const("q_scales", (2.0 ** np.array([-2, -3, 0, -1])).astype(f32).reshape(4, 1, 1))
    quant(
        "Quant", ["x", per_channel, zero, const("q_b4", np.array(4.0, f32))], narrow=1, rounding_mode="CEIL"
    )
    quant("Quant", ["x", const("q_s3", po2(-3)), zero, const("q_b3", np.array(3.0, f32))], signed=0, narrow=1,
          rounding_mode="FLOOR")  # fmt: skip
    conv = node("Conv", ["x", const("q_conv_w", rng.normal(0, 0.4, (3, 4, 1, 1)).astype(f32))], out=False)
    quant("Quant", [conv, const("q_s4", po2(-4)), zero, const("q_b6", np.array(6.0, f32))], 3, narrow=0)
    quant("BipolarQuant", ["x", const("q_s1", po2(-1))])
    zero_points = const("q_zps", np.array([3, -2, 0, 5], f32).reshape(4, 1, 1))  # odd ones: ties to odd
    quant("Quant", ["x", per_channel, zero_points, const("q_b5", np.array(5.0, f32))])
    graph = helper.make_graph(
        nodes,
        "op_zoo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *ZOO_SHAPE])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes.get(o)) for o in outputs],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(qonnx, 1)]
    )
    onnx.save(model, path)
    return path


def two_inputs_model(path: Path) -> Path:
    """Two inputs (one broadcast against the other) and two outputs: ports in order, npz in and out."""
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
        helper.make_node("Mul", ["a", "a"], ["square"], name="square"),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3, 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1, 4]),
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("sum", "square")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


_ROUNDINGS = list(Rounding)
_OVERFLOWS = list(Overflow)


def every_mode(graph: Graph) -> Graph:
    """The graph with each node's output format cycled through every rounding and overflow mode.

    Formats are what the kernels read, so this exercises casts (TRN_ZERO, RND_CONV, SAT_SYM, WRAP...) that
    the quantize pass never picks. Mutates and returns ``graph``.
    """
    for k, node in enumerate(graph.nodes):
        fmt = node.output.type.format
        assert isinstance(fmt, Fixed)
        mode = replace(fmt, rounding=_ROUNDINGS[k % 7], overflow=_OVERFLOWS[(k // 7 + k) % 4])
        node.output.type = node.output.type.with_format(mode)
    return graph


def compile_zoo(onnx_path: Path, calib: Path, precision: int) -> Graph:
    """The zoo quantized, with an OOD monitor (on the Gemm's input) so that its ops are simulated too."""
    options = BuildOptions(calib=calib, precision=precision, backend="none", passes="ood")
    return compile_model(onnx_path, options).graph


def write_folder(
    graph: Graph, folder: Path, io: str = "parallel", offchip: frozenset[str] = frozenset()
) -> Path:
    """A build folder for ``graph`` (IR + HLS project in ``io`` style, the weights of the layers in
    ``offchip`` in external memory), as ``fpgac build`` writes one."""
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    board = get_board("zcu104")
    plan.merge(vitis_plan(graph, board, io, model=graph.name, offchip=offchip), prefix="hls/")
    return write_plan(plan, folder, force=True)


def _normal(rng: np.random.Generator, *shape: int) -> Param:
    return Param((rng.standard_normal(shape) * 0.4).astype(np.float32))


def residual_cnn() -> Graph:
    """4x6x6 -> conv 3x3 (8) -> ReLU -> conv 3x3 (8) + shortcut -> ReLU -> max pool 2 -> affine
    -> average pool 3x3 (padded) -> global average pool (a 3x3 AveragePool) -> flatten -> dense 3."""
    rng = np.random.default_rng(7)
    graph = Graph("folded_cnn")
    x = graph.add_input("image", TensorType((4, 6, 6)))
    conv_attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    c1 = graph.add("conv", [x], name="c1", attrs=conv_attrs,
                   params={"weight": _normal(rng, 8, 4, 3, 3), "bias": _normal(rng, 8)})  # fmt: skip
    r1 = graph.add("relu", [c1.output], name="r1")
    c2 = graph.add("conv", [r1.output], name="c2", attrs=conv_attrs,
                   params={"weight": _normal(rng, 8, 8, 3, 3), "bias": _normal(rng, 8)})  # fmt: skip
    add = graph.add("add", [c2.output, r1.output], name="res")
    r2 = graph.add("relu", [add.output], name="r2")
    pool_attrs = {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1],
                  "ceil_mode": False}  # fmt: skip
    mp = graph.add("max_pool", [r2.output], name="mp", attrs=pool_attrs)
    aff = graph.add("affine", [mp.output], name="bn",
                    params={"scale": Param(rng.uniform(0.5, 2, (8, 1, 1)).astype(np.float32)),
                            "shift": Param(rng.normal(0, 0.3, (8, 1, 1)).astype(np.float32))})  # fmt: skip
    gap_attrs = {"kernel": [3, 3], "strides": [1, 1], "pads": [0, 0, 0, 0],
                 "ceil_mode": False, "count_include_pad": False}  # fmt: skip
    ap_attrs = {"kernel": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "ceil_mode": False,
                "count_include_pad": False}  # fmt: skip
    ap = graph.add("avg_pool", [aff.output], name="ap", attrs=ap_attrs)
    gap = graph.add("avg_pool", [ap.output], name="gap", attrs=gap_attrs)
    flat = graph.add("reshape", [gap.output], name="flat", attrs={"shape": [8]})
    fc = graph.add("dense", [flat.output], name="fc",
                   params={"weight": _normal(rng, 3, 8), "bias": _normal(rng, 3)})  # fmt: skip
    graph.set_outputs([fc.output])
    calib = rng.uniform(-1, 1, (32, 4, 6, 6)).astype(np.float32)
    return Quantize(precision=10, calib=(calib,)).run(graph)


def pixel_cnn() -> Graph:
    """4x6x6 -> conv 3x3 (4) -> ReLU, feeding conv 3x3 (4) and conv 1x1 (2); concat over channels of
    [conv 3x3, ReLU, conv 1x1] (10) -> ReLU -> channel shuffle of 2 groups (reshape to 2x5x6x6,
    transpose of the two channel axes, reshape back) -> conv 1x1 (4) -> global average pool -> dense 3.

    The concatenation's inputs (4, 4 and 2 channels) fold to beats of 1 or 2 lanes, or travel whole."""
    rng = np.random.default_rng(11)
    graph = Graph("pixel_cnn")
    x = graph.add_input("image", TensorType((4, 6, 6)))
    conv3 = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    conv1 = {**conv3, "pads": [0, 0, 0, 0]}
    c1 = graph.add("conv", [x], name="c1", attrs=conv3,
                   params={"weight": _normal(rng, 4, 4, 3, 3), "bias": _normal(rng, 4)})  # fmt: skip
    r1 = graph.add("relu", [c1.output], name="r1")
    c2 = graph.add("conv", [r1.output], name="c2", attrs=conv3,
                   params={"weight": _normal(rng, 4, 4, 3, 3), "bias": _normal(rng, 4)})  # fmt: skip
    c3 = graph.add("conv", [r1.output], name="c3", attrs=conv1,
                   params={"weight": _normal(rng, 2, 4, 1, 1), "bias": _normal(rng, 2)})  # fmt: skip
    cat = graph.add("concat", [c2.output, r1.output, c3.output], name="cat", attrs={"axis": 0})
    r2 = graph.add("relu", [cat.output], name="r2")
    split = graph.add("reshape", [r2.output], name="split", attrs={"shape": [2, 5, 6, 6]})
    swap = graph.add("transpose", [split.output], name="swap", attrs={"perm": [1, 0, 2, 3]})
    merge = graph.add("reshape", [swap.output], name="merge", attrs={"shape": [10, 6, 6]})
    c4 = graph.add("conv", [merge.output], name="c4", attrs=conv1,
                   params={"weight": _normal(rng, 4, 10, 1, 1), "bias": _normal(rng, 4)})  # fmt: skip
    gap_attrs = {"kernel": [6, 6], "strides": [1, 1], "pads": [0, 0, 0, 0],
                 "ceil_mode": False, "count_include_pad": False}  # fmt: skip
    gap = graph.add("avg_pool", [c4.output], name="gap", attrs=gap_attrs)
    flat = graph.add("reshape", [gap.output], name="flat", attrs={"shape": [4]})
    fc = graph.add("dense", [flat.output], name="fc",
                   params={"weight": _normal(rng, 3, 4), "bias": _normal(rng, 3)})  # fmt: skip
    graph.set_outputs([fc.output])
    calib = rng.uniform(-1, 1, (32, 4, 6, 6)).astype(np.float32)
    return Quantize(precision=10, calib=(calib,)).run(graph)
