"""The IR as a torch module (issue #18, part 1): float mode equals the float interpreter, fake-quant mode
in float64 equals ``fpgac sim`` bit for bit, gradients reach the weights, and uncovered ops are refused
by name."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import fpgac

torch = pytest.importorskip("torch")

from fpgac.build import BuildOptions, compile_model, load_model  # noqa: E402
from fpgac.interp.interpreter import run_float  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from fpgac.interp.torch_module import GraphModule, TorchBridgeError  # noqa: E402
from fpgac.ir.graph import Graph  # noqa: E402
from fpgac.ir.types import TensorType  # noqa: E402
from fpgac.ir.verifier import verify  # noqa: E402
from tests.models import random_input  # noqa: E402

FAMILIES = ["mlp", "cnn", "depthwise_separable", "resnet_gap", "two_branch_concat"]

Export = Callable[[str, str], Path]


def _float_graph(name: str, onnx_export: Export) -> Graph:
    return load_model(onnx_export(name, "torchscript"))


def _quantized(
    name: str, onnx_export: Export, tmp_path: Path, precision: int = 16, passes: str = ""
) -> Graph:
    calib = tmp_path / "calib.npy"
    np.save(calib, random_input(name, 32, seed=3))
    options = BuildOptions(calib=calib, backend="none", precision=precision, passes=passes)
    return compile_model(onnx_export(name, "torchscript"), options).graph


@pytest.mark.parametrize("name", FAMILIES)
def test_float_forward_equals_the_interpreter(name: str, onnx_export: Export) -> None:
    graph = _float_graph(name, onnx_export)
    x = random_input(name, 8, seed=1)
    expected = run_float(graph, x)
    module = GraphModule(graph)
    with torch.no_grad():
        got = module(torch.from_numpy(x))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "precision"), [(n, 16) for n in FAMILIES] + [("cnn", 6), ("mlp", 4)])
def test_fixed_forward_equals_the_simulator_bit_for_bit(
    name: str, precision: int, onnx_export: Export, tmp_path: Path
) -> None:
    graph = _quantized(name, onnx_export, tmp_path, precision)
    x = random_input(name, 8, seed=1) * 2  # beyond the calibration range: saturation and wrapping matter
    expected = run_fixed(graph, x).outputs
    module = GraphModule(graph, mode="fixed")
    with torch.no_grad():
        got = module(torch.from_numpy(x))
    for e, g in zip(expected, got, strict=True):
        assert g.dtype == torch.float64
        assert np.array_equal(g.numpy(), e)


@pytest.mark.parametrize(
    "name", ["activations", "avgpool_ceil", "zeropad", "squeeze_excite_conv", "resnet_mean"]
)
def test_more_ops_at_8_bits_with_saturation(name: str, onnx_export: Export, tmp_path: Path) -> None:
    """elu/selu/prelu/hard_sigmoid, ceil-mode average pools, padding, mul, mean: overflowing inputs too."""
    graph = _quantized(name, onnx_export, tmp_path, precision=8)
    x = random_input(name, 8, seed=1) * 8
    result = run_fixed(graph, x)
    assert sum(result.overflows.values()) > 0
    with torch.no_grad():
        got = GraphModule(graph, mode="fixed")(torch.from_numpy(x))
    for e, g in zip(result.outputs, got, strict=True):
        assert np.array_equal(g.numpy(), e)


def test_channels_last_inputs_and_outputs_are_the_callers_arrays(tmp_path: Path) -> None:
    """A tf2onnx model with an NHWC input and an NHWC feature-map output (both transposes absorbed into
    the boundary): the module takes and gives the NHWC arrays ``run_float`` and ``run_fixed`` do."""
    from tests.unit.test_exporter_quirks import tf2onnx_feature_map

    model = tf2onnx_feature_map(tmp_path / "feature_map.onnx")
    x = np.random.default_rng(1).normal(size=(8, 5, 4, 3)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    graph = compile_model(model, BuildOptions(calib=tmp_path / "calib.npy", backend="none")).graph
    with torch.no_grad():
        (fixed,) = GraphModule(graph, mode="fixed")(torch.from_numpy(x))
        (floating,) = GraphModule(load_model(model))(torch.from_numpy(x))
    assert fixed.shape == (8, 5, 4, 4) and np.array_equal(fixed.numpy(), run_fixed(graph, x).outputs[0])
    np.testing.assert_allclose(floating.numpy(), run_float(load_model(model), x)[0], rtol=1e-5, atol=1e-5)


def test_huge_inputs_saturate_as_in_the_simulator(onnx_export: Export, tmp_path: Path) -> None:
    graph = _quantized("mlp", onnx_export, tmp_path)
    x = random_input("mlp", 8, seed=1) * np.float32(1e30)
    with torch.no_grad():
        (got,) = GraphModule(graph, mode="fixed")(torch.from_numpy(x))
    assert np.array_equal(got.numpy(), run_fixed(graph, x).outputs[0])


@pytest.mark.parametrize("passes", ["prune(sparsity=0.7), share(bits=4)", "lowrank(macs=0.5)"])
def test_compressed_graphs_match_both_interpreters(passes: str, onnx_export: Export, tmp_path: Path) -> None:
    graph = _quantized("cnn", onnx_export, tmp_path, passes=passes)
    x = random_input("cnn", 8, seed=1)
    with torch.no_grad():
        (fixed_out,) = GraphModule(graph, mode="fixed")(torch.from_numpy(x))
        (float_out,) = GraphModule(graph)(torch.from_numpy(x))
    assert np.array_equal(fixed_out.numpy(), run_fixed(graph, x).outputs[0])
    np.testing.assert_allclose(float_out.numpy(), run_float(graph, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["float", "fixed"])
def test_training_keeps_pruned_zeros_and_shared_codebooks(
    mode: str, onnx_export: Export, tmp_path: Path
) -> None:
    graph = _quantized("cnn", onnx_export, tmp_path, passes="prune(sparsity=0.7), share(bits=4)")
    module = GraphModule(graph, mode="fixed" if mode == "fixed" else "float")
    x = torch.from_numpy(random_input("cnn", 8, seed=2))
    module(x)[0].square().mean().backward()
    with torch.no_grad():
        for p in module.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    trained = module.to_graph()
    verify(trained)  # every encoding still decodes to its weights
    changed = 0
    for before, after in zip(graph.nodes, trained.nodes, strict=True):
        for key, param in before.params.items():
            new = after.params[key]
            if param.encoding is None:
                continue
            assert np.array_equal(param.data == 0, new.data == 0)  # the sparsity pattern is kept
            if param.encoding.codebook is not None:
                assert new.encoding is not None and new.encoding.codebook is not None
                assert len(np.unique(new.data)) <= len(new.encoding.codebook)
            changed += not np.array_equal(param.data, new.data)
    assert changed
    if mode == "fixed":  # the trained graph still simulates as the module computes
        with torch.no_grad():
            (out,) = module(x)
        assert np.array_equal(out.numpy(), run_fixed(trained, x.numpy()).outputs[0])


@pytest.mark.parametrize("mode", ["float", "fixed"])
def test_gradients_reach_the_weights(mode: str, onnx_export: Export, tmp_path: Path) -> None:
    name = "cnn"
    graph = _quantized(name, onnx_export, tmp_path) if mode == "fixed" else _float_graph(name, onnx_export)
    module = GraphModule(graph, mode="fixed" if mode == "fixed" else "float")
    x = torch.from_numpy(random_input(name, 8, seed=2))
    (logits,) = module(x)
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(8) % logits.shape[1])
    loss.backward()
    weights = [p for key, p in module.weights.items() if key.endswith("_weight")]
    assert weights
    for p in weights:
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


def test_a_training_step_changes_the_output_and_writes_back(onnx_export: Export) -> None:
    graph = _float_graph("mlp", onnx_export)
    module = GraphModule(graph)
    x = torch.from_numpy(random_input("mlp", 16, seed=4))
    before = module(x)[0].detach().clone()
    loss = module(x)[0].square().mean()
    loss.backward()
    with torch.no_grad():
        for p in module.parameters():
            assert p.grad is not None
            p -= 0.1 * p.grad
    after = module(x)[0].detach()
    assert not torch.equal(before, after)
    trained = module.to_graph()
    np.testing.assert_allclose(run_float(trained, x.numpy())[0], after.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_float(graph, x.numpy())[0], before.numpy(), rtol=1e-5, atol=1e-5)


def test_uncovered_ops_are_refused_by_name() -> None:
    graph = Graph("g")
    x = graph.add_input("x", TensorType((4, 3, 3)))
    node = graph.add("lrn", [x], attrs={"size": 3, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}, name="norm")
    graph.set_outputs([node.output])
    with pytest.raises(TorchBridgeError, match=r"node 'norm' \(lrn\)"):
        GraphModule(graph)


def test_a_float_graph_is_refused_in_fixed_mode(onnx_export: Export) -> None:
    with pytest.raises(TorchBridgeError, match="quantize the graph first"):
        GraphModule(_float_graph("mlp", onnx_export), mode="fixed")


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for stmt in ast.parse(path.read_text()).body:
        if isinstance(stmt, ast.Import):
            names.update(alias.name for alias in stmt.names)
        elif isinstance(stmt, ast.ImportFrom) and stmt.module:
            names.add(stmt.module)
            names.update(f"{stmt.module}.{alias.name}" for alias in stmt.names)
    return names


def test_torch_is_not_imported_at_start_up() -> None:
    """Only the bridge imports torch at module level, and no module imports the bridge at module level."""
    root = Path(fpgac.__file__).parent
    bridge = root / "interp" / "torch_module.py"
    for path in root.rglob("*.py"):
        if path == bridge:
            continue
        imports = _top_level_imports(path)
        assert not any(n == "torch" or n.startswith("torch.") for n in imports), path
        assert "fpgac.interp.torch_module" not in imports, path
