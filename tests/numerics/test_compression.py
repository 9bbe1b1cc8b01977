"""The compression passes on the exported model families: they run, keep the IR valid and quantize.

Random-weight models say nothing about accuracy (``bench/compression.py`` measures that on trained ones),
so this checks what must hold on any graph: pruning and splitting only where it is legal (grouped convs,
residual sums and concats untouched), the IR verified, MACs down, and the result through ``quantize`` and
the bit-accurate simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fpgac.analysis.cost import graph_cost
from fpgac.build import load_model
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import verify
from fpgac.passes import Prune
from fpgac.passes.pipeline import make_pass, run_pipeline
from fpgac.passes.spec import parse_pass_spec
from tests.models import random_input

FAMILIES = ("cnn", "depthwise_separable", "resnet_gap", "two_branch_concat", "conv1d", "squeeze_excite_conv")
SPECS = (
    "reap(keep=0.5)",
    "reap(keep=0.5, method=unify)",
    "lowrank(macs=0.6)",
    "lowrank(macs=0.6, method=tucker)",
)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", FAMILIES)
def test_compression_keeps_the_graph_valid_and_quantizable(
    name: str, spec: str, onnx_export: Callable[[str, str], Path]
) -> None:
    graph = load_model(onnx_export(name, "torchscript"))
    x = random_input(name, 32, seed=1)
    before = graph_cost(graph).macs
    passes = [make_pass(call, [x], {}) for call in parse_pass_spec(spec)]
    compressed = run_pipeline(graph, passes)
    verify(compressed)
    (entry,) = compressed.metadata["compression"]
    assert entry["macs_before"] == before and entry["macs_after"] == graph_cost(compressed).macs
    if spec.startswith("lowrank"):
        assert graph_cost(compressed).macs <= 0.6 * before
    elif name in ("cnn", "resnet_gap", "conv1d", "depthwise_separable"):  # depthwise convs pass channels on
        assert graph_cost(compressed).macs < before
    elif name == "two_branch_concat":  # concatenated channels are kept
        assert graph_cost(compressed).macs == before and not entry["layers"]
    quantized = run_pipeline(compressed, [make_pass(parse_pass_spec("quantize")[0], [x], {})])
    outputs = run_fixed(quantized, [x]).outputs
    assert all(np.all(np.isfinite(y)) for y in outputs)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_prune_refit_is_no_worse_than_plain_pruning_on_a_trained_cnn(scope: str, tmp_path: Path) -> None:
    """``prune(sparsity=0.9, reconstruct=true)`` on the trained digits CNN (99% float): at least as accurate
    as the same pruning without the refit (it was worse when the refit pulled weights towards zero)."""
    from tests.trained import export, train

    trained = train("digits_cnn")
    graph = load_model(export(trained, tmp_path / "digits_cnn.onnx"))
    calib = (trained.data.x_train[:64],)

    def accuracy(reconstruct: bool) -> float:
        pruned = Prune(sparsity=0.9, scope=scope, reconstruct=reconstruct, calib=calib).run(graph.clone())
        logits = run_float(pruned, [trained.data.x_test])[0]
        return float((logits.argmax(1) == trained.data.y_test).mean())

    plain, refit = accuracy(False), accuracy(True)
    assert refit >= plain, (plain, refit)
