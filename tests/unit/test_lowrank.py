"""The lowrank pass: exact splits of low-rank layers, budgets, allocation and activation-aware SVD."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fpgac.analysis.cost import graph_cost
from fpgac.interp.interpreter import run_float
from fpgac.ir import Graph, Param, TensorType, verify
from fpgac.passes.linalg import vbmf_rank
from fpgac.passes.lowrank import LowRank, LowRankError

WINDOW = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}


def f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32)


def low_rank(rng: np.random.Generator, m: int, n: int, r: int) -> np.ndarray:
    return rng.normal(size=(m, r)) @ rng.normal(size=(r, n)) / np.sqrt(r)


def dense_chain(rng: np.random.Generator, sizes: list[int], ranks: list[int] | None = None) -> Graph:
    graph = Graph("chain")
    value = graph.add_input("x", TensorType((sizes[0],)))
    for i, (n, m) in enumerate(itertools.pairwise(sizes)):
        w = low_rank(rng, m, n, ranks[i]) if ranks else rng.normal(size=(m, n)) / np.sqrt(n)
        params = {"weight": Param(f32(w)), "bias": Param(f32(rng.normal(size=m)))}
        value = graph.add("dense", [value], name=f"fc{i + 1}", params=params).output
        if i < len(sizes) - 2:
            value = graph.add("relu", [value], name=f"r{i + 1}").output
    graph.set_outputs([value])
    return graph


def conv_graph(weight: np.ndarray) -> Graph:
    graph = Graph("conv")
    x = graph.add_input("x", TensorType((weight.shape[1], 6, 6)))
    params = {"weight": Param(f32(weight)), "bias": Param(f32(np.arange(weight.shape[0]) * 0.1))}
    y = graph.add("conv", [x], name="conv", attrs=WINDOW, params=params)
    graph.set_outputs([y.output])
    return graph


def test_dense_of_rank_r_splits_exactly_with_the_bias_on_the_second_factor() -> None:
    rng = np.random.default_rng(0)
    graph = dense_chain(rng, [30, 20, 5], ranks=[3, 2])
    x = f32(rng.normal(size=(16, 30)))
    before = run_float(graph.clone(), [x])[0]
    split = LowRank(rank=3).run(graph)
    verify(split)
    first, second = split.node("fc1_lr1"), split.node("fc1_lr2")
    assert first.params["weight"].shape == (3, 30) and "bias" not in first.params
    assert second.params["weight"].shape == (20, 3) and second.params["bias"].shape == (20,)
    assert split.outputs[0].name == "fc2"  # the split layer's output keeps its name
    np.testing.assert_allclose(run_float(split, [x])[0], before, rtol=1e-4, atol=1e-4)
    layers = split.metadata["compression"][-1]["layers"]
    assert layers["fc1"] == {"rank": 3, "split": True, "macs_before": 600, "macs_after": 3 * 50}
    assert layers["fc2"]["split"] is True  # (20 + 5) * 3 < 5 * 20


def test_a_layer_is_split_only_where_it_saves_macs() -> None:
    graph = dense_chain(np.random.default_rng(1), [10, 10, 10])
    split = LowRank(rank=6).run(graph)  # (10 + 10) * 6 > 100
    assert [n.name for n in split.nodes] == ["fc1", "r1", "fc2"]
    assert split.metadata["compression"][-1]["layers"]["fc1"]["split"] is False


def test_conv_svd_split_is_exact_for_a_low_rank_kernel() -> None:
    rng = np.random.default_rng(2)
    weight = low_rank(rng, 8, 4 * 9, 2).reshape(8, 4, 3, 3)
    graph = conv_graph(weight)
    x = f32(rng.normal(size=(4, 4, 6, 6)))
    before = run_float(graph.clone(), [x])[0]
    split = LowRank(rank=2).run(graph)
    verify(split)
    assert split.node("conv_lr1").params["weight"].shape == (2, 4, 3, 3)
    assert split.node("conv_lr2").params["weight"].shape == (8, 2, 1, 1)
    assert split.node("conv_lr2").attrs["pads"] == [0, 0, 0, 0]
    np.testing.assert_allclose(run_float(split, [x])[0], before, rtol=1e-4, atol=1e-4)


def tucker_kernel(rng: np.random.Generator, noise: float) -> np.ndarray:
    """A 12 x 6 x 3 x 3 kernel of multilinear rank (3, 2), plus noise."""
    core = rng.normal(size=(3, 2, 3, 3))
    weight = np.einsum("ri...,or,ci->oc...", core, rng.normal(size=(12, 3)), rng.normal(size=(6, 2)))
    return weight + noise * rng.normal(size=weight.shape)


def test_tucker2_is_exact_for_a_kernel_of_multilinear_rank_r() -> None:
    rng = np.random.default_rng(3)
    graph = conv_graph(tucker_kernel(rng, 0.0))
    x = f32(rng.normal(size=(4, 6, 6, 6)))
    before = run_float(graph.clone(), [x])[0]
    split = LowRank(rank=3, method="tucker").run(graph)
    verify(split)
    shapes = [n.params["weight"].shape for n in split.nodes]
    assert shapes == [(3, 6, 1, 1), (3, 3, 3, 3), (12, 3, 1, 1)]
    assert split.nodes[1].attrs == WINDOW and split.nodes[0].attrs["pads"] == [0, 0, 0, 0]
    np.testing.assert_allclose(run_float(split, [x])[0], before, rtol=1e-3, atol=1e-3)
    assert split.metadata["compression"][-1]["layers"]["conv"]["rank"] == [3, 3]


def test_tucker2_rank_auto_finds_each_modes_rank_by_vbmf() -> None:
    split = LowRank(rank="auto", method="tucker").run(
        conv_graph(tucker_kernel(np.random.default_rng(4), 0.01))
    )
    assert split.metadata["compression"][-1]["layers"]["conv"]["rank"] == [3, 2]
    assert [n.params["weight"].shape for n in split.nodes] == [(2, 6, 1, 1), (3, 2, 3, 3), (12, 3, 1, 1)]


@pytest.mark.parametrize("allocation", ["global", "uniform"])
@pytest.mark.parametrize("budget", [0.2, 0.3, 0.5])
def test_mac_budget_is_met_within_two_percent(allocation: str, budget: float) -> None:
    graph = dense_chain(np.random.default_rng(4), [256, 128, 96, 10])
    total = graph_cost(graph).macs
    split = LowRank(macs=budget, allocation=allocation).run(graph)
    assert graph_cost(split).macs <= budget * total
    assert graph_cost(split).macs >= (budget - 0.02) * total
    record = split.metadata["compression"][-1]
    assert record["macs_before"] == total and record["macs_after"] == graph_cost(split).macs


def test_params_budget_counts_params() -> None:
    graph = dense_chain(np.random.default_rng(5), [256, 128, 10])
    total = graph_cost(graph).params
    assert graph_cost(LowRank(params=0.3).run(graph)).params <= 0.3 * total


def test_global_allocation_spends_rank_where_the_spectrum_needs_it() -> None:
    """One layer is exactly rank 4, the other full rank: global keeps the error lower at the same MACs."""
    rng = np.random.default_rng(6)

    def graph() -> Graph:
        return dense_chain(np.random.default_rng(6), [64, 64, 64], ranks=[4, 64])

    x = f32(rng.normal(size=(256, 64)))
    reference = run_float(graph(), [x])[0]
    errors = {}
    for allocation in ("global", "uniform"):
        split = LowRank(macs=0.5, allocation=allocation, aware=False).run(graph())
        errors[allocation] = float(np.mean((run_float(split, [x])[0] - reference) ** 2))
    assert errors["global"] < errors["uniform"]


def test_activation_aware_split_has_lower_output_error_on_correlated_inputs() -> None:
    rng = np.random.default_rng(7)
    graph = dense_chain(rng, [32, 24, 8])
    mix = rng.normal(size=(32, 32)) * np.logspace(0, -3, 32)[None, :]
    x = f32(rng.normal(size=(512, 32)) @ mix.T + 1.0)
    reference = run_float(graph.clone(), [x])[0]

    def error(aware: bool) -> float:
        split = LowRank(rank=4, aware=aware, calib=(x,)).run(graph.clone())
        return float(np.mean((run_float(split, [x])[0] - reference) ** 2))

    assert error(True) < 0.5 * error(False)


def test_options_are_checked() -> None:
    with pytest.raises(LowRankError, match="exactly one of"):
        LowRank(macs=0.3, rank=4)
    with pytest.raises(LowRankError, match="exactly one of"):
        LowRank()
    with pytest.raises(LowRankError, match="aware=true needs calibration data"):
        LowRank(macs=0.3, aware=True)
    with pytest.raises(LowRankError, match="allocation"):
        LowRank(macs=0.3, allocation="random")
    with pytest.raises(LowRankError, match="out of reach"):
        LowRank(macs=0.01).run(dense_chain(np.random.default_rng(0), [8, 8, 8]))


def test_vbmf_finds_the_rank_under_noise() -> None:
    rng = np.random.default_rng(8)
    matrix = low_rank(rng, 40, 60, 5) * 3 + 0.05 * rng.normal(size=(40, 60))
    assert vbmf_rank(matrix) == 5
    assert vbmf_rank(matrix.T) == 5


def test_passes_on_a_clone_leave_the_original_metadata_alone() -> None:
    graph = dense_chain(np.random.default_rng(9), [30, 20, 5])
    graph.metadata["compression"] = []
    LowRank(rank=2).run(graph.clone())
    assert graph.metadata["compression"] == []


@pytest.mark.parametrize(
    ("allocation", "budget", "floor", "starved"), [("global", 0.4, 3, "fc1"), ("uniform", 0.1, 2, "fc3")]
)
def test_min_rank_floors_every_layer_within_the_budget(
    allocation: str, budget: float, floor: int, starved: str
) -> None:
    """A layer the allocation starves (global: the one of exactly rank 1; uniform: the small last one)
    keeps ``min_rank`` components, and the budget still holds."""
    graph = dense_chain(np.random.default_rng(8), [64, 64, 64, 10], ranks=[1, 64, 10])
    total = graph_cost(graph).macs
    free = LowRank(macs=budget, allocation=allocation, aware=False).run(graph.clone())
    floored = LowRank(macs=budget, allocation=allocation, aware=False, min_rank=floor).run(graph.clone())
    ranks = {k: v["rank"] for k, v in floored.metadata["compression"][-1]["layers"].items()}
    assert free.metadata["compression"][-1]["layers"][starved]["rank"] < floor <= min(ranks.values())
    assert graph_cost(floored).macs <= budget * total
    assert floored.metadata["compression"][-1]["options"]["min_rank"] == floor


def test_min_rank_is_checked() -> None:
    with pytest.raises(LowRankError, match="min_rank must be a positive integer"):
        LowRank(macs=0.3, min_rank=0)
    with pytest.raises(LowRankError, match="give macs or params"):
        LowRank(rank=4, min_rank=2)
    with pytest.raises(LowRankError, match="rank 60 everywhere"):
        LowRank(macs=0.3, min_rank=60).run(dense_chain(np.random.default_rng(0), [64, 64, 64]))
