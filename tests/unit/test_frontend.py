"""The ONNX frontend on small hand-built graphs, two torch exports and the onnx package's light models.

Each lowering test asserts the IR ops and per-sample shapes, and where the graph
runs, that the float interpreter agrees with onnxruntime (atol 1e-4 on values of
order 1: both compute in float32, only summation order differs).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.build import load_model
from fpgac.errors import FpgacError
from fpgac.frontend.constants import BatchDim, FoldError
from fpgac.frontend.context import FrontendError
from fpgac.frontend.onnx import SUPPORTED_OPS
from fpgac.interp import run_float
from fpgac.ir import Graph, verify
from fpgac.ir.boundary import array_shape

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
RNG = np.random.default_rng(0)


def weights(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def save_model(
    folder: Path,
    nodes: Sequence[onnx.NodeProto],
    in_shape: Sequence[int | str],
    out_shape: Sequence[int | str] | None,
    inits: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    name: str = "model.onnx",
    in_type: int = TensorProto.FLOAT,
) -> Path:
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info("x", in_type, list(in_shape))],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, None if out_shape is None else list(out_shape)
            )
        ],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = folder / name
    onnx.save(model, path)
    return path


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def assert_matches_ort(path: Path, graph: Graph, batch: int = 2, atol: float = 1e-4) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = [batch, *array_shape(graph, graph.inputs[0])]  # the arrays onnxruntime takes
    x = RNG.standard_normal(shape).astype(np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    got = run_float(graph, x)[0]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol, rtol=1e-4)


def lower(
    tmp_path: Path, nodes: Sequence[onnx.NodeProto], in_shape: Sequence[int | str], **kw: object
) -> Graph:
    path = save_model(tmp_path, nodes, in_shape, None, **kw)  # type: ignore[arg-type]
    graph = load_model(path)
    verify(graph)
    assert_matches_ort(path, graph)
    return graph


def lower_error(
    tmp_path: Path, nodes: Sequence[onnx.NodeProto], in_shape: Sequence[int | str], **kw: object
) -> str:
    path = save_model(tmp_path, nodes, in_shape, None, **kw)  # type: ignore[arg-type]
    with pytest.raises(FrontendError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith("model.onnx: ")
    return message


# -- torch exports ---------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["torchscript", "dynamo"])
def torch_export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.fc = torch.nn.Linear(4 * 6 * 6, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn(self.conv(x)))
            return self.fc(y.view(y.size(0), -1))

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
        net.bn.weight.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("torch") / f"net_{request.param}.onnx"
    x = torch.randn(2, 3, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if request.param == "torchscript":
            torch.onnx.export(
                net, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, do_constant_folding=False,
            )  # fmt: skip
        else:
            torch.onnx.export(
                net, (x,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False,
            )  # fmt: skip
    return path


def test_torch_export_lowers_to_conv_relu_reshape_dense(torch_export: Path) -> None:
    graph = load_model(torch_export)
    assert ops(graph) == ["conv", "relu", "reshape", "dense"]  # the BatchNorm folded into the conv
    assert graph.inputs[0].name == "x" and graph.inputs[0].shape == (3, 6, 6)
    assert [v.name for v in graph.outputs] == ["y"] and graph.outputs[0].shape == (5,)
    assert graph.metadata["inputs"] == {"x": ["N", 3, 6, 6]}
    assert graph.metadata["outputs"] == {"y": ["N", 5]}
    assert graph.metadata["source"] == torch_export.name and graph.metadata["opset"] >= 9
    for batch in (1, 3):
        assert_matches_ort(torch_export, graph, batch=batch)


# -- the onnx package's light models (opset 9, ConstantOfShape weights, initializers as inputs) ----
@pytest.mark.parametrize("path", sorted(LIGHT.glob("light_*.onnx")), ids=lambda p: p.stem)
def test_light_models_load_and_verify(path: Path) -> None:
    graph = load_model(path)
    verify(graph)
    assert len(graph.inputs) == 1 and graph.inputs[0].shape == (3, 224, 224)
    assert graph.metadata["opset"] == 9 and graph.metadata["batch"] == 1
    assert "affine" not in ops(graph) or path.stem == "light_densenet121"  # BN after concat stays


def test_light_models_are_all_there() -> None:
    assert len(list(LIGHT.glob("light_*.onnx"))) == 9


# -- dense -----------------------------------------------------------------------------------------
def test_gemm_folds_trans_b_alpha_beta(tmp_path: Path) -> None:
    b, c = weights(8, 5), weights(1, 5)
    node = helper.make_node("Gemm", ["x", "B", "C"], ["y"], alpha=0.5, beta=2.0)
    graph = lower(tmp_path, [node], ["N", 8], inits={"B": b, "C": c})
    (dense,) = graph.nodes
    assert dense.op == "dense" and dense.output.shape == (5,)
    np.testing.assert_allclose(dense.params["weight"].data, 0.5 * b.T)
    np.testing.assert_allclose(dense.params["bias"].data, 2.0 * c[0])


def test_gemm_trans_a_is_an_error(tmp_path: Path) -> None:
    node = helper.make_node("Gemm", ["x", "B"], ["y"], transA=1, name="fc")
    message = lower_error(tmp_path, [node], [8, 4], inits={"B": weights(8, 5)})
    assert "node 'fc' (op Gemm)" in message and "transA" in message


def test_matmul_add_becomes_dense_with_bias(tmp_path: Path) -> None:
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])]
    graph = lower(tmp_path, nodes, ["N", 3, 6], inits={"W": weights(6, 4), "b": weights(4)})
    assert ops(graph) == ["dense"] and graph.outputs[0].shape == (3, 4)
    assert graph.outputs[0].name == "y"


# -- convolution and normalization -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("in_shape", "w_shape", "attrs", "out_shape"),
    [
        (["N", 3, 10], (4, 3, 3), {"pads": [1, 1]}, (4, 10)),
        (["N", 4, 9, 9], (4, 1, 3, 3), {"group": 4, "strides": [2, 2], "auto_pad": "SAME_UPPER"}, (4, 5, 5)),
        (["N", 4, 8, 8], (6, 2, 3, 3), {"group": 2, "auto_pad": "SAME_LOWER", "strides": [2, 2]}, (6, 4, 4)),
        (["N", 2, 9, 9], (3, 2, 3, 3), {"dilations": [2, 2], "auto_pad": "VALID"}, (3, 5, 5)),
        (["N", 2, 4, 5, 5], (3, 2, 2, 3, 3), {"pads": [0, 1, 1, 1, 1, 1]}, (3, 4, 5, 5)),
    ],
)
def test_conv_variants(tmp_path: Path, in_shape: list, w_shape: tuple, attrs: dict, out_shape: tuple) -> None:
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], **attrs)
    graph = lower(tmp_path, [node], in_shape, inits={"W": weights(*w_shape), "B": weights(w_shape[0])})
    assert ops(graph) == ["conv"] and graph.outputs[0].shape == out_shape


def test_batchnorm_alone_is_an_affine_with_channel_params(tmp_path: Path) -> None:
    node = helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], epsilon=1e-3)
    inits = {"g": weights(3), "b": weights(3), "m": weights(3), "v": np.abs(weights(3)) + 0.5}
    graph = lower(tmp_path, [node], ["N", 3, 4, 4], inits=inits)
    (affine,) = graph.nodes
    assert affine.op == "affine" and affine.params["scale"].shape == (3, 1, 1)


def test_conv_batchnorm_folds_into_conv(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"]),
    ]
    inits = {"W": weights(3, 2, 3, 3), "g": weights(3), "b": weights(3), "m": weights(3), "v": np.ones(3)}
    graph = lower(tmp_path, nodes, ["N", 2, 5, 5], inits={k: np.float32(v) for k, v in inits.items()})
    assert ops(graph) == ["conv"] and "bias" in graph.nodes[0].params
    assert graph.outputs[0].name == "y"


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (1, 3, 1, 1)])
def test_prelu_slope_shapes(tmp_path: Path, slope_shape: tuple) -> None:
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    graph = lower(tmp_path, [node], ["N", 3, 4, 4], inits={"s": weights(*slope_shape)})
    assert ops(graph) == ["prelu"] and len(graph.nodes[0].params["slope"].shape) <= 3


# -- activations -----------------------------------------------------------------------------------
def test_clip_from_attributes_before_opset_11(tmp_path: Path) -> None:
    graph = lower(tmp_path, [helper.make_node("Clip", ["x"], ["y"], min=0.0, max=6.0)], ["N", 5], opset=9)
    assert ops(graph) == ["clip"] and graph.nodes[0].attrs == {"min": 0.0, "max": 6.0}


def test_clip_from_inputs_and_relu_form(tmp_path: Path) -> None:
    node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
    graph = lower(tmp_path, [node], ["N", 5], inits={"lo": np.float32(0), "hi": np.float32(6)})
    assert graph.nodes[0].attrs == {"min": 0.0, "max": 6.0}
    graph = lower(
        tmp_path, [helper.make_node("Clip", ["x", "lo"], ["y"])], ["N", 5], inits={"lo": np.float32(0)}
    )
    assert ops(graph) == ["relu"]


@pytest.mark.parametrize(
    ("op", "attrs", "ir_op"),
    [
        ("Relu", {}, "relu"),
        ("LeakyRelu", {"alpha": 0.2}, "leaky_relu"),
        ("Sigmoid", {}, "sigmoid"),
        ("HardSigmoid", {"alpha": 0.3}, "hard_sigmoid"),
        ("Tanh", {}, "tanh"),
        ("Elu", {"alpha": 0.7}, "elu"),
        ("Selu", {}, "selu"),
        ("LRN", {"size": 3}, "lrn"),
    ],
)
def test_unary_ops(tmp_path: Path, op: str, attrs: dict, ir_op: str) -> None:
    graph = lower(tmp_path, [helper.make_node(op, ["x"], ["y"], **attrs)], ["N", 4, 3, 3])
    assert ops(graph) == [ir_op]


def test_softmax_before_opset_13_flattens_from_axis(tmp_path: Path) -> None:
    graph = lower(tmp_path, [helper.make_node("Softmax", ["x"], ["y"])], ["N", 3, 2, 2], opset=11)
    assert ops(graph) == ["reshape", "softmax", "reshape"] and graph.nodes[1].attrs == {"axis": 0}
    assert graph.outputs[0].shape == (3, 2, 2) and graph.outputs[0].name == "y"


def test_softmax_opset_13_is_one_axis(tmp_path: Path) -> None:
    graph = lower(tmp_path, [helper.make_node("Softmax", ["x"], ["y"], axis=1)], ["N", 3, 2, 2], opset=13)
    assert ops(graph) == ["softmax"] and graph.nodes[0].attrs == {"axis": 0}


# -- pooling and reductions ------------------------------------------------------------------------
def test_pools(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node(
            "AveragePool", ["p"], ["q"], kernel_shape=[2, 2], pads=[1, 1, 0, 0], count_include_pad=1
        ),
        helper.make_node("GlobalAveragePool", ["q"], ["y"]),
    ]
    graph = lower(tmp_path, nodes, ["N", 2, 8, 8])
    assert ops(graph) == ["max_pool", "avg_pool", "reduce"]
    assert [n.output.shape for n in graph.nodes] == [(2, 4, 4), (2, 4, 4), (2, 1, 1)]
    assert graph.nodes[1].attrs["count_include_pad"] is True


def test_reduce_axes_attribute_and_input(tmp_path: Path) -> None:
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)
    graph = lower(tmp_path, [node], ["N", 3, 4, 4], opset=13)
    assert graph.nodes[0].attrs == {"mode": "mean", "axes": [1, 2], "keepdims": False}
    node = helper.make_node("ReduceMax", ["x", "axes"], ["y"])
    graph = lower(tmp_path, [node], ["N", 3, 4, 4], opset=18, inits={"axes": np.array([-1])})
    assert graph.nodes[0].attrs == {"mode": "max", "axes": [2], "keepdims": True}


# -- shapes ----------------------------------------------------------------------------------------
def test_dynamic_batch_shape_chain_folds(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Cast", ["target"], ["target64"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["x", "target64"], ["y"]),
    ]
    inits = {"zero": np.array(0), "axes": np.array([0]), "minus1": np.array([-1])}
    graph = lower(tmp_path, nodes, ["batch", 2, 3, 4], inits=inits)
    assert ops(graph) == ["reshape"] and graph.outputs[0].shape == (24,)
    assert graph.metadata["batch"] is None


def test_squeeze_unsqueeze_flatten_transpose(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Unsqueeze", ["x"], ["u"], axes=[2]),
        helper.make_node("Transpose", ["u"], ["t"], perm=[0, 3, 2, 1]),
        helper.make_node("Squeeze", ["t"], ["s"], axes=[2]),
        helper.make_node("Flatten", ["s"], ["y"]),
    ]
    graph = lower(tmp_path, nodes, ["N", 3, 4], opset=11)
    # The Transpose moved before the Unsqueeze into the input's layout; Squeeze and Flatten are one reshape.
    assert ops(graph) == ["reshape"] and graph.input_layouts == {"x": (1, 0)}
    assert graph.outputs[0].shape == (12,)


def test_identity_reshape_and_dropout_vanish(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Dropout", ["r"], ["d"]),
        helper.make_node("Identity", ["d"], ["i"]),
        helper.make_node("Relu", ["i"], ["y"]),
    ]
    graph = lower(tmp_path, nodes, ["N", 3, 4], inits={"shape": np.array([0, 3, -1])})
    assert ops(graph) == ["relu"]


def test_pad_input_and_attribute_forms(tmp_path: Path) -> None:
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")
    graph = lower(tmp_path, [node], ["N", 2, 4, 4], inits={"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1])})
    assert graph.nodes[0].attrs == {"pads": [0, 1, 2, 0, 2, 1], "mode": "reflect", "value": 0.0}
    node = helper.make_node("Pad", ["x"], ["y"], pads=[0, 0, 1, 0, 0, 1], value=1.5)
    graph = lower(tmp_path, [node], ["N", 2, 4], opset=9)
    assert graph.outputs[0].shape == (2, 6)


# -- arithmetic ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "const_first"),
    [("Add", False), ("Add", True), ("Sub", False), ("Sub", True), ("Mul", True), ("Div", False)],
)
def test_arithmetic_with_constant_is_affine(tmp_path: Path, op: str, const_first: bool) -> None:
    inputs = ["c", "x"] if const_first else ["x", "c"]
    graph = lower(
        tmp_path, [helper.make_node(op, inputs, ["y"])], ["N", 3, 2], inits={"c": weights(3, 1) + 3}
    )
    assert ops(graph) == ["affine"] and graph.nodes[0].params["shift"].shape == (3, 1)


def test_constant_divided_by_activation_is_an_error(tmp_path: Path) -> None:
    message = lower_error(
        tmp_path, [helper.make_node("Div", ["c", "x"], ["y"])], ["N", 3], inits={"c": weights(3)}
    )
    assert "(op Div)" in message and "constant / activation" in message


def test_value_value_ops_and_sum(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Mul", ["x", "r"], ["m"]),
        helper.make_node("Sub", ["m", "r"], ["s"]),
        helper.make_node("Sum", ["s", "x", "r", "c"], ["y"]),
    ]
    graph = lower(tmp_path, nodes, ["N", 2, 3], inits={"c": weights(3)})
    assert ops(graph) == ["relu", "mul", "sub", "add", "affine"]


def test_concat_of_branches(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Concat", ["x", "r"], ["y"], axis=-1)]
    graph = lower(tmp_path, nodes, ["N", 2, 3])
    assert graph.nodes[-1].attrs == {"axis": 1} and graph.outputs[0].shape == (2, 6)


# -- batch mixing and other errors -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("node", "inits", "fragment"),
    [
        (helper.make_node("Reshape", ["x", "s"], ["y"]), {"s": np.array([-1])}, "batch"),
        (helper.make_node("Flatten", ["x"], ["y"], axis=0), {}, "batch"),
        (helper.make_node("Flatten", ["x"], ["y"], axis=2), {}, "batch"),
        (helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2]), {}, "batch axis"),
        (helper.make_node("Concat", ["x", "x"], ["y"], axis=0), {}, "batch axis"),
        (helper.make_node("Softmax", ["x"], ["y"], axis=0), {}, "batch axis"),
        (helper.make_node("ReduceMean", ["x"], ["y"], axes=[0]), {}, "batch axis"),
        (helper.make_node("ReduceMean", ["x"], ["y"]), {}, "batch axis"),
        (helper.make_node("Pad", ["x", "p"], ["y"]), {"p": np.array([1, 0, 0, 0, 0, 0])}, "batch axis"),
        (helper.make_node("Add", ["x", "c"], ["y"]), {"c": np.ones((4, 3, 2), np.float32)}, "batch axis"),
    ],
)
def test_batch_mixing_is_rejected(tmp_path: Path, node: onnx.NodeProto, inits: dict, fragment: str) -> None:
    message = lower_error(tmp_path, [node], ["N", 3, 2], inits=inits, opset=13)
    assert f"(op {node.op_type})" in message and fragment in message


def test_unsupported_op_message(tmp_path: Path) -> None:
    node = helper.make_node("Erf", ["x"], ["y"], name="Foo_3")
    message = lower_error(tmp_path, [node], ["N", 3])
    assert message == (
        "model.onnx: node 'Foo_3' (op Erf) is not supported; "
        f"the README's 'Supported ONNX ops' lists the {len(SUPPORTED_OPS)} that fpgac reads"
    )


def test_first_unsupported_op_is_named_before_converting(tmp_path: Path) -> None:
    """A torch LSTM export: the Transpose to time-first (perm [1, 0, 2] moves the batch axis) fails only
    because of the LSTM after it, so the error names the LSTM."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="/Transpose", perm=[1, 0, 2]),
        helper.make_node("LSTM", ["t", "w", "r"], ["y"], name="/lstm/LSTM", hidden_size=4),
    ]
    inits = {"w": weights(1, 16, 3), "r": weights(1, 16, 4)}
    message = lower_error(tmp_path, nodes, ["N", 5, 3], inits=inits)
    assert message.startswith("model.onnx: node '/lstm/LSTM' (op LSTM) is not supported"), message


def test_unnamed_nodes_get_op_and_index_names(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Tanh", ["r"], ["y"])]
    graph = lower(tmp_path, nodes, ["N", 3])
    assert [n.name for n in graph.nodes] == ["Relu_0", "Tanh_1"]


def test_undefined_input_names_node(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], name="conv1")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_empty_tensor_value_info("y")],
    )
    path = tmp_path / "model.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    )
    with pytest.raises(FrontendError, match=r"^model\.onnx: .*'W'"):
        load_model(path)


def test_input_dtype_and_dynamic_dims_are_checked(tmp_path: Path) -> None:
    message = lower_error(
        tmp_path, [helper.make_node("Relu", ["x"], ["y"])], ["N", 3], in_type=TensorProto.INT64
    )
    assert "'x'" in message and "INT64" in message
    message = lower_error(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], ["N", "width"])
    assert "'x'" in message and "dim 1" in message and "width" in message


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated", "extension", "directory"])
def test_bad_files(tmp_path: Path, kind: str) -> None:
    good = save_model(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], ["N", 3], None, name="good.onnx")
    path = tmp_path / "model.onnx"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\xff\xfe not a protobuf \x00\x01")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:40])
    elif kind == "extension":
        path = tmp_path / "model.txt"
        path.write_bytes(good.read_bytes())
    elif kind == "directory":
        path = tmp_path / "dir.onnx"
        path.mkdir()
    with pytest.raises(FpgacError) as info:
        load_model(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(path.name + ": ")


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (helper.make_node("HardSwish", ["x"], ["y"]), ["hard_sigmoid", "mul"]),
        (helper.make_node("ReduceSum", ["x", "axes"], ["y"]), ["reduce", "affine"]),
        (helper.make_node("GlobalMaxPool", ["x"], ["y"]), ["reduce"]),
        (helper.make_node("Neg", ["x"], ["y"]), ["affine"]),
    ],
)
def test_multi_node_and_derived_lowerings(tmp_path: Path, node: onnx.NodeProto, expected: list[str]) -> None:
    graph = lower(tmp_path, [node], ["N", 2, 3, 3], inits={"axes": np.array([1, 3])})
    assert ops(graph) == expected


def test_batch_dim_arithmetic() -> None:
    n = BatchDim()
    assert n * 4 == BatchDim(4) and (n * 6) // 3 == BatchDim(2) and n + 0 == n
    assert (n == -1) is False and (n == 0) is False
    for bad in (lambda: n + 1, lambda: n == 2, lambda: int(n), lambda: n // 5):
        with pytest.raises(FoldError):
            bad()


def test_scalar_per_sample_values_keep_scalar_params(tmp_path: Path) -> None:
    nodes = [helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Add", ["n", "c"], ["y"])]
    graph = lower(tmp_path, nodes, ["N"], inits={"c": np.float32(2.0)})
    assert ops(graph) == ["affine"] and graph.nodes[0].params["scale"].shape == ()
    assert graph.outputs[0].shape == () and graph.outputs[0].name == "y"


def test_too_new_opset_is_refused(tmp_path: Path) -> None:
    message = lower_error(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], ["N", 3], opset=99)
    assert "opset 99" in message


def test_old_opset_is_upgraded(tmp_path: Path) -> None:
    """Opset < 7 models are converted by onnx's version converter, then lowered as usual."""
    path = save_model(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], ["N", 3], ["N", 3], opset=5)
    graph = load_model(path)  # onnxruntime itself refuses opset 5, so there is no reference run
    assert [n.op for n in graph.nodes] == ["relu"] and graph.metadata["opset"] == 13


def test_external_weights_and_two_inputs(tmp_path: Path) -> None:
    w = weights(64, 32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 64]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 32]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "model.onnx"
    onnx.save(model, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").is_file()
    loaded = load_model(path)
    assert [v.name for v in loaded.inputs] == ["a", "b"] and ops(loaded) == ["dense", "add"]
    np.testing.assert_array_equal(loaded.nodes[0].params["weight"].data, w.T)
