"""XNOR-popcount layers: binary weights on bipolar inputs, found from the IR, costed and emitted as such."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.analysis import estimate as estimate_module
from fpgac.analysis.estimate import estimate
from fpgac.analysis.report import node_weight_bits
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.build import BuildOptions, compile_model
from fpgac.ir import Fixed, Graph
from fpgac.ir.bipolar import is_bipolar, is_xnor_layer

DOMAIN = "qonnx.custom_op.general"
SHAPE = (4, 6, 6)


def bnn_model(
    path: Path,
    between: str = "",
    conv_weight: np.ndarray | None = None,
    input_scale: np.ndarray | None = None,
) -> Path:
    """x (N, 4, 6, 6) -> BipolarQuant (2**-1) -> two binary convs: a grouped, strided, padded one (+-0.25,
    with a bias), a graph output; and a padded one (+-0.5) -> 1-bit signed Quant (bipolar) -> MaxPool 2
    -> Flatten -> Gemm (+-0.125, with a bias). ``between`` inserts an op after the 1-bit Quant
    (``Relu``: no longer bipolar); ``conv_weight`` replaces the second conv's weights, ``input_scale`` the
    BipolarQuant's scale."""
    rng = np.random.default_rng(0)
    f32 = np.float32

    def binary(scale: float, *shape: int) -> np.ndarray:
        return np.where(rng.normal(size=shape) >= 0, scale, -scale).astype(f32)

    inits = {
        "s": np.array(0.5, f32),
        "xs": np.array(0.5, f32) if input_scale is None else input_scale.astype(f32),
        "z": np.array(0.0, f32),
        "one": np.array(1.0, f32),
        "w0": binary(0.25, 6, 2, 3, 3),
        "b0": rng.normal(0, 0.3, 6).astype(f32),
        "w1": binary(0.5, 8, 4, 3, 3) if conv_weight is None else conv_weight,
        "b1": rng.normal(0, 0.3, 8).astype(f32),
        "w2": binary(0.125, 72, 5),
        "b2": rng.normal(0, 0.3, 5).astype(f32),
    }
    nodes = [
        helper.make_node("BipolarQuant", ["x", "xs"], ["xq"], domain=DOMAIN),
        helper.make_node("Conv", ["xq", "w0", "b0"], ["grouped"], group=2, strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["xq", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Quant", ["c1", "s", "z", "one"], ["q1"], domain=DOMAIN, signed=1, narrow=0),
    ]
    if between:
        nodes.append(helper.make_node(between, ["q1"], ["q1b"]))
    nodes += [
        helper.make_node(
            "MaxPool", ["q1b" if between else "q1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Flatten", ["p1"], ["f1"]),
        helper.make_node("Gemm", ["f1", "w2", "b2"], ["fc"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *SHAPE])],
        [
            helper.make_tensor_value_info("grouped", TensorProto.FLOAT, ["N", 6, 3, 3]),
            helper.make_tensor_value_info("fc", TensorProto.FLOAT, ["N", 5]),
        ],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def calibration(folder: Path) -> Path:
    path = folder / "calib.npy"
    np.save(path, np.random.default_rng(1).uniform(-1, 1, (32, *SHAPE)).astype(np.float32))
    return path


def _compiled(tmp_path: Path, **kwargs: object) -> Graph:
    model = bnn_model(tmp_path / "bnn.onnx", **kwargs)  # type: ignore[arg-type]
    return compile_model(model, BuildOptions(calib=calibration(tmp_path), backend="none")).graph


def _layers(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes if is_xnor_layer(n)]


def test_binary_layers_on_bipolar_values_are_xnor_layers(tmp_path: Path) -> None:
    """Both convs read the BipolarQuant; the Gemm reads the 1-bit signed Quant through MaxPool and
    Flatten (ops that only select)."""
    graph = _compiled(tmp_path)
    assert _layers(graph) == ["conv", "conv", "dense"]
    dense = next(n for n in graph.nodes if n.op == "dense")
    assert is_bipolar(dense.inputs[0]) and dense.inputs[0].producer.op == "reshape"  # type: ignore[union-attr]


def test_a_relu_between_leaves_a_sign_weight_layer(tmp_path: Path) -> None:
    """ReLU turns -s into 0: the Gemm's input is no longer bipolar (its weights still need no DSP)."""
    assert _layers(_compiled(tmp_path, between="Relu")) == ["conv", "conv"]


def test_per_channel_bipolar_scales_are_not_one_sign_bit(tmp_path: Path) -> None:
    """Two scales over the channels: the values are +-s per channel, no longer one sign bit each."""
    scales = np.array([0.5, 0.25, 0.5, 0.5]).reshape(4, 1, 1)
    assert _layers(_compiled(tmp_path, input_scale=scales)) == ["dense"]


@pytest.mark.parametrize(
    "weight",
    [
        np.where(np.arange(288).reshape(8, 4, 3, 3) % 3 == 0, 0.0, 0.5),  # ternary: a 0 is no sign
        np.where(np.arange(288).reshape(8, 4, 3, 3) % 2 == 0, 0.25, -0.5),  # two magnitudes in a unit
    ],
)
def test_weights_that_are_not_one_binary_magnitude_are_not_xnor(tmp_path: Path, weight: np.ndarray) -> None:
    assert _layers(_compiled(tmp_path, conv_weight=weight.astype(np.float32))) == ["conv", "dense"]


def test_estimate_costs_xnor_and_popcount_without_dsp(tmp_path: Path) -> None:
    """0 DSPs, and a third or less of the LUTs the same layers cost as sign-weight adds and subtracts."""
    graph, board = _compiled(tmp_path), get_board("zcu104")
    names = [n.name for n in graph.nodes if is_xnor_layer(n)]
    for io in ("parallel", "stream"):
        xnor = {layer.name: layer for layer in estimate(graph, board, io).layers}
        original = estimate_module.is_xnor_layer
        estimate_module.is_xnor_layer = lambda node: False
        try:
            adds = {layer.name: layer for layer in estimate(graph, board, io).layers}
        finally:
            estimate_module.is_xnor_layer = original
        for name in names:
            assert xnor[name].resources.dsp == adds[name].resources.dsp == 0
            assert 0 < 3 * xnor[name].resources.lut <= adds[name].resources.lut, name


def test_report_counts_one_bit_a_weight(tmp_path: Path) -> None:
    """The sign bits the kernels store, plus the bias at its format's width."""
    for node in _compiled(tmp_path).nodes:
        if is_xnor_layer(node):
            bias = node.params["bias"]
            assert isinstance(bias.format, Fixed)
            assert (
                node_weight_bits(node) == node.params["weight"].data.size + bias.data.size * bias.format.width
            )


def test_vitis_emits_xnor_kernels_and_sign_bits(tmp_path: Path) -> None:
    graph, board = _compiled(tmp_path), get_board("zcu104")
    for io, convs in (("parallel", "conv2d_xnor<"), ("stream", "conv_xnor_pixel<")):
        files = vitis_plan(graph, board, io).files
        layers = files["firmware/layers.h"].decode()
        assert layers.count(convs) == 2 and layers.count("dense_xnor<") == 1
        assert "_config, true>" not in layers  # no layer left on the add/subtract path
        weights = [files[name].decode() for name in files if name.startswith("firmware/weights/")]
        assert sum(text.count("static const bool") for text in weights) == 3
