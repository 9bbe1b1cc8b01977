"""The OOD monitor in hardware: ``fpgac verify`` (simulator vs g++ C-simulation) over every traced value,
flag, num and den included: the projection score of a conv model (padded, strided windows) in io parallel,
the residual score of an MLP (the centring affine, a value read by the classifier and the monitor: forks)
in io stream, and the projection of a low-rank split conv through its first factor's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.passes.ood import Ood
from tests.csim_support import skip_without_csim
from tests.unit.test_ood import cnn, mlp, quantized, split_and_monitor
from tests.vitis_zoo import write_folder

skip_without_csim()
pytestmark = pytest.mark.slow  # g++ compiles of small projects


def test_projection_monitor_bit_exact_io_parallel(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    calib = rng.normal(size=(48, 2, 7, 7)).astype(np.float32)
    graph = Ood(layer="c2", k=3, calib=(calib,)).run(quantized(cnn(rng), calib))
    result = verify(str(write_folder(graph, tmp_path / "cnn", "parallel")), [calib[:24]])
    assert result.mismatches == 0
    assert {layer.value for layer in result.layers} >= {"ood_flag", "ood_num", "ood_den"}


def test_residual_monitor_bit_exact_io_stream(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    calib = np.abs(rng.normal(size=(64, 16))).astype(np.float32)
    graph = Ood(score="residual", calib=(calib,)).run(quantized(mlp(rng, [16, 12, 12, 3], {}), calib))
    result = verify(str(write_folder(graph, tmp_path / "mlp", "stream")), [calib])
    assert result.mismatches == 0
    assert result.layers[-1].elements > 0  # the flag was compared


def test_split_layer_monitor_bit_exact_io_parallel(tmp_path: Path) -> None:
    """(io stream passes too; left out of CI for time: it is the slower compile.)"""
    rng = np.random.default_rng(4)
    calib = rng.normal(size=(32, 2, 7, 7)).astype(np.float32)
    graph, _ = split_and_monitor(cnn(rng, width=8), calib, "c2")
    assert graph.metadata["ood"]["reused_factor"] == "c2_lr1"
    result = verify(str(write_folder(graph, tmp_path / "split", "parallel")), [calib[:16]])
    assert result.mismatches == 0
    assert {layer.value for layer in result.layers} >= {"ood_flag", "ood_num", "ood_den"}
