"""The reap pass: REAP's closed form against brute-force least squares, and unit removal on small graphs."""

from __future__ import annotations

import numpy as np
import pytest

from fpgac.analysis.cost import graph_cost
from fpgac.interp.interpreter import run_float
from fpgac.ir import Graph, Node, Param, TensorType, verify
from fpgac.ir.graph import Value
from fpgac.passes import linalg
from fpgac.passes.linalg import add_damping, reap_group_select, reap_select, refit, unify_select
from fpgac.passes.pipeline import make_pass, run_pipeline
from fpgac.passes.reap import Reap, ReapError
from fpgac.passes.spec import parse_pass_spec
from fpgac.passes.units import find_groups


def f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32)


def brute_force(
    weight: np.ndarray, gram: np.ndarray, blocks: list[np.ndarray], keep: int
) -> tuple[list[int], np.ndarray]:
    """Greedy selection by solving the least-squares refit from scratch for every candidate."""
    remaining, best_weight = list(range(len(blocks))), weight
    every = np.arange(weight.shape[1])
    while len(remaining) > keep:
        trials = []
        for b in remaining:
            dropped = np.concatenate([blocks[u] for u in range(len(blocks)) if u not in remaining or u == b])
            trial = refit(weight, gram, np.setdiff1d(every, dropped))
            diff = weight - trial
            trials.append((np.trace(diff @ gram @ diff.T), b, trial))
        _, b, best_weight = min(trials, key=lambda t: t[0])
        remaining.remove(b)
    return sorted(remaining), best_weight


@pytest.mark.parametrize("block", [1, 4])
@pytest.mark.parametrize("seed", range(4))
def test_reap_matches_brute_force_least_squares(block: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    units, samples = 9, 60
    x = rng.normal(size=(samples, units * block)) @ rng.normal(size=(units * block, units * block))
    rows = np.concatenate([x, np.ones((samples, 1))], axis=1)  # the bias column is never dropped
    gram = add_damping(rows.T @ rows, 1e-3)
    weight = rng.normal(size=(5, units * block + 1))
    blocks = [np.arange(u * block, (u + 1) * block) for u in range(units)]
    for keep in (1, 3, 7):
        kept, fitted = reap_select(weight, gram, blocks, keep)
        expected_kept, expected = brute_force(weight, gram, blocks, keep)
        assert kept == expected_kept
        np.testing.assert_allclose(fitted, expected, rtol=0, atol=1e-8)


def joint_brute_force(
    weights: list[np.ndarray], grams: list[np.ndarray], blocks: list[list[np.ndarray]], keep: int
) -> tuple[list[int], list[np.ndarray]]:
    """Greedy selection of a group's units by solving every consumer's refit from scratch per candidate."""
    remaining, best = list(range(len(blocks[0]))), weights
    while len(remaining) > keep:
        trials = []
        for b in remaining:
            fitted, error = [], 0.0
            for w, g, bl in zip(weights, grams, blocks, strict=True):
                dropped = np.concatenate([bl[u] for u in range(len(bl)) if u not in remaining or u == b])
                trial = refit(w, g, np.setdiff1d(np.arange(w.shape[1]), dropped))
                fitted.append(trial)
                error += float(np.trace((w - trial) @ g @ (w - trial).T))
            trials.append((error, b, fitted))
        _, b, best = min(trials, key=lambda t: t[0])
        remaining.remove(b)
    return sorted(remaining), best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shapes", [((1, 3), (4, 5), (2, 2)), ((1, 2),) * 4])
def test_group_criterion_is_joint_least_squares_over_every_consumer(
    seed: int, shapes: tuple[tuple[int, int], ...]
) -> None:
    """Consumers read the same 7 units with their own inputs: 1 column, 4 taps, 2 flattened; or four
    alike (POEM's one problem per output, vectorised)."""
    rng = np.random.default_rng(seed)
    units, samples = 7, 80
    weights, grams, blocks = [], [], []
    for width, out in shapes:
        n = units * width
        x = rng.normal(size=(samples, n)) @ rng.normal(size=(n, n))
        rows = np.concatenate([x, np.ones((samples, 1))], axis=1)
        grams.append(add_damping(rows.T @ rows, 1e-3))
        weights.append(rng.normal(size=(out, n + 1)))
        blocks.append([np.arange(u * width, (u + 1) * width) for u in range(units)])
    for keep in (1, 3, 6):
        kept, fitted = reap_group_select(weights, grams, blocks, keep)
        expected_kept, expected = joint_brute_force(weights, grams, blocks, keep)
        assert kept == expected_kept
        for got, want in zip(fitted, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)


def test_refit_is_least_squares_on_the_kept_columns() -> None:
    rng = np.random.default_rng(0)
    x, weight = rng.normal(size=(40, 6)), rng.normal(size=(3, 6))
    kept = np.array([0, 2, 5])
    solution, *_ = np.linalg.lstsq(x[:, kept], x @ weight.T, rcond=None)
    np.testing.assert_allclose(refit(weight, x.T @ x, kept)[:, kept], solution.T, atol=1e-10)


def test_moments_of_a_conv_input_are_accumulated_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunked sums equal the sums over the whole im2col matrix, and the fit is least squares."""
    rng = np.random.default_rng(2)
    graph = cnn(rng)
    conv = graph.node("c2")
    x = rng.normal(size=(20, 6, 3, 3))
    y = run_float(graph_of(conv), [f32(x)])[0]
    rows = np.concatenate([linalg.layer_rows(conv, x), np.ones((20 * 9, 1))], axis=1)
    monkeypatch.setattr(linalg, "_CHUNK", 200)  # a few samples per chunk
    stats = linalg.moments(conv, x, y)
    assert stats.rows == 180
    np.testing.assert_allclose(stats.gram, rows.T @ rows, atol=1e-9)
    np.testing.assert_allclose(stats.cross, rows.T @ linalg.output_rows(conv, y), atol=1e-6)
    weight = conv.params["weight"].data.reshape(5, -1)
    fitted = stats.fit(1e-12)
    assert fitted is not None
    np.testing.assert_allclose(fitted[:, :-1], weight, atol=1e-4)
    np.testing.assert_allclose(fitted[:, -1], conv.params["bias"].data, atol=1e-4)


def graph_of(node: Node) -> Graph:
    """A graph of one copy of ``node`` (same op, attrs and params) on an input of its input's type."""
    graph = Graph("one")
    x = graph.add_input("x", node.inputs[0].type)
    copy = graph.add(node.op, [x], attrs=node.attrs, params=node.params)
    graph.set_outputs([copy.output])
    return graph


def test_unify_merges_an_exact_copy_without_error() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 3))
    signals = np.concatenate([z, 2.0 * z[:, :1] + 0.5], axis=1)  # unit 3 = 2 * unit 0 + 0.5
    weight = np.concatenate([rng.normal(size=(4, 4)), rng.normal(size=(4, 1))], axis=1)
    kept, folded = unify_select(weight, signals, [np.array([u]) for u in range(4)], 4, 3)
    assert kept == [0, 1, 2]
    np.testing.assert_allclose(
        signals @ weight[:, :4].T + weight[:, 4], signals @ folded[:, :4].T + folded[:, 4], atol=1e-9
    )


# -- the pass on graphs ------------------------------------------------------------------------------


def mlp(rng: np.random.Generator, duplicate: bool = False) -> Graph:
    """8 -> 12 -> relu -> 10 -> relu -> 4; with ``duplicate`` half of the 12 hidden units are copies."""
    graph = Graph("mlp")
    x = graph.add_input("x", TensorType((8,)))
    w1 = rng.normal(size=(12, 8))
    b1 = rng.normal(size=12) * 0.1
    if duplicate:  # relu(c x) = c relu(x) for c > 0: units 6..11 are scaled copies of 0..5
        w1[6:], b1[6:] = w1[:6] * 1.5, b1[:6] * 1.5
    h = graph.add("dense", [x], name="fc1", params={"weight": Param(f32(w1)), "bias": Param(f32(b1))})
    h = graph.add("relu", [h.output], name="r1")
    w2 = rng.normal(size=(10, 12))
    h = graph.add("dense", [h.output], name="fc2", params={"weight": Param(f32(w2))})
    h = graph.add("relu", [h.output], name="r2")
    y = graph.add("dense", [h.output], name="fc3", params={"weight": Param(f32(rng.normal(size=(4, 10))))})
    graph.set_outputs([y.output])
    return graph


def cnn(rng: np.random.Generator) -> Graph:
    """conv(6) -> affine -> relu -> maxpool -> conv(5) -> relu -> flatten -> dense: both convs prunable."""
    graph = Graph("cnn")
    x = graph.add_input("x", TensorType((2, 6, 6)))
    window = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    c1 = graph.add(
        "conv", [x], name="c1", attrs=window, params={"weight": Param(f32(rng.normal(size=(6, 2, 3, 3))))}
    )
    scale, shift = f32(rng.uniform(0.5, 1.5, (6, 1, 1))), f32(rng.normal(size=(6, 1, 1)))
    a = graph.add("affine", [c1.output], name="bn", params={"scale": Param(scale), "shift": Param(shift)})
    r = graph.add("relu", [a.output], name="r1")
    pool = {
        "kernel": [2, 2],
        "strides": [2, 2],
        "pads": [0, 0, 0, 0],
        "dilations": [1, 1],
        "ceil_mode": False,
    }
    p = graph.add("max_pool", [r.output], name="pool", attrs=pool)
    c2 = graph.add(
        "conv",
        [p.output],
        name="c2",
        attrs=window,
        params={"weight": Param(f32(rng.normal(size=(5, 6, 3, 3)))), "bias": Param(f32(rng.normal(size=5)))},
    )
    r2 = graph.add("relu", [c2.output], name="r2")
    flat = graph.add("reshape", [r2.output], name="flat", attrs={"shape": [45]})
    y = graph.add("dense", [flat.output], name="fc", params={"weight": Param(f32(rng.normal(size=(3, 45))))})
    graph.set_outputs([y.output])
    return graph


def run(graph: Graph, spec: str, calib: np.ndarray | None) -> Graph:
    passes = [make_pass(c, None if calib is None else [calib], {}) for c in parse_pass_spec(spec)]
    return run_pipeline(graph, passes)


def test_reap_shrinks_every_prunable_layer_and_records_it() -> None:
    rng = np.random.default_rng(0)
    x = f32(rng.normal(size=(200, 8)))
    pruned = run(mlp(rng), "reap(keep=0.5)", x)
    assert pruned.node("fc1").params["weight"].shape == (6, 8)
    assert pruned.node("fc2").params["weight"].shape == (5, 6)
    assert pruned.node("fc3").params["weight"].shape == (4, 5)
    assert pruned.node("fc3").params["bias"].shape == (4,)  # the refit gives the consumer a bias
    record = pruned.metadata["compression"][-1]
    assert record["pass"] == "reap" and record["options"]["method"] == "reap"
    assert record["layers"]["fc1"] == {
        "units": 12,
        "kept": 6,
        "producers": ["fc1"],
        "consumers": ["fc2"],
        "macs_before": 12 * 8 + 10 * 12,
        "macs_after": 6 * 8 + 10 * 6,
    }
    assert record["macs_after"] == 6 * 8 + 5 * 6 + 4 * 5


def test_reap_on_duplicates_is_exact_when_only_the_duplicated_layer_is_pruned() -> None:
    rng = np.random.default_rng(0)
    graph = mlp(rng, duplicate=True)
    x = f32(rng.normal(size=(200, 8)))
    before = run_float(graph.clone(), [x])[0]
    pruned = Reap(keep=0.5, damp=1e-9, layer_keep={"fc2": 1.0}, calib=(x,)).run(graph)
    verify(pruned)
    assert pruned.node("fc2").params["weight"].shape == (10, 6)
    np.testing.assert_allclose(run_float(pruned, [x])[0], before, atol=1e-3)
    l1 = Reap(keep=0.5, method="l1", layer_keep={"fc2": 1.0}).run(mlp(np.random.default_rng(0), True))
    assert not np.allclose(run_float(l1, [x])[0], before, atol=1e-1)


@pytest.mark.parametrize("method", ["reap", "unify", "l1"])
def test_conv_channels_are_removed_through_affine_pool_and_flatten(method: str) -> None:
    rng = np.random.default_rng(3)
    graph = cnn(rng)
    x = f32(rng.normal(size=(64, 2, 6, 6)))
    pruned = run(graph, f"reap(keep=0.5, method={method})", x)
    assert pruned.node("c1").params["weight"].shape == (3, 2, 3, 3)
    assert pruned.node("bn").params["scale"].shape == (3, 1, 1)
    assert pruned.node("c2").params["weight"].shape == (2, 3, 3, 3)
    assert pruned.node("flat").attrs["shape"] == [18]
    assert pruned.node("fc").params["weight"].shape == (3, 18)
    assert run_float(pruned, [x])[0].shape == (64, 3)


def test_refit_makes_l1_better_on_its_own_selection() -> None:
    rng = np.random.default_rng(4)
    x = f32(rng.normal(size=(300, 8)))
    reference = run_float(mlp(np.random.default_rng(4)), [x])[0]

    def error(spec: str) -> float:
        return float(
            np.mean((run_float(run(mlp(np.random.default_rng(4)), spec, x), [x])[0] - reference) ** 2)
        )

    plain, refitted = error("reap(keep=0.5, method=l1)"), error("reap(keep=0.5, method=l1, refit=true)")
    assert refitted < plain
    assert error("reap(keep=0.5)") <= refitted * 1.0001


def test_keep_rounds_down_but_keeps_one_unit_and_layer_keep_overrides() -> None:
    graph = Reap(keep=0.1, method="l1", layer_keep={"fc2": 0.5}).run(mlp(np.random.default_rng(0)))
    layers = graph.metadata["compression"][-1]["layers"]
    assert layers["fc1"]["kept"] == 1  # floor(1.2)
    assert layers["fc2"]["kept"] == 5
    assert "fc3" not in layers  # its output is the graph output


def test_units_read_and_written_by_one_layer_or_reaching_a_softmax_are_not_pruned() -> None:
    graph = Graph("residual")
    x = graph.add_input("x", TensorType((4,)))
    a = graph.add("dense", [x], name="a", params={"weight": Param(f32(np.eye(4)))})
    b = graph.add("dense", [a.output], name="b", params={"weight": Param(f32(np.eye(4)))})
    s = graph.add("add", [a.output, b.output], name="sum")
    soft = graph.add("softmax", [s.output], name="soft", attrs={"axis": 0})
    c = graph.add("dense", [soft.output], name="c", params={"weight": Param(f32(np.eye(4)))})
    graph.set_outputs([c.output])
    groups, reasons = find_groups(graph)
    assert groups == []
    assert reasons == {  # b reads a's units and adds its own into them: one group, read and written by b
        "a": "a layer reads and writes the same units",
        "b": "a layer reads and writes the same units",
        "c": "its units reach the graph output 'c'",
    }


def test_data_hungry_methods_need_calibration_data() -> None:
    with pytest.raises(ReapError, match=r"^reap: method=reap with refit needs calibration data"):
        Reap(keep=0.5)
    with pytest.raises(ReapError, match="needs calibration data"):
        Reap(keep=0.5, method="l1", refit=True)
    with pytest.raises(ReapError, match=r"^reap: method=unify with refit"):  # before any pass runs
        run(mlp(np.random.default_rng(0)), "reap(keep=0.5, method=unify)", None)
    with pytest.raises(ReapError, match="keep must be in"):
        Reap(keep=0.0, method="l1")
    Reap(keep=0.5, method="l1")  # the baseline needs no data


def residual_mlp(rng: np.random.Generator) -> Graph:
    """x -> s(6) -> relu -> [b1(5) -> relu -> b2(6)] + skip -> relu -> head(3): a residual stream of 6."""
    graph = Graph("residual")
    x = graph.add_input("x", TensorType((4,)))

    def dense(name: str, value: Value, out: int, inp: int) -> Node:
        params = {"weight": Param(f32(rng.normal(size=(out, inp)))), "bias": Param(f32(rng.normal(size=out)))}
        return graph.add("dense", [value], name=name, params=params)

    s = graph.add("relu", [dense("s", x, 6, 4).output], name="r0")
    h = graph.add("relu", [dense("b1", s.output, 5, 6).output], name="r1")
    total = graph.add("add", [dense("b2", h.output, 6, 5).output, s.output], name="sum")
    r = graph.add("relu", [total.output], name="r2")
    graph.set_outputs([dense("head", r.output, 3, 6).output])
    return graph


def test_a_residual_stream_is_one_group_of_every_layer_that_writes_or_reads_it() -> None:
    groups, _ = find_groups(residual_mlp(np.random.default_rng(0)))
    assert [(g.name, [p.name for p in g.producers], [c.node.name for c in g.consumers]) for g in groups] == [
        ("s", ["s", "b2"], ["b1", "head"]),
        ("b1", ["b1"], ["b2"]),
    ]
    assert [n.name for n in groups[0].path] == ["r0", "sum", "r2"]


def test_residual_groups_are_pruned_everywhere_and_internal_only_leaves_them() -> None:
    rng = np.random.default_rng(1)
    x = f32(rng.normal(size=(300, 4)))
    pruned = Reap(keep=0.5, calib=(x,)).run(residual_mlp(np.random.default_rng(0)))
    verify(pruned)
    shapes = {n.name: n.params["weight"].shape for n in pruned.nodes if n.op == "dense"}
    assert shapes == {"s": (3, 4), "b1": (2, 3), "b2": (3, 2), "head": (3, 3)}
    assert run_float(pruned, [x])[0].shape == (300, 3)
    internal = Reap(keep=0.5, residual=False, calib=(x,)).run(residual_mlp(np.random.default_rng(0)))
    shapes = {n.name: n.params["weight"].shape for n in internal.nodes if n.op == "dense"}
    assert shapes == {"s": (6, 4), "b1": (2, 6), "b2": (6, 2), "head": (3, 6)}


@pytest.mark.parametrize("allocation", ["uniform", "output"])
@pytest.mark.parametrize("what", ["macs", "params"])
def test_budgets_are_honoured(allocation: str, what: str) -> None:
    rng = np.random.default_rng(2)
    x = f32(rng.normal(size=(300, 4)))
    graph = residual_mlp(np.random.default_rng(0))
    before = getattr(graph_cost(graph), what)
    for budget in (0.3, 0.6):
        pruned = run(graph.clone(), f"reap({what}={budget}, allocation={allocation})", x)
        assert getattr(graph_cost(pruned), what) <= budget * before
        layers = pruned.metadata["compression"][-1]["layers"]
        assert ("profile" in layers["s"]) == (allocation == "output")


def test_output_allocation_records_each_layers_profile_of_the_final_outputs() -> None:
    rng = np.random.default_rng(3)
    x = f32(rng.normal(size=(400, 8)))
    pruned = run(mlp(np.random.default_rng(3)), "reap(macs=0.5, allocation=output)", x)
    layers = pruned.metadata["compression"][-1]["layers"]
    assert graph_cost(pruned).macs <= 0.5 * graph_cost(mlp(np.random.default_rng(3))).macs
    assert all(layers[name]["profile"][str(layers[name]["units"])] == 0.0 for name in ("fc1", "fc2"))


@pytest.mark.parametrize("order", ["backward", "impact"])
def test_every_order_gives_a_valid_graph_and_records_it(order: str) -> None:
    rng = np.random.default_rng(4)
    x = f32(rng.normal(size=(300, 4)))
    pruned = run(residual_mlp(np.random.default_rng(0)), f"reap(keep=0.5, order={order})", x)
    record = pruned.metadata["compression"][-1]
    assert sorted(record["order"]) == ["b1", "s"]
    if order == "backward":
        assert record["order"] == ["b1", "s"]
    assert run_float(pruned, [x])[0].shape == (300, 3)


@pytest.mark.parametrize("order", ["backward", "impact"])
def test_out_of_order_pruning_refits_the_consumers_on_their_final_inputs(order: str) -> None:
    """Pruned backward, fc3 was refitted before fc1 lost units; it is refitted again on its final inputs."""
    rng = np.random.default_rng(6)
    x = f32(rng.normal(size=(300, 8)))
    original = mlp(np.random.default_rng(6))
    target = run_float(original, [x], trace=True)
    assert isinstance(target, dict)
    pruned = run(original.clone(), f"reap(keep=0.5, order={order})", x)
    traced = run_float(pruned, [x], trace=True)
    assert isinstance(traced, dict)
    fc3 = pruned.node("fc3")
    expected = linalg.moments(fc3, traced[fc3.inputs[0].name], target[fc3.output.name]).fit(1e-3)
    assert expected is not None
    np.testing.assert_allclose(fc3.params["weight"].data, expected[:, :-1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(fc3.params["bias"].data, expected[:, -1], rtol=0, atol=1e-5)


def test_relu_masked_fits_are_least_squares_on_the_rows_that_count_after_the_relu() -> None:
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(size=(120, 4)), np.ones((120, 1))], axis=1)
    target, current = rng.normal(size=(120, 3)), rng.normal(size=(120, 3))
    fits, grams = linalg.relu_masked_fits(x, target, current, 1e-12)
    for o in range(3):
        rows = (target[:, o] > 0) | (current[:, o] > 0)
        solution, *_ = np.linalg.lstsq(x[rows], target[rows, o], rcond=None)
        np.testing.assert_allclose(fits[o][0], solution, atol=1e-8)
        np.testing.assert_allclose(grams[o], x[rows].T @ x[rows], atol=1e-6)


def test_poem_lowers_the_error_after_the_consumers_relu() -> None:
    rng = np.random.default_rng(6)
    x = f32(rng.normal(size=(400, 8)))
    graph = mlp(np.random.default_rng(6))
    after = graph.node("r2").output.name
    original = run_float(graph, [x], trace=True)[after]

    def error(poem: bool) -> float:
        pruned = Reap(keep=0.25, poem=poem, layer_keep={"fc2": 1.0}, calib=(x,)).run(graph.clone())
        return float(np.sum((run_float(pruned, [x], trace=True)[after] - original) ** 2))

    assert error(poem=True) < error(poem=False)


def test_depthwise_convs_pass_channels_through() -> None:
    """conv(6) -> relu -> depthwise 3x3 -> relu -> conv 1x1 (4): the first conv's channels reach the 1x1."""
    rng = np.random.default_rng(7)
    graph = Graph("separable")
    x = graph.add_input("x", TensorType((2, 5, 5)))
    same = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    c1 = graph.add(
        "conv", [x], name="c1", attrs=same, params={"weight": Param(f32(rng.normal(size=(6, 2, 3, 3))))}
    )
    r1 = graph.add("relu", [c1.output], name="r1")
    dw_params = {"weight": Param(f32(rng.normal(size=(6, 1, 3, 3)))), "bias": Param(f32(rng.normal(size=6)))}
    dw = graph.add("conv", [r1.output], name="dw", attrs={**same, "groups": 6}, params=dw_params)
    r2 = graph.add("relu", [dw.output], name="r2")
    point = {**same, "pads": [0, 0, 0, 0]}
    pw = graph.add(
        "conv",
        [r2.output],
        name="pw",
        attrs=point,
        params={"weight": Param(f32(rng.normal(size=(4, 6, 1, 1))))},
    )
    graph.set_outputs([pw.output])
    batch = f32(rng.normal(size=(40, 2, 5, 5)))
    pruned = Reap(keep=0.5, calib=(batch,)).run(graph)
    verify(pruned)
    assert pruned.node("dw").params["weight"].shape == (3, 1, 3, 3) and pruned.node("dw").attrs["groups"] == 3
    assert pruned.node("pw").params["weight"].shape == (4, 3, 1, 1)
    assert pruned.metadata["compression"][-1]["layers"]["c1"]["consumers"] == ["pw"]
