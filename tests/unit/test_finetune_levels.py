"""Joint training of rank levels (issue #18 part 3): the torch module computes every level as the simulator
does (nested prefixes of shared factors, a bias per level), and ``finetune`` after ``lowrank(levels=...)``
trains every level at once, keeps them nested, and records each level's loss (g++:
tests/exact/test_finetune_levels_csim.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fpgac.interp.interpreter import run_float  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from fpgac.interp.torch_module import GraphModule  # noqa: E402
from fpgac.ir import Graph, verify  # noqa: E402
from fpgac.ir.levels import LEVEL_BIAS, RankLevelError, at_level, level_count  # noqa: E402
from fpgac.passes.finetune import Finetune  # noqa: E402
from fpgac.passes.lowrank import LowRank  # noqa: E402
from fpgac.passes.quantize import Quantize  # noqa: E402
from tests.rank_levels import LEVELS, calib, levelled, small_cnn  # noqa: E402


def _train_file(tmp_path: Path, samples: int) -> Path:
    """Inputs 4x the calibration batch's: peaked logits, so the levels' distillation losses are not ~0."""
    path = tmp_path / "train.npy"
    np.save(path, calib(samples, seed=7) * 4)
    return path


def _levelled_float() -> Graph:
    return LowRank(levels=LEVELS, calib=(calib(),)).run(small_cnn())


def _factors(graph: Graph) -> dict[str, np.ndarray]:
    return {n.name: n.params["weight"].data.copy() for n in graph.nodes if "ranks_out" in n.attrs}


def test_the_module_computes_every_level_as_the_simulator_does() -> None:
    fixed, x = levelled(), calib(16, seed=5) * 2
    module = GraphModule(fixed, mode="fixed")
    for level in range(level_count(fixed)):
        module.level = level
        with torch.no_grad():
            (y,) = module(torch.from_numpy(x))
        assert np.array_equal(y.numpy(), run_fixed(fixed, [x], rank_level=level).outputs[0])
    floating = _levelled_float()
    module = GraphModule(floating)
    module.level = 3
    with torch.no_grad():
        (y,) = module(torch.from_numpy(x))
    np.testing.assert_allclose(y.numpy(), run_float(at_level(floating, 3), [x])[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(RankLevelError, match="rank level 4 does not exist"):
        module.level = 4


@pytest.mark.slow  # about 5 s of CPU
def test_finetune_trains_every_level_jointly_and_keeps_them_nested(tmp_path: Path) -> None:
    graph = _levelled_float()
    factors = _factors(graph)
    ranks = {n.name: n.attrs["ranks_out"] for n in graph.nodes if "ranks_out" in n.attrs}
    finetune = Finetune(data=str(_train_file(tmp_path, 256)), epochs=8, temperature=1, teacher=small_cnn())
    tuned = finetune.run(graph.clone())
    verify(tuned)
    record = tuned.metadata["finetune"]["rank_levels"]
    assert record["joint"] and record["alpha"] == 0.5
    assert [e["level"] for e in record["levels"]] == [0, 1, 2, 3]
    for entry in record["levels"]:
        assert entry["loss_after"] < 0.8 * entry["loss_before"], entry
    assert {n.name: n.attrs["ranks_out"] for n in tuned.nodes if "ranks_out" in n.attrs} == ranks
    assert all(not np.array_equal(w, factors[name]) for name, w in _factors(tuned).items())
    for node in tuned.nodes:
        if LEVEL_BIAS in node.params:  # row 0 is the bias; the smaller levels' rows trained on their own
            biases = node.params[LEVEL_BIAS].data
            assert np.array_equal(node.params["bias"].data, biases[0])
            assert not np.array_equal(biases[3], graph.node(node.name).params[LEVEL_BIAS].data[3])


def test_joint_qat_graph_simulates_at_every_level_as_the_module_trained_it(tmp_path: Path) -> None:
    quantized = Quantize(calib=(calib(),), precision=8).run(_levelled_float())
    finetune = Finetune(data=str(_train_file(tmp_path, 64)), epochs=1, batch=16, teacher=small_cnn())
    tuned = finetune.run(quantized)
    assert tuned.metadata["finetune"]["mode"] == "fixed"
    module, x = GraphModule(tuned, mode="fixed"), calib(16, seed=9) * 2
    for level in range(level_count(tuned)):
        module.level = level
        with torch.no_grad():
            (y,) = module(torch.from_numpy(x))
        assert np.array_equal(run_fixed(tuned, [x], rank_level=level).outputs[0], y.numpy())
