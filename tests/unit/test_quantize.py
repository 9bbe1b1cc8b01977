"""The quantize pass: the format rules, accumulators that cannot overflow, sound interval mode, errors.

The simulator's kernels are checked against an exact reference in ``test_fixed_kernels.py``; this file
checks the *formats* the pass chooses. The properties that matter in hardware are checked with exact
integer arithmetic on the stored formats, not with floats: an accumulator must hold the worst-case sum
over every input its input format can carry (each input element at the format's min or max, chosen by
the sign of its weight), and a graph quantized without calibration data must never overflow for inputs
inside ``input_range``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Graph, Param, TensorType, verify
from fpgac.ir.graph import Node
from fpgac.ir.types import Fixed, Overflow, Rounding
from fpgac.passes.quantize import MAX_PRECISION, MIN_PRECISION, Quantize, QuantizeError

CONV = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}


def f32(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def chain(shape: tuple[int, ...], build: Callable[[Graph, object], object]) -> Graph:
    graph = Graph("q")
    x = graph.add_input("x", TensorType(shape))
    graph.set_outputs([build(graph, x)])
    return graph


def mantissas(data: np.ndarray, fmt: Fixed) -> np.ndarray:
    """Exact integer mantissas of values that must lie on ``fmt``'s grid (asserted)."""
    scaled = np.ldexp(np.asarray(data, dtype=np.float64), fmt.frac_bits)
    assert np.array_equal(scaled, np.round(scaled)), f"values are not on the grid of {fmt}"
    return scaled.astype(np.int64).astype(object)


def mlp(rng: np.random.Generator, sizes: Sequence[int], act: str = "relu") -> Graph:
    def build(g: Graph, x: object) -> object:
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            params = {
                "weight": Param(f32(rng, n_out, n_in, scale=0.7)),
                "bias": Param(f32(rng, n_out, scale=0.5)),
            }
            x = g.add("dense", [x], name=f"fc{i}", params=params).output
            if i < len(sizes) - 2:
                x = g.add(
                    act, [x], name=f"{act}{i}", attrs={"alpha": 0.1} if act == "leaky_relu" else {}
                ).output
        return x

    return chain((sizes[0],), build)


# ----------------------------------------------------------------------------------------------------------
# format rules


@pytest.mark.parametrize("precision", [4, 8, 13, 16, 24])
def test_weight_and_bias_formats(precision: int) -> None:
    """Weights and biases: ``precision`` bits, RND_CONV + SAT, the fewest integer bits holding max |w|,
    and stored values are the round-half-to-even of the originals."""
    rng = np.random.default_rng(precision)
    for scale in (0.01, 0.9, 3.0, 100.0):
        w = f32(rng, 5, 7, scale=scale)
        b = f32(rng, 5, scale=scale * 3)
        graph = chain(
            (7,),
            lambda g, x, w=w, b=b: (
                g.add("dense", [x], name="fc", params={"weight": Param(w), "bias": Param(b)}).output
            ),
        )
        q = Quantize(precision=precision, calib=(f32(rng, 8, 7),)).run(graph)
        verify(q)
        node = q.nodes[0]
        for key, data in (("weight", w), ("bias", b)):
            fmt = node.params[key].format
            assert (fmt.width, fmt.signed, fmt.rounding, fmt.overflow) == (
                precision,
                True,
                Rounding.RND_CONV,
                Overflow.SAT,
            )
            top = float(np.abs(data).max())
            assert 2.0 ** (fmt.int_bits - 2) <= top < 2.0 ** (fmt.int_bits - 1), (fmt, top)  # fewest bits
            stored = mantissas(node.params[key].data, fmt)  # on the grid
            expected = np.clip(
                np.round(np.ldexp(data.astype(np.float64), fmt.frac_bits)), fmt.min_mantissa, fmt.max_mantissa
            )
            assert np.array_equal(stored.astype(np.float64), expected)


@pytest.mark.parametrize("headroom", [0, 1, 3])
def test_activation_formats_follow_calibration(headroom: int) -> None:
    """Activations: RND + SAT, ``precision`` bits, integer bits of the calibrated max |x| plus headroom."""
    rng = np.random.default_rng(headroom)
    graph = mlp(rng, [6, 8, 4])
    calib = f32(rng, 32, 6, scale=2.5)
    traced = run_float(graph, [calib], trace=True)
    q = Quantize(precision=12, headroom=headroom, calib=(calib,)).run(graph)
    for value in q.values():
        if value.producer is not None and value.producer.op == "relu":
            continue  # relu's rule: derived from its input format (test below)
        fmt = value.type.format
        assert fmt.width == 12 and fmt.rounding is Rounding.RND and fmt.overflow is Overflow.SAT
        data = traced[value.name]
        top = float(np.abs(data).max())
        assert fmt.signed == bool(data.min() < 0)
        int_bits = fmt.int_bits - headroom - int(fmt.signed)
        assert 2.0 ** (int_bits - 1) <= top < 2.0**int_bits, (value.name, fmt, top)


def test_relu_output_is_the_exact_unsigned_half() -> None:
    """relu keeps every non-negative input value exactly in one bit less: all 2**10 inputs, no overflow."""
    rng = np.random.default_rng(1)
    graph = chain((4,), lambda g, x: g.add("relu", [x], name="r").output)
    q = Quantize(precision=10, calib=(f32(rng, 16, 4, scale=3.0),)).run(graph)
    fx, fo = q.inputs[0].type.format, q.nodes[0].output.type.format
    assert (fo.width, fo.int_bits, fo.signed) == (fx.width - 1, fx.int_bits - 1, False)
    every = np.arange(fx.min_mantissa, fx.max_mantissa + 1).reshape(-1, 4)
    x = np.ldexp(every.astype(np.float64), -fx.frac_bits).astype(np.float32)
    res = run_fixed(q, x)
    assert np.array_equal(res.outputs[0], np.maximum(x, 0).astype(np.float64))
    assert res.overflows["r"] == 0


@pytest.mark.parametrize(
    ("lo", "hi", "int_bits", "signed"), [(0.0, 6.0, 3, False), (-1.0, 1.0, 2, True), (0.0, 1.0, 1, False)]
)
def test_clip_formats_are_bounded(lo: float, hi: float, int_bits: int, signed: bool) -> None:
    """Clip (ReLU6) gets its format from its bounds, not from data; far out-of-range inputs are clamped
    exactly to the bounds and count as no overflow."""
    rng = np.random.default_rng(2)
    graph = chain((4,), lambda g, x: g.add("clip", [x], name="c", attrs={"min": lo, "max": hi}).output)
    q = Quantize(precision=8, calib=(f32(rng, 16, 4, scale=50.0),)).run(graph)
    fo = q.nodes[0].output.type.format
    assert (fo.width, fo.int_bits, fo.signed) == (8, int_bits, signed)
    x = np.array([[-100.0, hi + 50.0, lo, hi], [0.0, 0.5, -0.5, 3.0]], dtype=np.float32)
    res = run_fixed(q, x)
    assert res.overflows["c"] == 0
    want = np.clip(run_fixed(q, x, trace=True).trace["x"] * 2.0 ** -q.inputs[0].type.format.frac_bits, lo, hi)
    np.testing.assert_allclose(res.outputs[0], want, atol=fo.lsb / 2)
    assert res.outputs[0][0, 0] == lo and res.outputs[0][0, 1] == hi


def test_one_sided_clip_is_calibrated() -> None:
    rng = np.random.default_rng(3)
    graph = chain((4,), lambda g, x: g.add("clip", [x], name="c", attrs={"min": 0.0, "max": None}).output)
    q = Quantize(precision=8, headroom=0, calib=(f32(rng, 16, 4, scale=10.0),)).run(graph)
    fo = q.nodes[0].output.type.format
    assert not fo.signed and fo.overflow is Overflow.SAT


def test_bounded_ops_get_bounded_formats() -> None:
    rng = np.random.default_rng(4)
    for op, attrs, (int_bits, signed) in [
        ("sigmoid", {}, (0, False)),
        ("tanh", {}, (1, True)),
        ("hard_sigmoid", {"alpha": 0.2, "beta": 0.5}, (1, False)),
        ("softmax", {"axis": 0}, (1, False)),
    ]:
        graph = chain((5,), lambda g, x, op=op, attrs=attrs: g.add(op, [x], name="n", attrs=attrs).output)
        q = Quantize(precision=9, calib=(f32(rng, 16, 5, scale=100.0),)).run(graph)
        fo = q.nodes[0].output.type.format
        assert (fo.width, fo.int_bits, fo.signed) == (9, int_bits, signed), op


# ----------------------------------------------------------------------------------------------------------
# accumulators: exact, and no overflow for ANY input inside the input format


def extremes(fmt: Fixed) -> tuple[int, int]:
    return fmt.min_mantissa, fmt.max_mantissa


def check_linear_accumulator(node: Node, fx: Fixed) -> None:
    """Worst-case sums with exact integers on the accumulator's grid must fit the accumulator."""
    acc: Fixed = node.attrs["acc"]
    assert acc.overflow is Overflow.WRAP and acc.signed
    fw = node.params["weight"].format
    assert acc.frac_bits >= fx.frac_bits + fw.frac_bits  # every product exactly
    w = mantissas(node.params["weight"].data, fw).reshape(node.params["weight"].data.shape[0], -1)
    w = w * 2 ** (acc.frac_bits - fx.frac_bits - fw.frac_bits)
    lo, hi = extremes(fx)
    top = np.where(w > 0, w * hi, w * lo).sum(axis=1)
    bottom = np.where(w > 0, w * lo, w * hi).sum(axis=1)
    if "bias" in node.params:
        fb = node.params["bias"].format
        assert acc.frac_bits >= fb.frac_bits
        b = mantissas(node.params["bias"].data, fb) * 2 ** (acc.frac_bits - fb.frac_bits)
        top, bottom = top + b, bottom + b
    assert max(top) <= acc.max_mantissa and min(bottom) >= acc.min_mantissa, (acc, max(top), min(bottom))


def sim_accumulator_values(graph: Graph, node: Node, x: np.ndarray) -> np.ndarray:
    """The accumulator's values as the simulator leaves them: the node's output set to the accumulator
    format itself (SAT, so a wrapped accumulator could not be mistaken for a saturated output)."""
    node.output.type = node.output.type.with_format(
        Fixed(node.attrs["acc"].width, node.attrs["acc"].int_bits, True, Rounding.TRN, Overflow.SAT)
    )
    graph.set_outputs([node.output])
    res = run_fixed(graph, x)
    assert res.overflows[node.name] == 0
    return res.outputs[0]


@pytest.mark.parametrize("precision", [4, 8, 16, 24])
def test_dense_accumulator_holds_worst_case(precision: int) -> None:
    rng = np.random.default_rng(precision + 100)
    w, b = f32(rng, 6, 9, scale=2.0), f32(rng, 6)
    graph = chain(
        (9,),
        lambda g, x, w=w, b=b: (
            g.add("dense", [x], name="fc", params={"weight": Param(w), "bias": Param(b)}).output
        ),
    )
    q = Quantize(precision=precision, calib=(f32(rng, 16, 9),)).run(graph)
    node, fx = q.nodes[0], q.inputs[0].type.format
    check_linear_accumulator(node, fx)
    # the same through the simulator: adversarial inputs reach exactly the exact sums
    wm = mantissas(node.params["weight"].data, node.params["weight"].format)
    lo, hi = extremes(fx)
    xm = np.array(
        [np.where(row > 0, hi, lo) for row in wm] + [np.where(row > 0, lo, hi) for row in wm], dtype=np.int64
    )
    x = np.ldexp(xm.astype(np.float64), -fx.frac_bits).astype(np.float32)
    assert np.array_equal(np.ldexp(x.astype(np.float64), fx.frac_bits), xm)
    got = sim_accumulator_values(q, node, x)
    exact = (
        xm.astype(np.float64) * 2.0**-fx.frac_bits @ node.params["weight"].data.T + node.params["bias"].data
    )
    np.testing.assert_array_equal(got, exact)  # exact in float64 at these widths


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_accumulator_holds_worst_case(groups: int) -> None:
    """One output position that sees every tap: each channel's worst-case input is reachable."""
    rng = np.random.default_rng(groups)
    w = f32(rng, 4, 4 // groups, 3, 3, scale=1.5)
    attrs = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": groups}
    graph = chain(
        (4, 3, 3),
        lambda g, x: (
            g.add(
                "conv", [x], name="cv", attrs=attrs, params={"weight": Param(w), "bias": Param(f32(rng, 4))}
            ).output
        ),
    )
    q = Quantize(precision=10, calib=(f32(rng, 16, 4, 3, 3),)).run(graph)
    node, fx = q.nodes[0], q.inputs[0].type.format
    check_linear_accumulator(node, fx)
    wm = mantissas(node.params["weight"].data, node.params["weight"].format)
    lo, hi = extremes(fx)
    rows = []
    for o in range(4):
        g = o // (4 // groups)
        for top in (True, False):
            xm = np.zeros((4, 3, 3), dtype=np.int64)
            cg = 4 // groups
            sign = wm[o] > 0
            xm[g * cg : (g + 1) * cg] = np.where(sign, hi, lo) if top else np.where(sign, lo, hi)
            rows.append(xm)
    xm = np.stack(rows)
    got = sim_accumulator_values(q, node, np.ldexp(xm.astype(np.float64), -fx.frac_bits).astype(np.float32))
    want = run_float(
        q_float_copy(node, q), [np.ldexp(xm.astype(np.float64), -fx.frac_bits).astype(np.float32)]
    )[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def q_float_copy(node: Node, graph: Graph) -> Graph:
    """A float graph of the quantized conv's stored weights (to cross-check the simulator's sums)."""
    g = Graph("f")
    x = g.add_input("x", TensorType(graph.inputs[0].shape))
    params = {k: Param(p.data.astype(np.float32)) for k, p in node.params.items()}
    n = g.add("conv", [x], attrs={k: v for k, v in node.attrs.items() if k != "acc"}, params=params)
    g.set_outputs([n.output])
    return g


def test_pooling_and_softmax_accumulators_hold_worst_case() -> None:
    rng = np.random.default_rng(5)
    pool = {
        "kernel": [3, 3],
        "strides": [1, 1],
        "pads": [1, 1, 1, 1],
        "ceil_mode": False,
        "count_include_pad": True,
    }
    for op, attrs, shape in [
        ("avg_pool", pool, (2, 4, 4)),
        ("reduce", {"mode": "mean", "axes": [1, 2], "keepdims": False}, (2, 5, 3)),
        ("softmax", {"axis": 1}, (2, 7)),
    ]:
        graph = chain(shape, lambda g, x, op=op, attrs=attrs: g.add(op, [x], name="n", attrs=attrs).output)
        q = Quantize(precision=12, calib=(f32(rng, 8, *shape, scale=3.0),)).run(graph)
        node, fx = q.nodes[0], q.inputs[0].type.format
        acc = node.attrs["acc"]
        if op == "softmax":
            ft = node.params["table"].format
            n = shape[attrs["axis"]]
            assert acc.frac_bits == ft.frac_bits and n * ft.max_mantissa <= acc.max_mantissa
            continue
        count = math.prod(attrs["kernel"]) if op == "avg_pool" else math.prod(shape[a] for a in attrs["axes"])
        shift = acc.frac_bits - fx.frac_bits
        assert shift >= 0
        assert count * fx.max_mantissa * 2**shift <= acc.max_mantissa
        assert count * fx.min_mantissa * 2**shift >= acc.min_mantissa


def test_mean_of_values_inside_the_format_does_not_overflow() -> None:
    """avg_pool keeps its input's format, so the mean of inputs at the format's max must fit: with the
    reciprocal rounded to nearest (up for 1/9) a 24-bit input at max saturated by up to ~2**7 LSBs."""
    for precision in (8, 16, 24):
        pool = {
            "kernel": [3, 3],
            "strides": [3, 3],
            "pads": [0, 0, 0, 0],
            "ceil_mode": False,
            "count_include_pad": True,
        }
        graph = chain((1, 3, 3), lambda g, x, pool=pool: g.add("avg_pool", [x], name="p", attrs=pool).output)
        q = Quantize(precision=precision, calib=(np.full((1, 1, 3, 3), 3.0, np.float32),)).run(graph)
        fx = q.inputs[0].type.format
        for m in (fx.max_mantissa, fx.min_mantissa):
            x = np.full((1, 1, 3, 3), np.ldexp(float(m), -fx.frac_bits), np.float32)
            res = run_fixed(q, x)
            assert res.overflows["p"] == 0, (precision, m)
            assert abs(res.outputs[0].item() - float(x[0, 0, 0, 0])) <= 2 * fx.lsb * (
                1 + 2.0 ** (precision - 15)
            )


# ----------------------------------------------------------------------------------------------------------
# interval mode (no calibration data) is sound


def corner_inputs(
    rng: np.random.Generator, shapes: Sequence[tuple[int, ...]], lo: float, hi: float, n: int
) -> list[np.ndarray]:
    """Random points, random corners of the input box, and the two all-lo / all-hi corners."""
    out = []
    for shape in shapes:
        uniform = rng.uniform(lo, hi, (n, *shape))
        corners = np.where(rng.random((n, *shape)) < 0.5, lo, hi)
        flat = np.stack([np.full(shape, lo), np.full(shape, hi)])
        out.append(np.concatenate([uniform, corners, flat]).astype(np.float32))
    return out


def assert_no_overflow(
    graph: Graph, input_range: tuple[float, float], rng: np.random.Generator, precision: int = 10
) -> None:
    q = Quantize(precision=precision, input_range=input_range).run(graph)
    verify(q)
    inputs = corner_inputs(rng, [v.shape for v in q.inputs], *input_range, n=24)
    res = run_fixed(q, inputs)
    assert all(c == 0 for c in res.overflows.values()), {k: c for k, c in res.overflows.items() if c}


def _interval_graph(kind: str, rng: np.random.Generator) -> Graph:
    if kind == "cnn":

        def build(g: Graph, x: object) -> object:
            c = g.add(
                "conv",
                [x],
                attrs=CONV,
                params={"weight": Param(f32(rng, 3, 2, 3, 3, scale=0.6)), "bias": Param(f32(rng, 3))},
            )
            a = g.add(
                "affine",
                [c.output],
                params={"scale": Param(f32(rng, 3, 1, 1)), "shift": Param(f32(rng, 3, 1, 1))},
            )
            r = g.add("relu", [a.output])
            p = g.add(
                "avg_pool",
                [r.output],
                attrs={
                    "kernel": [2, 2],
                    "strides": [2, 2],
                    "pads": [0, 0, 1, 1],
                    "ceil_mode": True,
                    "count_include_pad": False,
                },
            )
            s = g.add("add", [p.output, p.output])
            cat = g.add("concat", [s.output, p.output], attrs={"axis": 0})
            flat = g.add("reshape", [cat.output], attrs={"shape": [6 * 3 * 3]})
            return g.add("dense", [flat.output], params={"weight": Param(f32(rng, 4, 54, scale=0.3))}).output

        return chain((2, 5, 5), build)
    if kind == "residual":

        def build(g: Graph, x: object) -> object:
            d1 = g.add("dense", [x], params={"weight": Param(f32(rng, 6, 6)), "bias": Param(f32(rng, 6))})
            lr = g.add("leaky_relu", [d1.output], attrs={"alpha": 0.2})
            res = g.add("add", [lr.output, x])
            sub = g.add("sub", [res.output, x])
            m = g.add("mul", [sub.output, x])
            t = g.add("tanh", [m.output])
            return g.add(
                "concat",
                [t.output, g.add("clip", [m.output], attrs={"min": -1.0, "max": 1.0}).output],
                attrs={"axis": 0},
            ).output

        return chain((6,), build)
    return mlp(rng, [5, 7, 7, 3], act="relu")


@pytest.mark.parametrize("kind", ["cnn", "residual", "mlp"])
@pytest.mark.parametrize("input_range", [(-1.0, 1.0), (0.0, 4.0), (-3.0, 0.5)])
def test_interval_mode_never_overflows(kind: str, input_range: tuple[float, float]) -> None:
    rng = np.random.default_rng(len(kind))
    assert_no_overflow(_interval_graph(kind, rng), input_range, rng)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    act=st.sampled_from(["relu", "leaky_relu", "tanh", "sigmoid"]),
    precision=st.integers(MIN_PRECISION, 16),
    bound=st.sampled_from([0.25, 1.0, 3.0]),
)
def test_interval_mode_random_mlps(
    seed: int, sizes: list[int], act: str, precision: int, bound: float
) -> None:
    """Any small MLP quantized from an input range never overflows for inputs inside it."""
    rng = np.random.default_rng(seed)
    assert_no_overflow(mlp(rng, sizes, act), (-bound, bound), rng, precision)


def test_interval_mode_worst_case_dense_input() -> None:
    """The input that maximises each output of a dense layer (by the weights' signs) stays in range."""
    rng = np.random.default_rng(6)
    graph = mlp(rng, [8, 5])
    q = Quantize(precision=8, input_range=(-1.0, 1.0)).run(graph)
    w = q.nodes[0].params["weight"].data
    x = np.concatenate([np.sign(w), -np.sign(w)]).astype(np.float32)
    res = run_fixed(q, x)
    assert all(c == 0 for c in res.overflows.values()), res.overflows


# ----------------------------------------------------------------------------------------------------------
# errors and options


def test_quantizing_twice_is_refused() -> None:
    rng = np.random.default_rng(7)
    q = Quantize(calib=(f32(rng, 4, 5),)).run(mlp(rng, [5, 3]))
    with pytest.raises(QuantizeError, match="already"):
        Quantize(calib=(f32(rng, 4, 5),)).run(q)


def test_ops_without_a_kernel_are_refused_by_name() -> None:
    graph = Graph("g")
    x = graph.add_input("x", TensorType((3, 4)))
    node = graph.add("div", [x, x], name="my_div")
    graph.set_outputs([node.output])
    with pytest.raises(QuantizeError, match=r"my_div.*\(div\)"):
        Quantize(calib=(np.ones((2, 3, 4), np.float32),)).run(graph)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_weights_are_refused(bad: float) -> None:
    rng = np.random.default_rng(8)
    graph = mlp(rng, [4, 3])
    graph.nodes[0].params["weight"].data[1, 2] = bad
    with pytest.raises(QuantizeError, match=r"fc0.*weight.*NaN"):
        Quantize(calib=(f32(rng, 4, 4),)).run(graph)


def test_nan_calibration_is_refused() -> None:
    rng = np.random.default_rng(9)
    calib = f32(rng, 4, 4)
    calib[0, 0] = np.nan
    with pytest.raises(QuantizeError, match="NaN"):
        Quantize(calib=(calib,)).run(mlp(rng, [4, 3]))


@pytest.mark.parametrize("precision", [MIN_PRECISION - 1, MAX_PRECISION + 1, 0, -8, 16.0, True])
def test_precision_out_of_range(precision: object) -> None:
    with pytest.raises(QuantizeError, match="precision"):
        Quantize(precision=precision)  # type: ignore[arg-type]
    with pytest.raises(QuantizeError, match="fc1"):
        Quantize(precision=8, layer_precision={"fc1": precision})  # type: ignore[dict-item]


def test_layer_precision_applies_to_the_named_layer_only() -> None:
    rng = np.random.default_rng(10)
    graph = mlp(rng, [5, 6, 4])
    q = Quantize(precision=12, layer_precision={"fc1": 6}, calib=(f32(rng, 8, 5),)).run(graph)
    widths = {n.name: n.output.type.format.width for n in q.nodes}
    assert widths == {"fc0": 12, "relu0": 11, "fc1": 6}
    assert (
        q.node("fc1").params["weight"].format.width == 6 and q.node("fc0").params["weight"].format.width == 12
    )
    assert q.inputs[0].type.format.width == 12


def test_edge_precision_widens_the_first_and_last_weighted_layers() -> None:
    rng = np.random.default_rng(11)
    calib = (f32(rng, 8, 5),)
    q = Quantize(precision=4, edge_precision=8, calib=calib).run(mlp(rng, [5, 6, 6, 4]))
    widths = {n.name: (n.output.type.format.width, n.params.get("weight")) for n in q.nodes}
    assert {k: w for k, (w, _) in widths.items()} == {"fc0": 8, "relu0": 7, "fc1": 4, "relu1": 3, "fc2": 8}
    assert [q.node(f"fc{i}").params["weight"].format.width for i in range(3)] == [8, 4, 8]
    assert q.inputs[0].type.format.width == 4  # the input stays at precision
    named = Quantize(precision=4, edge_precision=8, layer_precision={"fc2": 6}, calib=calib)
    assert named.run(mlp(rng, [5, 6, 6, 4])).node("fc2").output.type.format.width == 6  # a name wins
    with pytest.raises(QuantizeError, match="edge_precision"):
        Quantize(precision=4, edge_precision=40)
