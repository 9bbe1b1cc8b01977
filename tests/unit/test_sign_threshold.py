"""BatchNorm + bipolar sign folded into an integer threshold on the accumulator (sign_threshold pass).

The threshold must equal the real-number ``a * k + b >= 0`` on every reachable integer ``k`` (the sign's
tie on the ``+1`` side, qonnx's ``x >= 0``), for ``a`` of either sign or zero and thresholds beyond the
accumulator's reach; and a model with such BatchNorms must compute exactly that, without the affine.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from fpgac.build import BuildOptions, compile_model
from fpgac.interp.simulator import run_fixed
from fpgac.ir.bipolar import is_xnor_layer
from fpgac.passes.sign_threshold import near_zero, threshold

DOMAIN = "qonnx.custom_op.general"
fractions = st.fractions(min_value=-40, max_value=40, max_denominator=8)


@settings(max_examples=400, deadline=None)
@given(
    a=st.one_of(st.just(Fraction(0)), fractions),
    b=fractions,
    lo=st.integers(-30, 30),
    span=st.integers(0, 40),
)
def test_threshold_is_the_sign_on_every_reachable_code(a: Fraction, b: Fraction, lo: int, span: int) -> None:
    hi = lo + span
    negate, t = threshold(a, b, lo, hi)
    for k in range(lo, hi + 1):
        assert ((-k if negate else k) >= t) == (a * k + b >= 0), (a, b, k)
    reach = range(-hi, -lo + 2) if negate else range(lo, hi + 2)  # clamped: no wider than the codes
    assert t in reach
    assert negate == (a < 0)


floats32 = st.floats(-100, 100, width=32, allow_subnormal=False)


@settings(max_examples=400, deadline=None)
@given(a=floats32, k=st.integers(-2000, 2000), ulps=st.integers(-4, 4))
def test_float32_batchnorm_differs_from_the_threshold_only_where_flagged(a: float, k: int, ulps: int) -> None:
    """A float32 ``a * k + b`` (rounded product, rounded sum, as onnxruntime computes BatchNorm from
    its folded scale and shift) on the other side of 0 than the exact value: only at a flagged code.
    ``b`` a few float32 steps from ``-a * k``, where the two can disagree."""
    f32 = np.float32
    product = f32(f32(a) * f32(k))
    b = float(-product)
    for _ in range(abs(ulps)):
        b = float(np.nextafter(f32(b), f32(np.sign(ulps) * np.inf)))
    float_sign = f32(product + f32(b)) >= 0
    exact = Fraction(a) * k + Fraction(b) >= 0
    assert float_sign == exact or near_zero(Fraction(a), Fraction(b), k, k)
    assert a == 0 or not near_zero(Fraction(a), Fraction(b), k + 1, k + 1)  # one code away: never


def test_near_zero_flags_a_code_at_float32_distance() -> None:
    a, b = Fraction(float(np.float32(0.1))), -Fraction(float(np.float32(0.3)))
    assert near_zero(a, b, -10, 10)  # 3 * 0.1f - 0.3f is 1.1e-8, far below float32's error there
    assert not near_zero(a, b, -10, 2)  # the code next to the threshold is out of reach
    assert not near_zero(Fraction(1), Fraction(-1, 2), -10, 10)  # 1/2 from the nearest code


# BatchNormalization params (epsilon 0, square variances: a and b are exact) chosen per channel:
# a = 1 with a tie at x = 1; a = -1; a = 0 with b < 0 (always -1) and b = 0 (always +1: sign(0));
# a threshold no sum reaches (x >= 100); a = -0.5 with a tie at x = -3.
GAMMA = [1.0, -2.0, 0.0, 0.0, 1.0, -0.5]
VAR = [1.0, 4.0, 1.0, 1.0, 1.0, 1.0]
MEAN = [1.0, 0.5, 0.0, 0.0, 100.0, -3.0]
BETA = [0.0, 0.25, -0.5, 0.0, 0.0, 0.0]


def _model(path: Path, weight: np.ndarray, bias: np.ndarray, quantized_input: bool = True) -> Path:
    """x (N, 16) -> BipolarQuant (1) -> Gemm (binary +-0.5, a bias on the grid) -> BatchNormalization ->
    BipolarQuant (1): the hidden layer of a binarized MLP (without the first quantizer the Gemm's
    input is float, its accumulator on no grid)."""
    f32 = np.float32
    inits = {
        "one": np.array(1.0, f32),
        "w": weight.astype(f32),
        "b": bias.astype(f32),
        **{k: np.array(v, f32) for k, v in (("gamma", GAMMA), ("beta", BETA), ("mean", MEAN), ("var", VAR))},
    }
    nodes = [
        helper.make_node("BipolarQuant", ["x", "one"], ["xq"], domain=DOMAIN),
        helper.make_node("Gemm", ["xq" if quantized_input else "x", "w", "b"], ["acc"], transB=1),
        helper.make_node("BatchNormalization", ["acc", "gamma", "beta", "mean", "var"], ["bn"], epsilon=0.0),
        helper.make_node("BipolarQuant", ["bn", "one"], ["y"], domain=DOMAIN),
    ]
    graph = helper.make_graph(
        nodes,
        "bn_sign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def test_batchnorm_and_sign_become_a_threshold_bias(tmp_path: Path) -> None:
    """The affine goes; the layer stays an XNOR-popcount (negated channels keep binary weights); every
    sign equals the exact ``a * acc + b >= 0`` on 4096 random inputs, ties and constant channels included."""
    rng = np.random.default_rng(0)
    weight = np.where(rng.normal(size=(6, 16)) >= 0, 0.5, -0.5)
    bias = np.array([0.0, 0.5, 1.5, 0.0, -1.0, 0.0])
    x = rng.choice([-1.0, 1.0], size=(4096, 16)).astype(np.float32)
    calib = tmp_path / "calib.npy"
    np.save(calib, x[:64])
    graph = compile_model(_model(tmp_path / "m.onnx", weight, bias), BuildOptions(calib=calib)).graph
    assert [n.op for n in graph.nodes] == ["quant", "dense", "quant"]
    assert is_xnor_layer(graph.nodes[1])
    acc = x.astype(np.float64) @ weight.T + bias  # exact: multiples of 0.5
    a = np.array(GAMMA) / np.sqrt(VAR)
    expected = np.where(a * acc + (np.array(BETA) - np.array(MEAN) * a) >= 0, 1.0, -1.0)
    ties = a * acc + (np.array(BETA) - np.array(MEAN) * a) == 0
    assert ties[:, 0].any() and ties[:, 5].any()  # the test reaches the ties it is about
    assert np.array_equal(run_fixed(graph, [x]).outputs[0], expected)


def test_random_batchnorms_equal_the_exact_sign(tmp_path: Path) -> None:
    """A BNN-PYNQ-like hidden layer (784 bipolar inputs, 256 binary units, BatchNorm with random
    statistics): every sign equals the exact one of the frontend's float32 ``a`` and ``b`` (float64's
    ``a * acc + b`` has the exact sign: the product is exact, a sum's rounding keeps its sign). The
    16-bit affine the layer had before the threshold gave 108 of these 512,000 signs otherwise than
    qonnx's execution (which equals the exact sign on all of them)."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    weight = np.where(rng.normal(size=(256, 784)) >= 0, 1.0, -1.0).astype(f32)
    stats = {
        "gamma": rng.uniform(-1.5, 1.5, 256),
        "beta": rng.normal(0, 1, 256),
        "mean": rng.normal(0, 20, 256),
        "var": rng.uniform(100, 900, 256),
    }
    inits = {"one": np.array(1.0, f32), "w": weight.T.copy(), **{k: v.astype(f32) for k, v in stats.items()}}
    nodes = [
        helper.make_node("BipolarQuant", ["x", "one"], ["xq"], domain=DOMAIN),
        helper.make_node("MatMul", ["xq", "w"], ["acc"]),
        helper.make_node("BatchNormalization", ["acc", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-4),
        helper.make_node("BipolarQuant", ["bn", "one"], ["y"], domain=DOMAIN),
    ]
    graph = helper.make_graph(
        nodes,
        "fc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 256])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    path = tmp_path / "fc.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]),
        path,
    )
    x = rng.choice([-1.0, 1.0], size=(2000, 784)).astype(f32)
    calib = tmp_path / "calib.npy"
    np.save(calib, x[:64])
    compiled = compile_model(path, BuildOptions(calib=calib)).graph
    assert "affine" not in {n.op for n in compiled.nodes}
    a = inits["gamma"] / np.sqrt(inits["var"] + f32(1e-4))  # as the frontend folds BatchNormalization
    b = inits["beta"] - inits["mean"] * a
    acc = x.astype(np.float64) @ weight.T.astype(np.float64)
    expected = np.where(a.astype(np.float64) * acc + b.astype(np.float64) >= 0, 1.0, -1.0)
    assert np.array_equal(run_fixed(compiled, [x]).outputs[0], expected)


def test_a_layer_on_no_grid_keeps_its_batchnorm(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weight = np.where(rng.normal(size=(6, 16)) >= 0, 0.5, -0.5)
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.uniform(-1, 1, (64, 16)).astype(np.float32))
    model = _model(tmp_path / "m.onnx", weight, np.zeros(6), quantized_input=False)
    graph = compile_model(model, BuildOptions(calib=calib)).graph
    assert [n.op for n in graph.nodes] == ["dense", "affine", "quant"]
