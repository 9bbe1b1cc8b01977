"""What real exporters write that a hand-written model would not: old torch BatchNorm1d exports
(Gemm -> Unsqueeze -> BatchNormalization -> Squeeze) and keras2onnx's Flatten over a batch of 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.build import load_model
from fpgac.errors import FpgacError
from fpgac.interp.interpreter import run_float

RNG = np.random.default_rng(4)


def _save(path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], shape: list[object]) -> Path:
    graph = helper.make_graph(
        nodes,
        "quirks",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v.astype(v.dtype), k) for k, v in inits.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _onnxruntime(path: Path, x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def test_batchnorm1d_folds_through_unsqueeze_and_squeeze_into_the_gemm(tmp_path: Path) -> None:
    f32 = np.float32
    inits = {
        "w": RNG.normal(size=(5, 6)).astype(f32),
        "b": RNG.normal(size=5).astype(f32),
        "axes": np.array([2], np.int64),
        "g": RNG.uniform(0.5, 2, 5).astype(f32),
        "beta": RNG.normal(size=5).astype(f32),
        "mean": RNG.normal(size=5).astype(f32),
        "var": RNG.uniform(0.5, 2, 5).astype(f32),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
        helper.make_node("Unsqueeze", ["h", "axes"], ["u"]),
        helper.make_node("BatchNormalization", ["u", "g", "beta", "mean", "var"], ["n"]),
        helper.make_node("Squeeze", ["n", "axes"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    path = _save(tmp_path / "bn1d.onnx", nodes, inits, ["N", 6])
    graph = load_model(path)
    assert [n.op for n in graph.nodes] == ["dense", "relu"]
    x = RNG.normal(size=(16, 6)).astype(f32)
    np.testing.assert_allclose(run_float(graph, [x])[0], _onnxruntime(path, x), rtol=1e-5, atol=1e-5)


def test_flatten_axis_0_of_a_batch_of_one(tmp_path: Path) -> None:
    """keras2onnx with a fixed batch of 1 flattens with axis 0: (1, 2, 3) -> (1, 6), the batch kept."""
    w = RNG.normal(size=(6, 4)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=0), helper.make_node("MatMul", ["f", "w"], ["y"])]
    path = _save(tmp_path / "flat0.onnx", nodes, {"w": w}, [1, 2, 3])
    graph = load_model(path)
    x = RNG.normal(size=(1, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, [x])[0], _onnxruntime(path, x), rtol=1e-5, atol=1e-5)
    batch = RNG.normal(size=(5, 2, 3)).astype(np.float32)  # fpgac runs any batch of such samples
    np.testing.assert_allclose(run_float(graph, [batch])[0], batch.reshape(5, 6) @ w, rtol=1e-5, atol=1e-5)


def test_tf2onnx_transpose_before_flatten_is_absorbed_into_the_dense_weights(tmp_path: Path) -> None:
    """tf2onnx's NHWC graph: Transpose to NCHW after the input, Conv, Transpose back to NHWC, Reshape,
    MatMul. The second transpose becomes a permutation of the MatMul's weight rows (no layer)."""
    f32 = np.float32
    inits = {
        "k": RNG.normal(size=(4, 2, 3, 3)).astype(f32),
        "shape": np.array([-1, 144], np.int64),
        "w": RNG.normal(size=(144, 5)).astype(f32),
    }
    nodes = [
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "k"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    path = _save(tmp_path / "tf2onnx.onnx", nodes, inits, ["N", 6, 6, 2])
    graph = load_model(path)
    assert [n.op for n in graph.nodes] == ["conv", "relu", "reshape", "dense"]
    x = RNG.normal(size=(8, 6, 6, 2)).astype(f32)
    np.testing.assert_allclose(run_float(graph, [x])[0], _onnxruntime(path, x), rtol=1e-4, atol=1e-4)


def test_transpose_of_unit_axes_over_a_batch_of_one_is_a_reshape(tmp_path: Path) -> None:
    """A fixed batch of 1: Transpose perm [1, 0, 2] of (1, 1, 4) moves the batch axis but no data."""
    w = RNG.normal(size=(4, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["t", "w"], ["y"]),
    ]
    path = _save(tmp_path / "unit_perm.onnx", nodes, {"w": w}, [1, 1, 4])
    graph = load_model(path)
    assert "transpose" not in [n.op for n in graph.nodes]
    x = RNG.normal(size=(1, 1, 4)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, [x])[0], _onnxruntime(path, x), rtol=1e-5, atol=1e-5)


def test_batchnorm_over_the_batch_axis_between_transposes_at_batch_one(tmp_path: Path) -> None:
    """tf2onnx, a Keras BatchNormalization over axis 0 of a fixed batch of 1: Transpose perm [1, 0] to
    (C, 1), BatchNormalization with one-element parameters, Transpose back. A scalar affine map, no
    transpose left."""
    f32 = np.float32
    inits = {
        "w": RNG.normal(size=(6, 5)).astype(f32),
        "g": np.array([1.5], f32),
        "beta": np.array([-0.25], f32),
        "mean": np.array([0.5], f32),
        "var": np.array([2.0], f32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Transpose", ["h"], ["t"], perm=[1, 0]),
        helper.make_node("BatchNormalization", ["t", "g", "beta", "mean", "var"], ["n"], epsilon=1e-3),
        helper.make_node("Transpose", ["n"], ["u"], perm=[1, 0]),
        helper.make_node("Relu", ["u"], ["y"]),
    ]
    path = _save(tmp_path / "bn_batch_axis.onnx", nodes, inits, [1, 6])
    graph = load_model(path)
    assert "transpose" not in [n.op for n in graph.nodes]
    x = RNG.normal(size=(1, 6)).astype(f32)
    np.testing.assert_allclose(run_float(graph, [x])[0], _onnxruntime(path, x), rtol=1e-5, atol=1e-5)


def tf2onnx_channels_last(path: Path, rank: int) -> Path:
    """tf2onnx's export of a Keras Conv2D (``rank`` 2, NHWC input) or Conv1D (``rank`` 1, NWC) classifier:
    Transpose to channels first, Conv, Relu, Transpose back to channels last, Reshape, Gemm."""
    f32 = np.float32
    spatial = [5, 4][:rank] if rank == 2 else [9]
    channels, filters = 3, 4
    kernel = [3] * rank
    flat = filters * int(np.prod(spatial))
    inits = {
        "k": RNG.normal(size=(filters, channels, *kernel)).astype(f32) / 3,
        "kb": RNG.normal(size=filters).astype(f32) / 4,
        "shape": np.array([-1, flat], np.int64),
        "w": RNG.normal(size=(flat, 5)).astype(f32) / 6,
        "b": RNG.normal(size=5).astype(f32),
    }
    first = [0, rank + 1, *range(1, rank + 1)]
    nodes = [
        helper.make_node("Transpose", ["x"], ["channels_first"], perm=first),
        helper.make_node("Conv", ["channels_first", "k", "kb"], ["c"], pads=[1] * 2 * rank),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["channels_last"], perm=[int(a) for a in np.argsort(first)]),
        helper.make_node("Reshape", ["channels_last", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "w", "b"], ["y"]),
    ]
    return _save(path, nodes, inits, ["N", *spatial, channels])


@pytest.mark.parametrize(("rank", "layout"), [(2, "NHWC"), (1, "NWC")])
def test_channels_last_input_is_the_graph_boundary_not_a_transpose(
    tmp_path: Path, rank: int, layout: str
) -> None:
    """The input's Transpose to channels first is no layer: the graph takes the channels-first value and
    declares that its arrays are channels-last; the float interpreter takes the NHWC / NWC arrays
    onnxruntime takes (within 1e-4: float32 sums in another order), and a saved build keeps the layout."""
    from fpgac.ir import load_graph, print_graph, save_graph
    from fpgac.ir.boundary import array_shape, layout_name

    path = tf2onnx_channels_last(tmp_path / f"tf2onnx_{layout}.onnx", rank)
    graph = load_model(path)
    assert [n.op for n in graph.nodes] == ["conv", "relu", "reshape", "dense"]
    (value,) = graph.inputs
    assert value.shape[0] == 3 and array_shape(graph, value)[-1] == 3
    assert layout_name(graph, value) == layout
    assert graph.metadata["inputs"] == {"x": ["N", *array_shape(graph, value)]}
    x = RNG.normal(size=(8, *array_shape(graph, value))).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x)[0], _onnxruntime(path, x), rtol=1e-4, atol=1e-4)
    save_graph(graph, tmp_path / "saved")
    loaded = load_graph(tmp_path / "saved")
    assert loaded.input_layouts == graph.input_layouts and print_graph(loaded) == print_graph(graph)
    assert f"arrays {list(graph.input_layouts['x'])}".replace(" ", "") in print_graph(graph).replace(" ", "")
    with pytest.raises(FpgacError, match=r"has shape \(8, 3, .*\) but the model takes \(N, "):
        run_float(graph, np.moveaxis(x, -1, 1))  # channels-first arrays: refused by their shape


def tf2onnx_feature_map(path: Path) -> Path:
    """tf2onnx's export of a Keras Conv2D model whose output is the NHWC feature map: Transpose to NCHW,
    Conv, Relu, Transpose back to NHWC as the graph output."""
    f32 = np.float32
    inits = {"k": RNG.normal(size=(4, 3, 3, 3)).astype(f32) / 3, "kb": RNG.normal(size=4).astype(f32) / 4}
    nodes = [
        helper.make_node("Transpose", ["x"], ["channels_first"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["channels_first", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1]),
    ]
    return _save(path, nodes, inits, ["N", 5, 4, 3])


def test_channels_last_output_is_the_graph_boundary_not_a_transpose(tmp_path: Path) -> None:
    """The output's Transpose back to NHWC is no layer either: the graph gives the channels-first value
    and declares that its arrays are NHWC; the interpreter gives the arrays onnxruntime gives, and a
    saved graph keeps the layout."""
    from fpgac.ir import load_graph, print_graph, save_graph, verify
    from fpgac.ir.boundary import output_array_shape, output_layout_name

    path = tf2onnx_feature_map(tmp_path / "feature_map.onnx")
    graph = load_model(path)
    assert [n.op for n in graph.nodes] == ["conv", "relu"]
    assert graph.outputs[0].shape == (4, 5, 4) and output_array_shape(graph, 0) == (5, 4, 4)
    assert graph.output_layouts == {0: (1, 2, 0)} and output_layout_name(graph, 0) == "NHWC"
    assert graph.metadata["outputs"] == {"y": ["N", 5, 4, 4]}
    x = RNG.normal(size=(6, 5, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x)[0], _onnxruntime(path, x), rtol=1e-4, atol=1e-4)
    save_graph(graph, tmp_path / "saved")
    loaded = load_graph(tmp_path / "saved")
    assert loaded.output_layouts == graph.output_layouts and print_graph(loaded) == print_graph(graph)
    graph.output_layouts[0] = (0, 0, 1)
    with pytest.raises(FpgacError, match=r"graph output 0: layout \[0, 0, 1\] is not a permutation"):
        verify(graph)


def test_channels_last_global_pooling_reduces_the_channels_first_value(tmp_path: Path) -> None:
    """tf2onnx's Keras GlobalAveragePooling2D: Transpose back to NHWC, ReduceMean over axes 1 and 2. The
    mean over H and W of the channels-first value is the same vector: no transpose is left."""
    f32 = np.float32
    inits = {"k": RNG.normal(size=(4, 3, 3, 3)).astype(f32), "w": RNG.normal(size=(4, 5)).astype(f32)}
    nodes = [
        helper.make_node("Transpose", ["x"], ["channels_first"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["channels_first", "k"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["channels_last"], perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["channels_last"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["y"]),
    ]
    path = _save(tmp_path / "gap.onnx", nodes, inits, ["N", 6, 6, 3])
    graph = load_model(path)
    assert [n.op for n in graph.nodes] == ["conv", "relu", "reduce", "dense"]
    assert graph.node("ReduceMean_4").attrs["axes"] == [1, 2]  # H and W of (C, H, W)
    x = RNG.normal(size=(8, 6, 6, 3)).astype(f32)
    np.testing.assert_allclose(run_float(graph, x)[0], _onnxruntime(path, x), rtol=1e-5, atol=1e-5)


def test_per_layer_transposes_around_channels_last_batchnorm_cancel(tmp_path: Path) -> None:
    """keras2onnx (and tf2onnx without its optimizer) keep each layer's transposes: Conv, Transpose to
    NHWC, BatchNormalization as Mul and Add by per-channel constants, Relu, Transpose back, Conv. The
    first transpose moves down through Mul, Add and Relu (their constants transposed) and cancels the
    second; the affine then folds into the first conv."""
    f32 = np.float32
    inits = {
        "k": RNG.normal(size=(4, 3, 3, 3)).astype(f32),
        "k2": RNG.normal(size=(4, 4, 3, 3)).astype(f32) / 4,
        "g": RNG.uniform(0.5, 2, 4).astype(f32),
        "b": RNG.normal(size=4).astype(f32),
        "shape": np.array([-1, 144], np.int64),
        "w": RNG.normal(size=(144, 5)).astype(f32) / 8,
    }
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "k"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c"], ["u"], perm=[0, 2, 3, 1]),
        helper.make_node("Mul", ["u", "g"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t2"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t2", "k2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c2"], ["u2"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["u2", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    path = _save(tmp_path / "keras2onnx_bn.onnx", nodes, inits, ["N", 6, 6, 3])
    graph = load_model(path)
    assert [n.op for n in graph.nodes] == ["conv", "relu", "conv", "reshape", "dense"]
    x = RNG.normal(size=(8, 6, 6, 3)).astype(f32)
    np.testing.assert_allclose(run_float(graph, x)[0], _onnxruntime(path, x), rtol=1e-4, atol=1e-4)


def test_channels_last_batchnorm_before_flatten_leaves_no_transpose(tmp_path: Path) -> None:
    """Conv, Transpose to NHWC, Mul and Add per channel, Relu, Flatten, MatMul: the transpose moves down
    to the flatten, and the dense weights absorb it there."""
    f32 = np.float32
    inits = {
        "k": RNG.normal(size=(4, 3, 3, 3)).astype(f32),
        "g": RNG.uniform(0.5, 2, 4).astype(f32),
        "b": RNG.normal(size=4).astype(f32),
        "w": RNG.normal(size=(144, 5)).astype(f32) / 8,
    }
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "k"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c"], ["u"], perm=[0, 2, 3, 1]),
        helper.make_node("Mul", ["u", "g"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    path = _save(tmp_path / "bn_flatten.onnx", nodes, inits, ["N", 6, 6, 3])
    graph = load_model(path)
    assert [n.op for n in graph.nodes] == ["conv", "relu", "reshape", "dense"]
    x = RNG.normal(size=(8, 6, 6, 3)).astype(f32)
    np.testing.assert_allclose(run_float(graph, x)[0], _onnxruntime(path, x), rtol=1e-4, atol=1e-4)


def test_tf2onnx_conv1d_as_unsqueezed_conv2d_leaves_no_transpose(tmp_path: Path) -> None:
    """tf2onnx's Keras Conv1D is a Conv2D on an unsqueezed NWC input: Unsqueeze to (N, 1, W, C),
    Transpose to (N, C, 1, W), Conv (1, k), Relu, Transpose back, Squeeze, Flatten, MatMul. The transpose
    moves before the Unsqueeze into the graph's boundary (NWC arrays), the other into the dense weights."""
    from fpgac.ir.boundary import layout_name

    f32 = np.float32
    inits = {
        "axis": np.array([1], np.int64),
        "k": RNG.normal(size=(4, 3, 1, 3)).astype(f32),
        "shape": np.array([-1, 36], np.int64),
        "w": RNG.normal(size=(36, 5)).astype(f32),
    }
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axis"], ["e"]),
        helper.make_node("Transpose", ["e"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "k"], ["c"], pads=[0, 1, 0, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["u"], perm=[0, 2, 3, 1]),
        helper.make_node("Squeeze", ["u", "axis"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    path = _save(tmp_path / "conv1d.onnx", nodes, inits, ["N", 9, 3])
    graph = load_model(path)
    assert [n.op for n in graph.nodes] == ["reshape", "conv", "relu", "reshape", "dense"]
    assert layout_name(graph, graph.inputs[0]) == "NWC"
    x = RNG.normal(size=(8, 9, 3)).astype(f32)
    np.testing.assert_allclose(run_float(graph, x)[0], _onnxruntime(path, x), rtol=1e-5, atol=1e-5)


def test_reap_measures_a_channels_last_output_in_the_graphs_own_order(tmp_path: Path) -> None:
    """REAP compares the pruned graph's outputs with the original's trace: both in the graph's own
    (channels-first) order, though ``run_float`` gives outputs in the callers' NHWC layout (comparing
    those broadcast (N, 5, 4, 4) against (N, 4, 5, 4) and failed)."""
    from fpgac.passes.reap import Reap

    f32 = np.float32
    inits = {
        "k1": RNG.normal(size=(8, 3, 3, 3)).astype(f32) / 3,
        "b1": RNG.normal(size=8).astype(f32) / 4,
        "k2": RNG.normal(size=(4, 8, 1, 1)).astype(f32) / 3,
    }
    nodes = [
        helper.make_node("Transpose", ["x"], ["channels_first"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["channels_first", "k1", "b1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Conv", ["r", "k2"], ["d"]),
        helper.make_node("Transpose", ["d"], ["y"], perm=[0, 2, 3, 1]),
    ]
    graph = load_model(_save(tmp_path / "two_convs.onnx", nodes, inits, ["N", 5, 4, 3]))
    assert graph.output_layouts == {0: (1, 2, 0)}
    calib = RNG.normal(size=(16, 5, 4, 3)).astype(f32)
    pruned = Reap(keep=0.5, calib=(calib,)).run(graph)
    assert pruned.nodes[0].output.shape[0] == 4 and run_float(pruned, calib)[0].shape == (16, 5, 4, 4)
