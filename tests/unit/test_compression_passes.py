"""The prune, share and huffman passes on small hand-built graphs, and their encoding in the IR.

Checked here: which weights each pruning rule removes, the sparse layout (relative indices and fillers),
that the least-squares refits really reduce the output error they minimise, k-means sharing (codebook size,
``codebook[indices] == data``, index 0 kept for pruned zeros), quantization of the codebook, the verifier
catching an inconsistent encoding, and the encoding's round trip through clone and graph.fir/weights.npz.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from fpgac.errors import FpgacError
from fpgac.interp.interpreter import run_float
from fpgac.ir import Graph, Param, TensorType, VerificationError, graphs_equal, verify
from fpgac.ir.encoding import sparse_layout, storage_bits, streams
from fpgac.ir.printer import print_graph
from fpgac.ir.serialize import load_graph, save_graph
from fpgac.ir.types import Fixed
from fpgac.passes import Huffman, Prune, Quantize, Share
from fpgac.passes.compression import layer_inputs
from fpgac.passes.linalg import anchored_fit
from fpgac.passes.pipeline import run_pipeline
from fpgac.passes.share import kmeans_1d


def mlp(seed: int = 0, sizes: tuple[int, ...] = (24, 32, 16, 6)) -> Graph:
    rng = np.random.default_rng(seed)
    graph = Graph("m")
    x = graph.add_input("x", TensorType((sizes[0],)))
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        params = {
            "weight": Param((rng.standard_normal((b, a)) / np.sqrt(a)).astype(np.float32)),
            "bias": Param((rng.standard_normal(b) * 0.1).astype(np.float32)),
        }
        x = graph.add("dense", [x], name=f"fc{i}", params=params).output
        if i < len(sizes) - 2:
            x = graph.add("relu", [x], name=f"relu{i}").output
    graph.set_outputs([x])
    return graph


def calib(seed: int = 1, n: int = 300, features: int = 24) -> tuple[np.ndarray, ...]:
    """Correlated inputs (rank 8 plus noise): what makes a refit worth something."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((8, features))
    return (
        (rng.standard_normal((n, 8)) @ basis + 0.1 * rng.standard_normal((n, features))).astype(np.float32),
    )


def weights(graph: Graph) -> dict[str, np.ndarray]:
    return {n.name: n.params["weight"].data for n in graph.nodes if n.op == "dense"}


def output_error(graph: Graph, reference: Graph, data: tuple[np.ndarray, ...]) -> float:
    a = run_float(graph, list(data))[0]
    b = run_float(reference, list(data))[0]
    return float(((a - b) ** 2).mean())


# -- prune ------------------------------------------------------------------------------------------------


def test_global_sparsity_uses_one_threshold() -> None:
    graph = Prune(sparsity=0.75).run(mlp())
    verify(graph)
    ws = weights(graph)
    total = sum(w.size for w in ws.values())
    zeros = sum(int((w == 0).sum()) for w in ws.values())
    assert zeros == round(0.75 * total)
    kept = np.concatenate([np.abs(w[w != 0]) for w in ws.values()])
    original = weights(mlp())
    pruned = np.concatenate([np.abs(original[k][w == 0]) for k, w in ws.items()])
    assert kept.min() > pruned.max()  # one global magnitude threshold
    entry = graph.metadata["compression"][-1]
    assert entry["pass"] == "prune" and set(entry["layers"]) == set(ws)
    assert all(n.params["weight"].encoding.gap_bits == 5 for n in graph.nodes if n.op == "dense")


def test_layer_scope_and_std_threshold() -> None:
    for w in weights(Prune(sparsity=0.5, scope="layer").run(mlp())).values():
        assert (w == 0).sum() == round(0.5 * w.size)
    original = weights(mlp())
    for name, w in weights(Prune(threshold=0.7).run(mlp())).items():
        small = np.abs(original[name]) <= 0.7 * original[name].std()
        assert np.array_equal(w == 0, small)


def test_reconstruct_reduces_the_output_error() -> None:
    data = calib()
    plain = Prune(sparsity=0.7, scope="layer").run(mlp())
    refit = Prune(sparsity=0.7, scope="layer", reconstruct=True, calib=data).run(mlp())
    verify(refit)
    for name, w in weights(refit).items():
        assert np.array_equal(w == 0, weights(plain)[name] == 0)  # same survivors, new values
    assert output_error(refit, mlp(), data) < 0.5 * output_error(plain, mlp(), data)


def test_anchored_fit_keeps_what_the_batch_cannot_see() -> None:
    """An input that is zero on every calibration row keeps its trained weight (plain ridge zeroed it, which
    made prune's refit worse than none); fewer rows than unknowns: the trained weights, untouched."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 4))
    a[:, 2] = 0.0
    prior = np.array([1.0, -2.0, 3.0, 0.5])
    t = a @ np.array([1.5, -2.0, 0.0, 0.5])
    x = anchored_fit(a, t, prior, 1e-3)
    assert x[2] == pytest.approx(3.0) and np.allclose(x[[0, 1, 3]], [1.5, -2.0, 0.5], atol=1e-2)
    assert np.array_equal(anchored_fit(a[:3], t[:3], prior, 1e-3), prior)


def test_activation_criterion_skips_dead_inputs() -> None:
    data = calib()
    data[0][:, :4] = 0.0  # four inputs that never fire: their weights are worthless however large
    graph = mlp()
    graph.node("fc0").params["weight"].data[:, :4] = 10.0
    pruned = Prune(sparsity=0.5, scope="layer", criterion="activation", calib=data).run(graph)
    assert np.all(pruned.node("fc0").params["weight"].data[:, :4] == 0)


@pytest.mark.parametrize(
    "options",
    [{}, {"sparsity": 0.5, "threshold": 1.0}, {"sparsity": 1.0}, {"sparsity": 0.5, "reconstruct": True}],
)
def test_prune_rejects_bad_options(options: dict) -> None:
    with pytest.raises(FpgacError, match="prune"):
        Prune(**options)


def test_sparse_layout_inserts_fillers() -> None:
    mask = np.zeros(16, dtype=bool)
    mask[[0, 11, 12]] = True
    lay = sparse_layout(mask, 2)  # relative indices up to 3: a run of 10 zeros needs two fillers
    assert lay.positions.tolist() == [0, 4, 8, 11, 12]
    assert lay.gaps.tolist() == [0, 3, 3, 2, 0]
    assert lay.fillers.tolist() == [False, True, True, False, False]
    # decoding the relative indices gives the positions back
    assert (np.cumsum(lay.gaps + 1) - 1).tolist() == lay.positions.tolist()
    assert sparse_layout(np.zeros(5, bool), 3).entries == 0


# -- share --------------------------------------------------------------------------------------------------


def test_kmeans_linear_init_finds_clusters() -> None:
    values = np.concatenate([np.full(50, -1.0), np.full(5, 0.2), np.full(30, 2.0)])
    assert sorted(kmeans_1d(values, 3, 20).tolist()) == [-1.0, 0.2, 2.0]
    centroids = kmeans_1d(np.concatenate([np.linspace(-2, -1, 50), np.linspace(1, 2, 50)]), 8, 50)
    assert len(np.unique(centroids)) == 8  # no centroid left in the empty middle


def test_share_makes_codebook_and_indices() -> None:
    graph = Share(bits=3).run(mlp())
    verify(graph)
    for node in graph.nodes:
        if node.op != "dense":
            continue
        param = node.params["weight"]
        enc = param.encoding
        assert len(enc.codebook) == 8 and enc.indices.shape == param.shape
        assert np.array_equal(enc.codebook[enc.indices].astype(np.float32), param.data)


def test_share_after_prune_reserves_index_zero() -> None:
    graph = Share(bits=3).run(Prune(sparsity=0.6).run(mlp()))
    verify(graph)
    for node in graph.nodes:
        if node.op != "dense":
            continue
        param = node.params["weight"]
        enc = param.encoding
        assert enc.codebook[0] == 0.0 and len(enc.codebook) == 8
        assert np.array_equal(enc.indices == 0, param.data == 0)
        assert set(streams(param)) == {"index", "gap"}


def test_centroid_refit_reduces_the_output_error() -> None:
    data = calib()
    plain = Share(bits=2).run(mlp())
    refit = Share(bits=2, refit=True, calib=data).run(mlp())
    verify(refit)
    assert output_error(refit, mlp(), data) < output_error(plain, mlp(), data)


def test_quantize_rounds_the_codebook_and_keeps_indices() -> None:
    data = calib()
    shared = Huffman().run(Share(bits=4).run(Prune(sparsity=0.5).run(mlp())))
    indices = {n.name: n.params["weight"].encoding.indices.copy() for n in shared.nodes if n.op == "dense"}
    graph = Quantize(precision=8, calib=data).run(shared)
    verify(graph)
    for node in graph.nodes:
        if node.op != "dense":
            continue
        param = node.params["weight"]
        assert isinstance(param.format, Fixed)
        book = param.encoding.codebook
        assert np.array_equal(
            np.ldexp(book, param.format.frac_bits), np.round(np.ldexp(book, param.format.frac_bits))
        )
        assert np.array_equal(param.encoding.indices, indices[node.name])
        assert np.array_equal(book[param.encoding.indices], param.data)
        assert param.encoding.huffman  # codes depend on indices only: kept


# -- huffman, storage, IR ------------------------------------------------------------------------------------


def test_pass_order_is_checked() -> None:
    quantized = Quantize(precision=8, calib=calib()).run(Share(bits=3).run(mlp()))
    for late in (Prune(sparsity=0.5), Share(bits=3)):
        with pytest.raises(FpgacError, match="before quantize"):
            late.run(quantized.clone())
    with pytest.raises(FpgacError, match="prune first"):
        Prune(sparsity=0.5).run(Share(bits=3).run(mlp()))
    coded = Huffman().run(quantized)  # codes depend on indices only: fine after quantize
    verify(coded)


def test_huffman_needs_share() -> None:
    with pytest.raises(FpgacError, match="run share first"):
        run_pipeline(Prune(sparsity=0.5).run(mlp()), [Huffman()])


def test_storage_bits_count_every_part() -> None:
    graph = Quantize(precision=8, calib=calib()).run(
        Share(bits=4).run(Prune(sparsity=0.8, gap_bits=2).run(mlp()))
    )
    param = graph.node("fc0").params["weight"]
    parts = storage_bits(param)
    entries = streams(param)["index"].size
    assert parts["indices"] == entries * 4 and parts["gaps"] == entries * 2 and parts["codebook"] == 16 * 8
    assert parts["fillers"] > 0 and parts["total"] == parts["indices"] + parts["gaps"] + parts["codebook"]
    coded = storage_bits(Huffman().run(graph).node("fc0").params["weight"])
    assert (
        coded["total"]
        == coded["indices"] + coded["gaps"] + coded["codebook"] + coded["index_table"] + coded["gap_table"]
    )


def test_verifier_catches_an_inconsistent_encoding() -> None:
    graph = Share(bits=3).run(mlp())
    graph.node("fc1").params["weight"].data[0, 0] += 1.0
    with pytest.raises(VerificationError, match="codebook"):
        verify(graph)


def test_encoding_round_trips(tmp_path: Path) -> None:
    graph = Huffman().run(Share(bits=3).run(Prune(sparsity=0.7).run(mlp())))
    graph = Quantize(precision=8, calib=calib()).run(graph)
    twin = graph.clone()
    assert graphs_equal(graph, twin)
    twin.node("fc0").params["weight"].encoding.indices[0, 0] ^= 1
    assert not graphs_equal(graph, twin)  # the clone's arrays are its own
    assert '~{"codebook":8,"gap_bits":5,"huffman":["gap","index"]}' in print_graph(graph)
    save_graph(graph, tmp_path)
    loaded = load_graph(tmp_path)
    verify(loaded)
    assert graphs_equal(graph, loaded)
    assert loaded.metadata["compression"] == graph.metadata["compression"]


# -- conv refits ------------------------------------------------------------------------------------------

CONV = {"strides": [2, 1], "pads": [1, 0, 1, 2], "dilations": [1, 2], "groups": 1}


def cnn(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    graph = Graph("c")
    x = graph.add_input("x", TensorType((3, 9, 9)))
    for i, (cin, cout) in enumerate([(3, 6), (6, 4)]):
        params = {
            "weight": Param((rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)),
            "bias": Param((rng.standard_normal(cout) * 0.1).astype(np.float32)),
        }
        x = graph.add("conv", [x], name=f"conv{i}", attrs=dict(CONV), params=params).output
        if i == 0:
            x = graph.add("relu", [x], name="relu0").output
    graph.set_outputs([x])
    return graph


def cnn_calib() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(2)
    smooth = rng.standard_normal((200, 3, 1, 9)) + rng.standard_normal((200, 3, 9, 1))  # correlated pixels
    return ((smooth + 0.1 * rng.standard_normal((200, 3, 9, 9))).astype(np.float32),)


def test_conv_patches_reproduce_the_conv() -> None:
    graph, data = cnn(), cnn_calib()
    node = graph.node("conv1")
    x = layer_inputs(graph, data, node)
    traced = run_float(graph, list(data), trace=True)
    w = node.params["weight"].data.astype(np.float64).reshape(4, -1)
    y = traced[node.output.name] - node.params["bias"].data[None, :, None, None]
    expected = np.moveaxis(y, 1, -1).reshape(-1, 4)
    assert np.allclose(x @ w.T, expected, atol=1e-4)


def test_conv_refits_reduce_the_output_error() -> None:
    data = cnn_calib()
    plain = Prune(sparsity=0.7, scope="layer").run(cnn())
    refit = Prune(sparsity=0.7, scope="layer", reconstruct=True, calib=data).run(cnn())
    verify(refit)
    assert output_error(refit, cnn(), data) < 0.7 * output_error(plain, cnn(), data)
    shared = Share(bits=2).run(cnn())
    shared_refit = Share(bits=2, refit=True, calib=data).run(cnn())
    verify(shared_refit)
    assert output_error(shared_refit, cnn(), data) < output_error(shared, cnn(), data)
