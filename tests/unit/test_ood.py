"""The ood pass: exact energies (vs numpy, brute-force im2col), threshold, layer choice, warning."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from fpgac.analysis.ood_report import ood_markdown
from fpgac.backends.hls4ml.lower import Hls4mlError, lower
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Graph, Param, TensorType, fixed, verify
from fpgac.ir.types import Fixed
from fpgac.passes.lowrank import LowRank
from fpgac.passes.ood import Ood, OodError, auroc, stable_rank
from fpgac.passes.ood_formats import EnergyWidthError, energy_format
from fpgac.passes.ood_layers import monitorable_layers, reused_basis
from fpgac.passes.pipeline import user_calls
from fpgac.passes.quantize import Quantize


def mlp(rng: np.random.Generator, sizes: list[int], ranks: dict[int, int]) -> Graph:
    """Dense + ReLU layers; layer i's weight has rank ``ranks[i]`` when given (plus a little noise)."""
    graph = Graph("mlp")
    value = graph.add_input("x", TensorType((sizes[0],)))
    for i, (n, m) in enumerate(itertools.pairwise(sizes)):
        w = rng.normal(size=(m, n)) / np.sqrt(n)
        if i in ranks:
            r = ranks[i]
            w = rng.normal(size=(m, r)) @ rng.normal(size=(r, n)) / n + 0.001 * w
        params = {
            "weight": Param(w.astype(np.float32)),
            "bias": Param(rng.normal(size=m).astype(np.float32) * 0.1),
        }
        value = graph.add("dense", [value], name=f"fc{i + 1}", params=params).output
        if i < len(sizes) - 2:
            value = graph.add("relu", [value], name=f"r{i + 1}").output
    graph.set_outputs([value])
    return graph


def cnn(rng: np.random.Generator, width: int = 3) -> Graph:
    """Two convs (the second strided, padded only in height, a 3x2 kernel, ``width`` filters) and a dense
    classifier."""
    graph = Graph("cnn")
    v = graph.add_input("x", TensorType((2, 7, 7)))
    same = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    odd = {"strides": [2, 2], "pads": [1, 0, 1, 0], "dilations": [1, 1], "groups": 1}
    v = graph.add(
        "conv", [v], name="c1", attrs=same, params={"weight": Param(rng.normal(size=(4, 2, 3, 3)) * 0.4)}
    )
    v = graph.add("relu", [v.output], name="r1")
    v = graph.add(
        "conv",
        [v.output],
        name="c2",
        attrs=odd,
        params={"weight": Param(rng.normal(size=(width, 4, 3, 2)) * 0.4)},
    )
    v = graph.add("reshape", [v.output], name="flat", attrs={"shape": [12 * width]})
    weight = Param(rng.normal(size=(5, 12 * width)) * 0.3)
    v = graph.add("dense", [v.output], name="fc", params={"weight": weight})
    graph.set_outputs([v.output])
    return graph


def run_float_trace(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) for k, v in run_float(graph, x, trace=True).items()}


def quantized(graph: Graph, calib: np.ndarray, bits: int = 8) -> Graph:
    return Quantize(precision=bits, calib=(calib,)).run(graph)


def outputs(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    result = run_fixed(graph, x, trace=True)
    return {**result.trace, **{v.name: m for v, m in zip(graph.outputs, result.mantissas, strict=True)}}


def stored(graph: Graph, traced: dict[str, np.ndarray], value_name: str) -> np.ndarray:
    value = next(v for v in graph.values() if v.name == value_name)
    return fixed.to_float(traced[value_name], value.type.format).astype(np.float64)


def check_exact(graph: Graph, traced: dict[str, np.ndarray], cols: np.ndarray) -> None:
    """num, den and the flag against numpy on the stored values (all on float64 grids, exactly)."""
    basis = graph.node("ood_num").params["basis"].data
    num = np.square(cols @ basis.T).sum(axis=(1, 2))
    den = np.square(cols).sum(axis=(1, 2))
    assert np.array_equal(stored(graph, traced, "ood_num")[:, 0], num)
    assert np.array_equal(stored(graph, traced, "ood_den")[:, 0], den)
    tau = float(graph.node("ood_flag").params["tau"].data)
    assert np.array_equal(traced["ood_flag"][:, 0], (num < tau * den).astype(np.int64))


def test_dense_energies_are_exact_and_the_classifier_is_untouched() -> None:
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(200, 12)).astype(np.float32)
    graph = quantized(mlp(rng, [12, 16, 10, 4], {1: 2}), calib)
    before = run_fixed(graph, calib).mantissas[0]
    graph = Ood(layer="fc2", k=3, calib=(calib,)).run(graph)
    verify(graph)
    assert [v.name for v in graph.outputs][1:] == ["ood_flag", "ood_num", "ood_den"]
    traced = outputs(graph, calib)
    assert np.array_equal(traced[graph.outputs[0].name], before)
    check_exact(graph, traced, stored(graph, traced, "r1")[:, None, :])
    facts = graph.metadata["ood"]
    assert facts["k"] == 3 and facts["calib_tpr"] >= 0.95
    assert set(facts["separation"]) == {"fc2"}  # the chosen layer's score on synthetic outliers
    assert abs(traced["ood_flag"].mean() - 0.05) <= 0.02  # tau at the 95% quantile, rounded down
    assert facts["words"] == 3 * 16 + 1 and facts["mahalanobis_words"] == 4 * 16 + 16 * 16


def test_conv_energies_equal_brute_force_im2col_over_zero_padding() -> None:
    rng = np.random.default_rng(1)
    calib = rng.normal(size=(48, 2, 7, 7)).astype(np.float32)
    graph = Ood(layer="c2", k=3, calib=(calib,)).run(quantized(cnn(rng), calib))
    traced = outputs(graph, calib)
    h = np.pad(stored(graph, traced, "r1"), ((0, 0), (0, 0), (1, 1), (0, 0)))  # pads: 1 on top and bottom
    cols = [h[:, :, i : i + 3, j : j + 2].reshape(len(h), -1) for i in range(0, 7, 2) for j in range(0, 6, 2)]
    check_exact(graph, traced, np.stack(cols, axis=1))
    assert graph.metadata["ood"]["patches"] == 12


def test_auto_picks_the_lowest_stable_rank_hidden_layer_and_warns_on_full_rank(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(2)
    calib = rng.normal(size=(100, 20)).astype(np.float32)
    low = mlp(rng, [20, 24, 24, 24, 6], {0: 1, 2: 2})  # fc1 is lowest but the first layer: never monitored
    with caplog.at_level(logging.WARNING):
        facts = Ood(calib=(calib,)).run(quantized(low, calib)).metadata["ood"]
    assert facts["layer"] == "fc3" and facts["k"] == 2 and "not low-rank" not in facts.get("warning", "")
    assert facts["srank"]["fc3"] == min(facts["srank"][n] for n in ("fc2", "fc3", "fc4"))
    assert not [r for r in caplog.records if "not low-rank" in r.message]
    full = mlp(rng, [20, 24, 24, 6], {})  # fc3, the output layer, is never auto's choice next to fc2
    full.node("fc2").params["weight"] = Param(np.linalg.qr(rng.normal(size=(24, 24)))[0])  # srank 24
    with caplog.at_level(logging.WARNING):
        facts = Ood(calib=(calib,)).run(quantized(full, calib)).metadata["ood"]
    assert "try score=residual" in facts["warning"]
    assert [r for r in caplog.records if "not low-rank" in r.message]
    assert "warning: layer" in "\n".join(ood_markdown(facts))
    more = mlp(rng, [20, 32, 32, 3], {1: 8})  # fc2: srank below 32/4 but above the 3 classes
    facts = Ood(calib=(calib,)).run(quantized(more, calib)).metadata["ood"]
    assert facts["srank"]["fc2"] > 3 and "not low-rank" in facts["warning"]


def test_residual_centres_exactly_and_reports_the_separation_per_layer() -> None:
    rng = np.random.default_rng(3)
    calib = np.abs(rng.normal(size=(120, 16))).astype(np.float32)
    graph = Ood(score="residual", calib=(calib,)).run(quantized(mlp(rng, [16, 12, 12, 12, 3], {}), calib))
    facts = graph.metadata["ood"]
    assert set(facts["separation"]) == {"fc2", "fc3"} and facts["layer"] in ("fc2", "fc3")
    traced = outputs(graph, calib)
    centred = stored(graph, traced, "ood_center")
    h = stored(graph, traced, graph.node(facts["layer"]).inputs[0].name)
    assert np.array_equal(centred, h + graph.node("ood_center").params["shift"].data)  # no rounding
    check_exact(graph, traced, centred[:, None, :])
    assert "separation (AUROC)" in "\n".join(ood_markdown(facts))


@pytest.mark.parametrize("score", ["projection", "residual"])
def test_bases_leave_out_the_calibration_mean_direction(score: str) -> None:
    rng = np.random.default_rng(6)
    calib = np.abs(rng.normal(size=(80, 10))).astype(np.float32) + 1.0
    graph = Ood(layer="fc2", k=2, score=score, calib=(calib,)).run(mlp(rng, [10, 8, 8, 3], {1: 2}))
    h = run_float_trace(graph, calib)["r1"]
    basis = graph.node("ood_num").params["basis"].data
    assert np.abs(basis @ h.mean(axis=0)).max() < 1e-9 * np.linalg.norm(h.mean(axis=0))
    assert np.allclose(basis @ basis.T, np.eye(2))


def test_float_graph_is_formatted_by_the_quantize_pass() -> None:
    rng = np.random.default_rng(4)
    calib = rng.normal(size=(64, 10)).astype(np.float32)
    graph = Ood(layer="fc2", calib=(calib,)).run(mlp(rng, [10, 8, 8, 3], {1: 2}))
    graph = quantized(graph, calib)
    verify(graph)
    traced = outputs(graph, calib)
    check_exact(graph, traced, stored(graph, traced, "r1")[:, None, :])


def test_pipeline_errors_and_refusals() -> None:
    assert [c.name for c in user_calls("ood(k=2)")] == ["quantize", "ood"]
    assert [c.name for c in user_calls("lowrank, ood")] == ["lowrank", "quantize", "ood"]
    rng = np.random.default_rng(5)
    calib = rng.normal(size=(32, 6)).astype(np.float32)
    with pytest.raises(OodError, match="calibration"):
        Ood().run(mlp(rng, [6, 5, 3], {}))
    with pytest.raises(OodError, match="no hidden"):
        Ood(calib=(calib,)).run(mlp(rng, [6, 3], {}))
    with pytest.raises(OodError, match="not a hidden dense/conv layer"):
        Ood(layer="fc1", calib=(calib,)).run(mlp(rng, [6, 5, 3], {}))
    with pytest.raises(OodError, match="residual monitors dense layers; 'c2' is a conv"):
        calib_cnn = rng.normal(size=(8, 2, 7, 7)).astype(np.float32)
        Ood(layer="c2", score="residual", calib=(calib_cnn,)).run(cnn(rng))
    with pytest.raises(OodError, match="score"):
        Ood(score="energy")
    graph = Ood(calib=(calib,)).run(quantized(mlp(rng, [6, 5, 3], {}), calib))
    with pytest.raises(Hls4mlError, match="patch_energy"):
        lower(graph)


def test_stable_rank_and_auroc() -> None:
    assert stable_rank(np.diag([3.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert stable_rank(np.eye(4)) == pytest.approx(4.0)
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5


def test_an_energy_wider_than_ap_fixed_is_refused_by_name() -> None:
    graph = Graph("wide")
    x = graph.add_input("x", TensorType((4,), Fixed(520, 260, True)))
    node = graph.add(
        "patch_energy", [x], name="den", attrs={"kernel": [], "strides": [], "pads": [], "dilations": []}
    )
    with pytest.raises(EnergyWidthError, match="node 'den' \\(patch_energy\\): exact energy needs 1041 bits"):
        energy_format(node, Fixed(520, 260, True))


def split_and_monitor(graph: Graph, calib: np.ndarray, layer: str) -> tuple[Graph, np.ndarray]:
    """Split every layer by weight SVD at rank 3, quantize, and monitor ``layer`` (k = 2); also the
    classifier's output before the monitor."""
    split = quantized(LowRank(rank=3, calib=(calib,)).run(graph), calib)
    before = run_fixed(split, calib).mantissas[0]
    return Ood(layer=layer, k=2, calib=(calib,)).run(split), before


def test_split_layer_reuses_its_first_factor_exactly() -> None:
    rng = np.random.default_rng(7)
    calib = rng.normal(size=(120, 12)).astype(np.float32)
    graph, before = split_and_monitor(mlp(rng, [12, 16, 10, 4], {1: 2}), calib, "fc2")
    verify(graph)
    traced = outputs(graph, calib)
    assert np.array_equal(traced[graph.outputs[0].name], before)  # the classifier is untouched
    factor = graph.node("fc2_lr1")
    assert graph.node("ood_num").inputs[0] is factor.output
    z, h = stored(graph, traced, factor.output.name), stored(graph, traced, "r1")
    q = graph.node("ood_num").params["basis"].data
    assert q.shape == (2, 3)  # k x r, not k x 16
    num, den = np.square(z @ q.T).sum(axis=1), np.square(h).sum(axis=1)
    assert np.array_equal(stored(graph, traced, "ood_num")[:, 0], num)
    assert np.array_equal(stored(graph, traced, "ood_den")[:, 0], den)
    tau = float(graph.node("ood_flag").params["tau"].data)
    assert np.array_equal(traced["ood_flag"][:, 0], (num < tau * den).astype(np.int64))
    facts = graph.metadata["ood"]
    assert facts["layer"] == "fc2" and facts["reused_factor"] == "fc2_lr1"
    assert facts["words"] == 2 * 3 + 1 and facts["words_saved"] == 2 * (16 - 3)
    assert facts["extra_macs"] == 2 * 3 + 2 + 16 + 1 and facts["macs_saved"] == 2 * (16 - 3)
    assert "reuses the low-rank split's first factor `fc2_lr1`" in "\n".join(ood_markdown(facts))


def test_reused_basis_lies_in_the_factor_row_space_without_the_mean() -> None:
    rng = np.random.default_rng(8)
    calib = np.abs(rng.normal(size=(80, 10))).astype(np.float32) + 1.0
    graph = LowRank(rank=3, aware=False).run(mlp(rng, [10, 12, 12, 3], {}))
    layer = next(n for n in monitorable_layers(graph) if n.name == "fc2")
    first = graph.node("fc2_lr1").params["weight"].data.astype(np.float64)
    second = graph.node("fc2_lr2").params["weight"].data.astype(np.float64)
    assert layer.factor is not None and np.allclose(layer.weight, second @ first)
    mean = run_float_trace(graph, calib)["r1"].mean(axis=0)
    v, q = reused_basis(layer, mean, 2)
    assert np.allclose(v @ v.T, np.eye(2)) and np.abs(v @ mean).max() < 1e-9 * np.linalg.norm(mean)
    assert np.allclose(q @ first, v)  # ||V h||^2 = ||Q z||^2 with z = A h
