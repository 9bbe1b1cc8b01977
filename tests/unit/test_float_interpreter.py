"""The float interpreter against onnxruntime, one IR op at a time.

Each case builds a one-node IR graph and the equivalent ONNX model (batch axis
added, NCHW), runs both on the same random batch and compares. Tolerance:
``rtol = atol = 1e-5``: both sides compute in float32 and differ only in
summation order (im2col matmul vs onnxruntime's MLAS kernels) and in the last
bits of transcendental functions (MLAS uses polynomial exp/tanh/logistic).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from fpgac.errors import FpgacError
from fpgac.interp import FLOAT_OPS, SimulationError, float_kernels, run_float
from fpgac.ir import OPS, Graph, Param, TensorType, verify

TOL = {"rtol": 1e-5, "atol": 1e-5}
BATCH = 3


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return rng(seed).standard_normal(shape).astype(np.float32)


def ir_run(
    op: str, xs: Sequence[np.ndarray], attrs: dict[str, Any], params: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """Run a one-node IR graph whose inputs take the per-sample shapes of ``xs``."""
    graph = Graph("t")
    ins = [graph.add_input(f"x{i}", TensorType(x.shape[1:])) for i, x in enumerate(xs)]
    node = graph.add(op, ins, attrs=attrs, params={k: Param(v) for k, v in (params or {}).items()})
    graph.set_outputs([node.output])
    verify(graph)
    (y,) = run_float(graph, list(xs))
    assert y.dtype == np.float32
    return y


def ort_run(
    nodes: list[onnx.NodeProto],
    feeds: dict[str, np.ndarray],
    inits: dict[str, np.ndarray] | None = None,
    opset: int = 18,
) -> np.ndarray:
    """Run an ONNX graph with output ``y`` on onnxruntime's CPU kernels, graph optimizations off."""
    graph = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(["y"], feeds)[0]


def ort_one(
    op_type: str, x: np.ndarray, inits: dict[str, np.ndarray] | None = None, **attrs: Any
) -> np.ndarray:
    names = ["x", *(inits or {})]
    return ort_run([helper.make_node(op_type, names, ["y"], **attrs)], {"x": x}, inits)


# -- conv and dense ---------------------------------------------------------------------------------

CONV_CASES = {
    # name: (per-sample input, weight shape, strides, pads, dilations, groups)
    "1d": ((3, 17), (4, 3, 3), [2], [1, 2], [1], 1),
    "1d_dilated_grouped": ((4, 20), (6, 2, 3), [1], [2, 0], [3], 2),
    "2d": ((3, 10, 9), (5, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    "2d_stride_asym_pads": ((3, 11, 10), (4, 3, 3, 2), [2, 3], [0, 1, 2, 0], [1, 1], 1),
    "2d_dilated": ((2, 12, 12), (3, 2, 3, 3), [1, 2], [2, 2, 2, 2], [2, 3], 1),
    "2d_groups": ((6, 8, 8), (9, 2, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 3),
    "depthwise": ((4, 8, 8), (4, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 4),
    "depthwise_multiplier": ((3, 9, 7), (6, 1, 3, 3), [1, 1], [0, 1, 1, 0], [1, 1], 3),
    "pointwise": ((8, 5, 5), (4, 8, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    "pointwise_strided": ((8, 5, 5), (4, 8, 1, 1), [2, 2], [0, 0, 0, 0], [1, 1], 1),
    "pointwise_grouped": ((8, 5, 5), (4, 4, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 2),
    "stem_7x7": ((3, 23, 23), (8, 3, 7, 7), [2, 2], [3, 3, 3, 3], [1, 1], 1),
    "3d": ((2, 5, 6, 7), (3, 2, 2, 3, 2), [1, 2, 1], [1, 0, 1, 0, 1, 1], [1, 1, 2], 1),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv(case: tuple, bias: bool) -> None:
    shape, wshape, strides, pads, dilations, groups = case
    x, w = randn(BATCH, *shape), randn(*wshape, seed=1)
    params = {"weight": w}
    if bias:
        params["bias"] = randn(wshape[0], seed=2)
    attrs = {"strides": strides, "pads": pads, "dilations": dilations, "groups": groups}
    got = ir_run("conv", [x], attrs, params)
    want = ort_one(
        "Conv",
        x,
        params,
        strides=strides,
        pads=pads,
        dilations=dilations,
        group=groups,
        kernel_shape=wshape[2:],
    )
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("shape", [(7,), (4, 3, 7)], ids=["vector", "rank3"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_dense(shape: tuple[int, ...], bias: bool) -> None:
    x, w, b = randn(BATCH, *shape), randn(5, 7, seed=1), randn(5, seed=2)
    params = {"weight": w, "bias": b} if bias else {"weight": w}
    got = ir_run("dense", [x], {}, params)
    nodes = [helper.make_node("MatMul", ["x", "wt"], ["y" if not bias else "m"])]
    if bias:
        nodes.append(helper.make_node("Add", ["m", "b"], ["y"]))
    want = ort_run(nodes, {"x": x}, {"wt": np.ascontiguousarray(w.T), "b": b})
    np.testing.assert_allclose(got, want, **TOL)


# -- pools ------------------------------------------------------------------------------------------

MAX_POOL_CASES = {
    # name: (per-sample input, kernel, strides, pads, dilations)
    "3x3s2p1": ((3, 9, 9), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    "stem_even": ((4, 16, 16), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    "asym_pads": ((2, 10, 11), [2, 3], [2, 2], [0, 1, 1, 0], [1, 1]),
    "dilated": ((2, 12, 12), [3, 3], [1, 2], [2, 2, 2, 2], [2, 2]),
    "dilated_asym": ((2, 11, 13), [2, 3], [3, 2], [1, 0, 0, 2], [3, 2]),
    "1d": ((3, 10), [3], [3], [1, 1], [1]),
    "ceil_drops_window_in_end_pad": ((2, 5, 6), [2, 2], [2, 2], [1, 1, 1, 1], [1, 1]),
    "3d": ((2, 5, 6, 7), [2, 2, 3], [2, 2, 2], [0, 1, 0, 1, 0, 1], [1, 1, 1]),
}


@pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize("case", MAX_POOL_CASES.values(), ids=MAX_POOL_CASES.keys())
def test_max_pool(case: tuple, ceil_mode: bool) -> None:
    shape, kernel, strides, pads, dilations = case
    x = -np.abs(randn(BATCH, *shape)) - 1  # all negative: a zero pad would win, -inf must not
    attrs = {
        "kernel": kernel,
        "strides": strides,
        "pads": pads,
        "dilations": dilations,
        "ceil_mode": ceil_mode,
    }
    got = ir_run("max_pool", [x], attrs)
    want = ort_one(
        "MaxPool",
        x,
        kernel_shape=kernel,
        strides=strides,
        pads=pads,
        dilations=dilations,
        ceil_mode=int(ceil_mode),
    )
    np.testing.assert_allclose(got, want, **TOL)
    assert np.isfinite(got).all()


AVG_POOL_CASES = {
    # name: (per-sample input, kernel, strides, pads); several windows run past the end with ceil_mode
    "3x3s2p1": ((3, 5, 5), [3, 3], [2, 2], [1, 1, 1, 1]),
    "2x2s2_odd": ((3, 5, 5), [2, 2], [2, 2], [0, 0, 0, 0]),
    "begin_pads_only": ((3, 5, 5), [3, 3], [2, 2], [1, 1, 0, 0]),
    "asym_pads": ((2, 10, 11), [2, 3], [2, 2], [0, 1, 1, 0]),
    "stride3": ((2, 8, 10), [3, 2], [3, 3], [1, 0, 2, 1]),
    "global_7x7": ((3, 7, 7), [7, 7], [1, 1], [0, 0, 0, 0]),
    "1d": ((3, 10), [3], [2], [1, 1]),
    "ceil_drops_window_in_end_pad": ((2, 5, 6), [2, 2], [2, 2], [1, 1, 1, 1]),
    "3d": ((2, 5, 6, 7), [3, 3, 2], [2, 2, 2], [1, 1, 0, 1, 0, 1]),
}


@pytest.mark.parametrize("count_include_pad", [False, True], ids=["exclude_pad", "include_pad"])
@pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize("case", AVG_POOL_CASES.values(), ids=AVG_POOL_CASES.keys())
def test_avg_pool(case: tuple, ceil_mode: bool, count_include_pad: bool) -> None:
    shape, kernel, strides, pads = case
    x = randn(BATCH, *shape) + 3  # offset so a wrong divisor cannot hide in noise around zero
    attrs = {
        "kernel": kernel,
        "strides": strides,
        "pads": pads,
        "ceil_mode": ceil_mode,
        "count_include_pad": count_include_pad,
    }
    got = ir_run("avg_pool", [x], attrs)
    want = ort_one(
        "AveragePool",
        x,
        kernel_shape=kernel,
        strides=strides,
        pads=pads,
        ceil_mode=int(ceil_mode),
        count_include_pad=int(count_include_pad),
    )
    np.testing.assert_allclose(got, want, **TOL)


def test_avg_pool_ceil_divisor_counts_padded_region_only() -> None:
    """Pinned numbers: a window past the end padding divides by the cells inside the padded input.

    Size 5, kernel 3, stride 2, pad 1, ceil: the last window covers cells 3, 4 and the end
    pad, so it averages 2 ones over 3; size 5, kernel 2, stride 2, no pad, ceil: the last
    window holds cell 4 alone, so it divides by 1, not by the kernel size 2.
    """
    ones = np.ones((1, 1, 5), np.float32)
    base = {"strides": [2], "ceil_mode": True, "count_include_pad": True}
    padded = ir_run("avg_pool", [ones], {**base, "kernel": [3], "pads": [1, 1]})
    np.testing.assert_allclose(padded.ravel(), [2 / 3, 1, 2 / 3], **TOL)
    unpadded = ir_run("avg_pool", [ones], {**base, "kernel": [2], "pads": [0, 0]})
    np.testing.assert_allclose(unpadded.ravel(), [1, 1, 1], **TOL)


@st.composite
def pool_configs(draw: st.DrawFn, dilated: bool) -> tuple[tuple[int, ...], dict[str, Any]]:
    """Random 1-D/2-D windows with pads smaller than the kernel (onnxruntime insists)."""
    axes = []
    for _ in range(draw(st.integers(1, 2))):
        k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2)) if dilated else 1
        pb, pe = draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))
        span = d * (k - 1) + 1
        axes.append((draw(st.integers(max(1, span - pb - pe), span + 6)), k, s, d, pb, pe))
    sizes, kernel, strides, dilations, begins, ends = (list(column) for column in zip(*axes, strict=True))
    shape = (2, *sizes)
    attrs = {"kernel": kernel, "strides": strides, "pads": begins + ends, "ceil_mode": draw(st.booleans())}
    attrs["dilations" if dilated else "count_include_pad"] = dilations if dilated else draw(st.booleans())
    return shape, attrs


@settings(max_examples=60, deadline=None, derandomize=True)
@given(pool_configs(dilated=True))
def test_max_pool_random_windows(config: tuple[tuple[int, ...], dict[str, Any]]) -> None:
    shape, attrs = config
    x = randn(2, *shape) - 2
    got = ir_run("max_pool", [x], attrs)
    onnx_attrs = {k: v for k, v in attrs.items() if k not in ("kernel", "ceil_mode")}
    want = ort_one(
        "MaxPool", x, kernel_shape=attrs["kernel"], ceil_mode=int(attrs["ceil_mode"]), **onnx_attrs
    )
    np.testing.assert_allclose(got, want, **TOL)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(pool_configs(dilated=False))
def test_avg_pool_random_windows(config: tuple[tuple[int, ...], dict[str, Any]]) -> None:
    shape, attrs = config
    x = randn(2, *shape) + 3
    got = ir_run("avg_pool", [x], attrs)
    want = ort_one(
        "AveragePool",
        x,
        kernel_shape=attrs["kernel"],
        strides=attrs["strides"],
        pads=attrs["pads"],
        ceil_mode=int(attrs["ceil_mode"]),
        count_include_pad=int(attrs["count_include_pad"]),
    )
    np.testing.assert_allclose(got, want, **TOL)


# -- reductions, normalizations ---------------------------------------------------------------------


@pytest.mark.parametrize("keepdims", [False, True], ids=["drop", "keep"])
@pytest.mark.parametrize("axes", [[0], [1, 2], [0, 1, 2], [2]], ids=str)
@pytest.mark.parametrize("mode", ["mean", "max"])
def test_reduce(mode: str, axes: list[int], keepdims: bool) -> None:
    x = randn(BATCH, 4, 5, 6)
    got = ir_run("reduce", [x], {"mode": mode, "axes": axes, "keepdims": keepdims})
    op_type = {"mean": "ReduceMean", "max": "ReduceMax"}[mode]
    inits = {"axes": np.array([a + 1 for a in axes], np.int64)}
    want = ort_one(op_type, x, inits, keepdims=int(keepdims))
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 100.0], ids=["unit", "large_logits"])
def test_softmax(axis: int, scale: float) -> None:
    x = randn(BATCH, 4, 5, 6) * np.float32(scale)
    got = ir_run("softmax", [x], {"axis": axis})
    np.testing.assert_allclose(got, ort_one("Softmax", x, axis=axis + 1), **TOL)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn(size: int) -> None:
    x = randn(BATCH, 7, 4, 5)
    attrs = {"size": size, "alpha": 0.5, "beta": 0.75, "bias": 2.0}
    got = ir_run("lrn", [x], attrs)
    np.testing.assert_allclose(got, ort_one("LRN", x, **attrs), **TOL)


def test_lrn_even_size_follows_the_onnx_spec() -> None:
    """The ONNX spec sums channels [c - floor((size-1)/2), c + ceil((size-1)/2)].

    onnxruntime refuses even sizes (``size_ % 2 == 1 was false``) and PyTorch centres
    the other way ([c - size//2, c + (size-1)//2]), so the numbers are pinned here: with
    all-ones input, size 4, alpha 4, beta 1, bias 1, y = 1 / (1 + count) where count is
    the number of channels in the window, clipped to the 7 channels.
    """
    x = np.ones((1, 7, 1, 1), np.float32)
    got = ir_run("lrn", [x], {"size": 4, "alpha": 4.0, "beta": 1.0, "bias": 1.0})
    counts = np.array([3, 4, 4, 4, 4, 3, 2], np.float32)
    np.testing.assert_allclose(got.ravel(), 1 / (1 + counts), **TOL)


def test_lrn_rank1() -> None:
    x = randn(BATCH, 9)
    attrs = {"size": 3, "alpha": 1e-2, "beta": 0.5, "bias": 1.0}
    got = ir_run("lrn", [x], attrs)
    want = ort_one("LRN", x[:, :, None, None], **attrs)[:, :, 0, 0]  # ONNX LRN needs spatial axes
    np.testing.assert_allclose(got, want, **TOL)


AFFINE_PARAMS = {
    "per_channel": (4, 1, 1),
    "full": (4, 5, 6),
    "last_axis": (6,),
    "scalar": (1,),
}


@pytest.mark.parametrize("pshape", AFFINE_PARAMS.values(), ids=AFFINE_PARAMS.keys())
def test_affine(pshape: tuple[int, ...]) -> None:
    x, scale, shift = randn(BATCH, 4, 5, 6), randn(*pshape, seed=1), randn(*pshape, seed=2)
    got = ir_run("affine", [x], {}, {"scale": scale, "shift": shift})
    nodes = [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Add", ["m", "t"], ["y"])]
    np.testing.assert_allclose(got, ort_run(nodes, {"x": x}, {"s": scale, "t": shift}), **TOL)


def test_affine_is_batch_norm() -> None:
    """BatchNormalization folds into scale = gamma / sqrt(var + eps), shift = beta - mean * scale."""
    x = randn(BATCH, 4, 5, 6)
    gamma, beta, mean = randn(4, seed=1), randn(4, seed=2), randn(4, seed=3)
    var = np.abs(randn(4, seed=4)) + 0.1
    eps = 1e-5
    scale = (gamma / np.sqrt(var + eps)).astype(np.float32)
    shift = (beta - mean * scale).astype(np.float32)
    got = ir_run("affine", [x], {}, {"scale": scale.reshape(4, 1, 1), "shift": shift.reshape(4, 1, 1)})
    inits = {"gamma": gamma, "beta": beta, "mean": mean, "var": var}
    want = ort_one("BatchNormalization", x, inits, epsilon=eps)
    np.testing.assert_allclose(got, want, **TOL)


# -- elementwise ------------------------------------------------------------------------------------

BROADCAST_SHAPES = {
    "same": ((3, 4, 5), (3, 4, 5)),
    "lower_rank": ((3, 4, 5), (5,)),
    "lower_rank_first": ((4, 1), (3, 1, 5)),
    "both_broadcast": ((3, 1, 5), (4, 1)),
    "unit": ((1,), (2, 3)),
    "per_channel": ((3, 4, 5), (3, 1, 1)),
}


def _batch_aligned(x: np.ndarray, rank: int) -> np.ndarray:
    """What the same tensor looks like in an ONNX graph with a batch axis: unit axes after the batch."""
    return x.reshape(x.shape[0], *([1] * (rank - x.ndim + 1)), *x.shape[1:])


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES.values(), ids=BROADCAST_SHAPES.keys())
def test_binary(op: str, shapes: tuple[tuple[int, ...], ...]) -> None:
    a = randn(BATCH, *shapes[0])
    b = randn(BATCH, *shapes[1], seed=1)
    if op == "div":
        b = np.sign(b) * (np.abs(b) + 0.5)
    got = ir_run(op, [a, b], {})
    rank = max(len(s) for s in shapes)
    feeds = {"a": _batch_aligned(a, rank), "b": _batch_aligned(b, rank)}
    want = ort_run([helper.make_node(op.capitalize(), ["a", "b"], ["y"])], feeds)
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize(
    "shapes",
    [[(2, 3, 4), (3, 4), (4,), (2, 1, 1)], [(4,), (1, 4), (2, 1, 1), (2, 3, 4)]],
    ids=["widest_first", "widest_last"],
)
def test_add_nary(shapes: list[tuple[int, ...]]) -> None:
    xs = [randn(BATCH, *s, seed=i) for i, s in enumerate(shapes)]
    got = ir_run("add", xs, {})
    feeds = {f"x{i}": _batch_aligned(x, 3) for i, x in enumerate(xs)}
    want = ort_run([helper.make_node("Sum", list(feeds), ["y"])], feeds)
    np.testing.assert_allclose(got, want, **TOL)


ACTIVATIONS = {
    # name: (IR op, IR attrs, ONNX op, ONNX attrs)
    "relu": ("relu", {}, "Relu", {}),
    "leaky_relu": ("leaky_relu", {"alpha": 0.1}, "LeakyRelu", {"alpha": 0.1}),
    "sigmoid": ("sigmoid", {}, "Sigmoid", {}),
    "hard_sigmoid": ("hard_sigmoid", {"alpha": 0.2, "beta": 0.5}, "HardSigmoid", {"alpha": 0.2, "beta": 0.5}),
    "hard_sigmoid_torch": (
        "hard_sigmoid",
        {"alpha": 1 / 6, "beta": 0.5},
        "HardSigmoid",
        {"alpha": 1 / 6, "beta": 0.5},
    ),
    "tanh": ("tanh", {}, "Tanh", {}),
    "elu": ("elu", {"alpha": 1.0}, "Elu", {"alpha": 1.0}),
    "elu_half": ("elu", {"alpha": 0.5}, "Elu", {"alpha": 0.5}),
    "selu": (
        "selu",
        {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805},
        "Selu",
        {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805},
    ),
}


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["unit", "saturating"])
@pytest.mark.parametrize("case", ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
def test_activation(case: tuple, scale: float) -> None:
    op, attrs, onnx_op, onnx_attrs = case
    x = randn(BATCH, 4, 5, 6) * np.float32(scale)
    got = ir_run(op, [x], attrs)
    np.testing.assert_allclose(got, ort_one(onnx_op, x, **onnx_attrs), **TOL)


@pytest.mark.parametrize("slope_shape", [(4, 1, 1), (4, 5, 6), (1,)], ids=["per_channel", "full", "shared"])
def test_prelu(slope_shape: tuple[int, ...]) -> None:
    x, slope = randn(BATCH, 4, 5, 6), randn(*slope_shape, seed=1)
    got = ir_run("prelu", [x], {}, {"slope": slope})
    np.testing.assert_allclose(got, ort_one("PRelu", x, {"slope": slope}), **TOL)


@pytest.mark.parametrize(
    "bounds", [(None, 6.0), (0.0, None), (-0.5, 0.5), (None, None), (1.0, -1.0)], ids=str
)
def test_clip(bounds: tuple[float | None, float | None]) -> None:
    x = randn(BATCH, 4, 5) * np.float32(4)
    lo, hi = bounds
    got = ir_run("clip", [x], {"min": lo, "max": hi})
    inits = {k: np.array(v, np.float32) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
    node = helper.make_node(
        "Clip", ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""], ["y"]
    )
    np.testing.assert_allclose(got, ort_run([node], {"x": x}, inits), **TOL)


# -- data movement ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [(12, 5), (60,), (5, 3, 4), (3, 20, 1)], ids=str)
def test_reshape(target: tuple[int, ...]) -> None:
    x = randn(BATCH, 3, 4, 5)
    got = ir_run("reshape", [x], {"shape": list(target)})
    want = ort_one("Reshape", x, {"shape": np.array([BATCH, *target], np.int64)})
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("perm", [[1, 2, 0], [2, 0, 1], [0, 2, 1], [0, 1, 2]], ids=str)
def test_transpose(perm: list[int]) -> None:
    x = randn(BATCH, 3, 4, 5)
    got = ir_run("transpose", [x], {"perm": perm})
    np.testing.assert_allclose(got, ort_one("Transpose", x, perm=[0, *(p + 1 for p in perm)]), **TOL)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_concat(axis: int) -> None:
    shapes = []
    for size in (2, 3, 1):
        shape = [3, 4, 5]
        shape[axis] = size
        shapes.append(tuple(shape))
    xs = [randn(BATCH, *s, seed=i) for i, s in enumerate(shapes)]
    got = ir_run("concat", xs, {"axis": axis})
    feeds = {f"x{i}": x for i, x in enumerate(xs)}
    want = ort_run([helper.make_node("Concat", list(feeds), ["y"], axis=axis + 1)], feeds)
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", [[1, 0, 2, 0, 3, 1], [0, 2, 2, 1, 0, 0]], ids=str)
def test_pad(mode: str, pads: list[int]) -> None:
    x = randn(BATCH, 3, 5, 6)
    got = ir_run("pad", [x], {"pads": pads, "mode": mode, "value": 1.5})
    onnx_pads = np.array([0, *pads[:3], 0, *pads[3:]], np.int64)
    inits = {"pads": onnx_pads, "value": np.array(1.5, np.float32)}
    node = helper.make_node("Pad", ["x", "pads", "value" if mode == "constant" else ""], ["y"], mode=mode)
    np.testing.assert_allclose(got, ort_run([node], {"x": x}, inits), **TOL)


# -- the interpreter itself ---------------------------------------------------------------------------


def test_every_ir_op_has_a_float_implementation() -> None:
    assert set(FLOAT_OPS) == set(OPS)


def _residual_graph() -> Graph:
    """x -> conv -> relu -> add(x) -> reduce; a second input y scales the result."""
    graph = Graph("res")
    x = graph.add_input("x", TensorType((2, 6, 6)))
    y = graph.add_input("y", TensorType((2,)))
    w = Param(randn(2, 2, 3, 3, seed=5))
    attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    conv = graph.add("conv", [x], attrs=attrs, params={"weight": w}, name="conv")
    relu = graph.add("relu", [conv.output], name="relu")
    add = graph.add("add", [relu.output, x], name="add")
    pooled = graph.add("reduce", [add.output], attrs={"mode": "mean", "axes": [1, 2], "keepdims": False})
    out = graph.add("mul", [pooled.output, y], name="out")
    graph.set_outputs([out.output, relu.output])
    verify(graph)
    return graph


def test_inputs_by_sequence_mapping_and_trace_agree() -> None:
    graph = _residual_graph()
    x, y = randn(2, 2, 6, 6), randn(2, 2, seed=1)
    by_seq = run_float(graph, [x, y])
    by_map = run_float(graph, {"y": y, "x": x})
    traced = run_float(graph, (x, y), trace=True)
    assert isinstance(traced, dict)
    assert set(traced) == {"x", "y", "conv", "relu", "add", "reduce", "out"}
    for a, b, name in zip(by_seq, by_map, ["out", "relu"], strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, traced[name])
        assert a.dtype == np.float32
    np.testing.assert_array_equal(traced["add"], traced["relu"] + x)


def test_outputs_do_not_alias_the_callers_inputs() -> None:
    graph = Graph("t")
    x = graph.add_input("x", TensorType((2, 3)))
    graph.set_outputs([graph.add("reshape", [x], attrs={"shape": [6]}).output])
    data = randn(2, 2, 3)
    (got,) = run_float(graph, data)
    got[...] = 0
    assert np.abs(data).sum() > 0


def test_avg_pool_window_of_padding_only_is_zero() -> None:
    x = np.ones((1, 1, 3), np.float32)
    attrs = {"kernel": [2], "strides": [1], "pads": [2, 2], "ceil_mode": False, "count_include_pad": False}
    np.testing.assert_array_equal(ir_run("avg_pool", [x], attrs).ravel(), [0, 1, 1, 1, 1, 0])


def test_max_pool_and_reduce_max_propagate_nan() -> None:
    """A deliberate choice: onnxruntime's NaN handling differs by kernel (see ``float_kernels.max_pool``)."""
    x = np.array([[[1.0, np.nan, 3.0, -1.0]]], np.float32)
    attrs = {"kernel": [2], "strides": [2], "pads": [0, 0], "dilations": [1], "ceil_mode": False}
    np.testing.assert_array_equal(ir_run("max_pool", [x], attrs).ravel(), [np.nan, 3.0])
    assert np.isnan(ir_run("reduce", [x], {"mode": "max", "axes": [1], "keepdims": False})).all()


def test_empty_batch() -> None:
    out, relu = run_float(_residual_graph(), [np.zeros((0, 2, 6, 6)), np.zeros((0, 2))])
    assert out.shape == (0, 2) and relu.shape == (0, 2, 6, 6)


def test_integer_inputs_are_converted_and_nan_passes_through() -> None:
    graph = Graph("t")
    x = graph.add_input("x", TensorType((3,)))
    graph.set_outputs([graph.add("relu", [x]).output])
    (got,) = run_float(graph, np.array([[1, -2, 3]], np.int64))
    np.testing.assert_array_equal(got, [[1, 0, 3]])
    assert got.dtype == np.float32
    (got,) = run_float(graph, np.array([[np.nan, -1.0, np.inf]]))
    assert np.isnan(got[0, 0]) and got[0, 1] == 0 and got[0, 2] == np.inf


def _single_input_graph() -> Graph:
    graph = Graph("t")
    x = graph.add_input("x", TensorType((1, 28, 28)))
    graph.set_outputs([graph.add("relu", [x]).output])
    return graph


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            np.zeros((5, 3, 32, 32)),
            r"^input 'x' has shape \(5, 3, 32, 32\) but the model takes \(N, 1, 28, 28\)$",
        ),
        (np.zeros((1, 28, 28)), r"input 'x' has shape \(1, 28, 28\) but the model takes \(N, 1, 28, 28\)"),
        ([np.zeros((2, 1, 28, 28))] * 2, r"takes 1 input\(s\) \['x'\], got 2"),
        ([], r"takes 1 input\(s\) \['x'\], got 0"),
        ({"z": np.zeros((2, 1, 28, 28))}, r"missing \['x'\], unknown \['z'\]"),
        ({}, r"missing \['x'\]"),
        (np.zeros((2, 1, 28, 28), np.complex64), r"input 'x' has dtype complex64"),
        (np.full((2, 1, 28, 28), "a"), r"input 'x' has dtype <U1"),
        (np.zeros((2, 1, 28, 28), bool), r"input 'x' has dtype bool"),
        ("x", r"inputs must be an array, a sequence or a mapping, not str"),
    ],
    ids=[
        "shape",
        "no_batch",
        "too_many",
        "none",
        "unknown_name",
        "missing_name",
        "complex",
        "str",
        "bool",
        "str_arg",
    ],
)
def test_input_validation(inputs: Any, message: str) -> None:
    with pytest.raises(SimulationError, match=message) as info:
        run_float(_single_input_graph(), inputs)
    assert isinstance(info.value, FpgacError)
    assert "\n" not in str(info.value)


def test_batch_sizes_must_agree() -> None:
    with pytest.raises(SimulationError, match=r"different batch sizes \('x': 2, 'y': 3\)"):
        run_float(_residual_graph(), [randn(2, 2, 6, 6), randn(3, 2)])


def test_unknown_op_names_the_node() -> None:
    graph = Graph("t")
    x = graph.add_input("x", TensorType((3,)))
    node = graph.add("gelu", [x], [TensorType((3,))], name="act")
    graph.set_outputs([node.output])
    with pytest.raises(SimulationError, match=r"node 'act' \(gelu\): the float interpreter has no"):
        run_float(graph, randn(2, 3))


def test_wrong_declared_shape_is_caught() -> None:
    graph = Graph("t")
    x = graph.add_input("x", TensorType((3,)))
    node = graph.add("relu", [x], [TensorType((4,))], name="r")
    graph.set_outputs([node.output])
    with pytest.raises(SimulationError, match=r"node 'r' \(relu\): produced shape \(2, 3\), its output type"):
        run_float(graph, randn(2, 3))


def test_intermediates_are_freed_after_their_last_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a chain of relus, the array two steps back must be gone while the next relu runs."""
    seen: list[weakref.ref[np.ndarray]] = []
    alive_two_back: list[bool] = []

    def relu(xs: Sequence[np.ndarray], attrs: dict[str, Any], params: dict[str, Param]) -> np.ndarray:
        if len(seen) >= 2:
            alive_two_back.append(seen[-2]() is not None)
        y = float_kernels.relu(xs, attrs, params)
        seen.append(weakref.ref(y))
        return y

    monkeypatch.setitem(FLOAT_OPS, "relu", relu)
    graph = Graph("chain")
    value = graph.add_input("x", TensorType((1000,)))
    for _ in range(6):
        value = graph.add("relu", [value]).output
    graph.set_outputs([value])
    run_float(graph, randn(2, 1000))
    assert alive_two_back == [False] * 4
