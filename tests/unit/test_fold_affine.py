"""fold_affine on hand-built IR graphs: what folds, what must not, and that folding keeps the numbers."""

from __future__ import annotations

import numpy as np
import pytest

from fpgac.interp import run_float
from fpgac.ir import Graph, Param, TensorType, verify
from fpgac.passes import PASSES
from fpgac.passes.fold_affine import FoldAffine

RNG = np.random.default_rng(1)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def conv_graph(scale_shape: tuple[int, ...], *, bias: bool = True) -> Graph:
    graph = Graph("g")
    x = graph.add_input("x", TensorType((2, 5, 5)))
    params = {"weight": Param(rand(3, 2, 3, 3))}
    if bias:
        params["bias"] = Param(rand(3))
    attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    conv = graph.add("conv", [x], name="conv", attrs=attrs, params=params)
    affine = graph.add(
        "affine",
        [conv.output],
        name="bn",
        params={"scale": Param(rand(*scale_shape)), "shift": Param(rand(*scale_shape))},
    )
    graph.set_outputs([affine.output])
    return graph


def fold_and_compare(graph: Graph) -> Graph:
    """Fold a clone; the folded graph must compute what the original does (float32 tolerance)."""
    verify(graph)
    x = RNG.standard_normal((4, *graph.inputs[0].shape)).astype(np.float32)
    expected = run_float(graph, x)[0]
    folded = FoldAffine().run(graph.clone())
    verify(folded)
    np.testing.assert_allclose(run_float(folded, x)[0], expected, rtol=1e-5, atol=1e-5)
    return folded


@pytest.mark.parametrize("bias", [True, False])
def test_conv_affine_per_channel_folds(bias: bool) -> None:
    folded = fold_and_compare(conv_graph((3, 1, 1), bias=bias))
    assert [n.op for n in folded.nodes] == ["conv"] and "bias" in folded.nodes[0].params


def test_fold_matches_numpy_formula() -> None:
    graph = conv_graph((3, 1, 1))
    conv, bn = graph.nodes
    w, b = conv.params["weight"].data, conv.params["bias"].data
    s, t = bn.params["scale"].data.reshape(-1), bn.params["shift"].data.reshape(-1)
    (folded,) = FoldAffine().run(graph).nodes
    np.testing.assert_allclose(folded.params["weight"].data, w * s[:, None, None, None], rtol=1e-6)
    np.testing.assert_allclose(folded.params["bias"].data, b * s + t, rtol=1e-6, atol=1e-7)


def test_scalar_affine_folds() -> None:
    folded = fold_and_compare(conv_graph(()))
    assert [n.op for n in folded.nodes] == ["conv"]


def test_spatial_affine_stays() -> None:
    folded = fold_and_compare(conv_graph((1, 5, 5)))
    assert [n.op for n in folded.nodes] == ["conv", "affine"]


def test_producer_with_two_consumers_stays() -> None:
    graph = conv_graph((3, 1, 1))
    conv = graph.nodes[0]
    relu = graph.add("relu", [conv.output], name="relu")
    graph.set_outputs([*graph.outputs, relu.output])
    folded = FoldAffine().run(graph)
    assert [n.op for n in folded.nodes] == ["conv", "affine", "relu"]


def test_producer_that_is_a_graph_output_stays() -> None:
    graph = conv_graph((3, 1, 1))
    graph.set_outputs([graph.nodes[0].output, *graph.outputs])
    assert [n.op for n in FoldAffine().run(graph).nodes] == ["conv", "affine"]


def test_dense_affine_folds_per_feature_only() -> None:
    for shape, ops in [((4,), ["dense"]), ((1, 4), ["dense"]), ((3, 1), ["dense", "affine"])]:
        graph = Graph("g")
        x = graph.add_input("x", TensorType((3, 6)))
        dense = graph.add("dense", [x], name="fc", params={"weight": Param(rand(4, 6))})
        affine = graph.add(
            "affine",
            [dense.output],
            name="a",
            params={"scale": Param(rand(*shape)), "shift": Param(rand(*shape))},
        )
        graph.set_outputs([affine.output])
        assert [n.op for n in fold_and_compare(graph).nodes] == ops


def test_affine_chain_merges_then_folds() -> None:
    graph = conv_graph((3, 1, 1))
    second = graph.add(
        "affine",
        [graph.outputs[0]],
        name="mul",
        params={"scale": Param(rand(3, 1, 1)), "shift": Param(rand(1))},
    )
    graph.set_outputs([second.output])
    assert [n.op for n in fold_and_compare(graph).nodes] == ["conv"]


def test_affine_after_other_ops_stays_and_chain_merges() -> None:
    graph = Graph("g")
    x = graph.add_input("x", TensorType((3, 4)))
    relu = graph.add("relu", [x], name="relu")
    a = graph.add(
        "affine", [relu.output], name="a", params={"scale": Param(rand(3, 1)), "shift": Param(rand(3, 1))}
    )
    b = graph.add("affine", [a.output], name="b", params={"scale": Param(rand(4)), "shift": Param(rand(4))})
    graph.set_outputs([b.output])
    folded = fold_and_compare(graph)
    assert [n.op for n in folded.nodes] == ["relu", "affine"]
    assert folded.nodes[1].params["scale"].shape == (3, 4)


def test_registry() -> None:
    assert PASSES["fold_affine"] is FoldAffine and FoldAffine.name == "fold_affine"
