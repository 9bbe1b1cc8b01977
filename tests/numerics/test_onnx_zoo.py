"""Real architectures and PyTorch node tests shipped inside the ``onnx`` package (nothing is downloaded).

``light/`` holds AlexNet, VGG-19, ResNet-50, SqueezeNet, ZFNet, Inception-v1/v2,
DenseNet-121 and ShuffleNet as graphs whose weights are ``ConstantOfShape(0.02)``:
the real topology (opset 9, initializers listed as graph inputs, Caffe2 quirks)
with degenerate weights, so their outputs do not depend on the input (a uniform
softmax, mostly). They are compared as shipped (with onnxruntime and with the
shipped output), and again with every constant replaced by seeded random weights
and the logits compared instead of the softmax, so that a wrong conv, pool, LRN
or concat shows. Where a classifier weight is huge (fc6 of VGG/AlexNet/ZFNet)
the randomized variant compares the features that feed it.

``pytorch-converted/`` and ``pytorch-operator/`` are one-op models with inputs and
expected outputs, run as shipped and upgraded to a current opset. Those in the
supported lists must match; every other one must be refused by ``load_model`` with
a one-line :class:`FpgacError`, so support can neither silently regress nor
silently appear.

Tolerance (see ``compare.assert_close``): ``np.testing.assert_allclose(ours, ref,
rtol=1e-4, atol=1e-4 * max(1, abs(ref).max()))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from fpgac.build import load_model
from fpgac.errors import FpgacError
from fpgac.interp.interpreter import run_float
from fpgac.ir import verify
from tests.numerics.compare import assert_close, assert_round_trips, run_onnxruntime

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"

LIGHT = {
    "alexnet": "light_bvlc_alexnet.onnx",
    "vgg19": "light_vgg19.onnx",
    "resnet50": "light_resnet50.onnx",
    "squeezenet": "light_squeezenet.onnx",
    "zfnet512": "light_zfnet512.onnx",
    "inception_v1": "light_inception_v1.onnx",
    "inception_v2": "light_inception_v2.onnx",
    "densenet121": "light_densenet121.onnx",
    "shufflenet": "light_shufflenet.onnx",
}


def data_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (IR v3 models list every initializer as an input too)."""
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def random_feed(model: onnx.ModelProto, seed: int = 0) -> np.ndarray:
    (info,) = data_inputs(model)
    shape = [d.dim_value for d in info.type.tensor_type.shape.dim]
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# Gemm weights above this many elements (VGG/AlexNet/ZFNet fc6: 37M-103M) are too costly to
# randomize, serialize and load in a test; the randomized variant stops at their input instead.
MAX_RANDOM_WEIGHT = 4_000_000


def _constant_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Shapes of initializers and of ConstantOfShape outputs with a constant shape."""
    initializers = {t.name: t for t in model.graph.initializer}
    shapes = {name: tuple(t.dims) for name, t in initializers.items()}
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in initializers:
            dims = numpy_helper.to_array(initializers[node.input[0]])
            shapes[node.output[0]] = tuple(int(d) for d in dims)
    return shapes


def compared_output(model: onnx.ModelProto) -> str:
    """The tensor the randomized variant compares: the logits, or the input of a huge classifier."""
    shapes = _constant_shapes(model)
    for node in model.graph.node:
        if node.op_type == "Gemm" and np.prod(shapes.get(node.input[1], ())) > MAX_RANDOM_WEIGHT:
            return node.input[0]
    last = model.graph.node[-1]
    if last.op_type == "Softmax" and last.output[0] == model.graph.output[0].name:
        return last.input[0]  # probabilities of random logits are all ~1e-3: compare logits
    return model.graph.output[0].name


def randomize_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """A copy that computes :func:`compared_output` with every float constant seeded random.

    Nodes the compared output does not need are pruned. Conv/Gemm weights get
    LeCun-normal scale so activations stay O(1) through 50 layers; biases and
    BatchNorm shifts/means are small; scales and variances are in [0.5, 1.5] so
    BatchNorm stays defined.
    """
    output = compared_output(model)
    shapes = _constant_shapes(model)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    needed, kept = {output}, []
    for node in reversed(graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    kept.reverse()
    role: dict[str, tuple[onnx.NodeProto, int]] = {}
    for node in kept:
        for index, name in enumerate(node.input):
            role.setdefault(name, (node, index))
    rng = np.random.default_rng(seed)

    def fresh(name: str) -> np.ndarray:
        shape = shapes[name]
        node, index = role[name]
        if node.op_type in ("Conv", "Gemm") and index == 1:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            fan_in = int(np.prod(shape[1:])) if node.op_type == "Conv" or trans_b else shape[0]
            return rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))
        if (node.op_type in ("Conv", "Gemm") and index == 2) or (
            node.op_type == "BatchNormalization" and index in (2, 3)
        ):
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)

    nodes = []
    for node in kept:
        if node.op_type == "ConstantOfShape" and node.output[0] in shapes:
            name = node.output[0]
            graph.initializer.append(numpy_helper.from_array(fresh(name), name))
            graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shapes[name]))
        else:
            nodes.append(node)
    for tensor in graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT and tensor.name in role and tensor.name in shapes:
            tensor.CopyFrom(numpy_helper.from_array(fresh(tensor.name), tensor.name))
    del graph.node[:]
    graph.node.extend(nodes)
    if output != graph.output[0].name:
        inferred = onnx.shape_inference.infer_shapes(model)
        (info,) = [v for v in inferred.graph.value_info if v.name == output]
        del graph.output[:]
        graph.output.append(info)
    return model


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_as_shipped(name: str, tmp_path: Path) -> None:
    """Shipped graph: verifies, round-trips, and matches onnxruntime (degenerate weights, still compared)."""
    path = DATA / "light" / LIGHT[name]
    graph = load_model(path)
    verify(graph)
    x = random_feed(onnx.load(path))
    (ref,) = run_onnxruntime(path, [x])
    (ours,) = run_float(graph, [x])
    assert_close(ours, ref, f"{name}: run_float vs onnxruntime")
    # The shipped output was computed on some other input; with these weights it does not depend on it.
    shipped = numpy_helper.to_array(onnx.load_tensor(str(path).replace(".onnx", "_output_0.pb")))
    assert_close(ours, shipped, f"{name}: run_float vs shipped output")
    assert_round_trips(graph, tmp_path / "graph")


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_random_weights(name: str, tmp_path: Path) -> None:
    """With random weights, every layer's arithmetic shows in the compared logits (or features)."""
    model = randomize_weights(onnx.load(DATA / "light" / LIGHT[name]))
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    graph = load_model(path)
    verify(graph)
    x = random_feed(model)
    (ref,) = run_onnxruntime(path, [x])
    assert np.ptp(ref) > 1e-3, "randomized model still has a degenerate output"
    (ours,) = run_float(graph, [x])
    assert_close(ours, ref, f"{name} (random weights): run_float vs onnxruntime")


# -- pytorch node tests -----------------------------------------------------------------------------------

NODE_DIRS = ("pytorch-converted", "pytorch-operator")
# Almost all node tests are opset 6; the frontend upgrades such models with onnx's version converter
# (to opset 13) before lowering them, so these cases also test that upgrade.

# Cases that must load and match their outputs; every other case must be refused with a FpgacError.
SUPPORTED = {
    "test_MaxPool1d_stride_padding_dilation",  # opset 12
    "test_MaxPool2d_stride_padding_dilation",  # opset 12
    "test_PixelShuffle",  # opset 9: Reshape-Transpose-Reshape
    *(f"test_AvgPool{d}" for d in ("1d", "1d_stride", "2d", "2d_stride", "3d", "3d_stride")),
    "test_AvgPool3d_stride1_pad0_gpu_input",
    *(f"test_BatchNorm{d}_eval" for d in ("1d_3d_input", "2d", "2d_momentum", "3d", "3d_momentum")),
    "test_ConstantPad2d",
    "test_ReflectionPad2d",
    "test_ReplicationPad2d",
    "test_ZeroPad2d",
    "test_operator_pad",
    *(
        f"test_Conv1d{s}"
        for s in ("", "_dilated", "_groups", "_pad1", "_pad1size1", "_pad2", "_pad2size1", "_stride")
    ),
    *(
        f"test_Conv2d{s}"
        for s in (
            "",
            "_depthwise",
            "_depthwise_padded",
            "_depthwise_strided",
            "_depthwise_with_multiplier",
            "_dilated",
            "_groups",
            "_groups_thnn",
            "_no_bias",
            "_padding",
            "_strided",
        )
    ),
    *(
        f"test_Conv3d{s}"
        for s in ("", "_dilated", "_dilated_strided", "_groups", "_no_bias", "_stride", "_stride_padding")
    ),
    "test_operator_conv",
    "test_ELU",
    "test_LeakyReLU",
    "test_LeakyReLU_with_negval",
    "test_Linear",
    "test_Linear_no_bias",
    *(f"test_MaxPool{d}" for d in ("1d", "1d_stride", "2d", "3d", "3d_stride", "3d_stride_padding")),
    "test_operator_maxpool",
    "test_PReLU_1d",
    "test_PReLU_2d",
    "test_PReLU_3d",
    "test_ReLU",
    "test_SELU",
    "test_operator_selu",
    "test_Sigmoid",
    "test_Tanh",
    "test_Softmax",
    "test_Softmin",
    "test_softmax_functional_dim3",
    "test_softmax_lastdim",
    "test_operator_clip",
    "test_operator_concat2",
    "test_operator_flatten",
    "test_operator_permute2",
    "test_operator_reduced_mean",
    "test_operator_reduced_mean_keepdim",
    "test_operator_reduced_sum",
    "test_operator_reduced_sum_keepdim",
    "test_operator_view",
    # Per-sample scalars (input shape (1,) = batch only) through Add/Mul/Tanh/Sigmoid/Neg/Sum:
    "test_operator_basic",
    "test_operator_symbolic_override_nested",
}


def _node_cases() -> list[Path]:
    return [
        case
        for folder in NODE_DIRS
        for case in sorted((DATA / folder).iterdir())
        if (case / "model.onnx").is_file()
    ]


def _tensors(folder: Path, prefix: str) -> list[np.ndarray]:
    files = sorted(folder.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[-1]))
    return [numpy_helper.to_array(onnx.load_tensor(str(p))) for p in files]


def test_node_case_lists_are_real() -> None:
    """A typo in the expected lists would silently leave a case unchecked."""
    names = {case.name for folder in NODE_DIRS for case in (DATA / folder).iterdir()}
    unknown = SUPPORTED - names
    assert not unknown, f"not node test cases: {sorted(unknown)}"


@pytest.mark.parametrize("case", _node_cases(), ids=lambda case: case.parent.name[8:] + "/" + case.name)
def test_node_case(case: Path) -> None:
    """Supported cases match the shipped outputs; the rest are refused with one clear line."""
    path = case / "model.onnx"
    supported = SUPPORTED
    data = case / "test_data_set_0"
    inputs, expected = _tensors(data, "input"), _tensors(data, "output")
    if case.name in supported:
        graph = load_model(path)
        verify(graph)
        outputs = run_float(graph, inputs)
        assert len(outputs) == len(expected)
        for i, (ours, ref) in enumerate(zip(outputs, expected, strict=True)):
            assert_close(ours, ref, f"{case.name} output {i}")
        return
    try:
        load_model(path)
    except FpgacError as exc:
        message = str(exc)
        assert message.strip(), "FpgacError without a message"
        assert "\n" not in message.strip(), f"message is not one line: {message!r}"
    else:
        pytest.fail(f"{case.name} now loads: add it to the supported list to check its outputs")
