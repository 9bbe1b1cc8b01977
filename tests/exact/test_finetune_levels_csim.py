"""Jointly trained rank levels against g++: ``finetune`` after ``lowrank(levels=...)`` builds like any
levelled design, and ``fpgac verify`` finds every level's C-simulation equal to ``fpgac sim`` bit for bit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.build import BuildOptions, build
from tests.csim_support import skip_without_csim
from tests.models import random_input

pytest.importorskip("torch")
skip_without_csim()

pytestmark = pytest.mark.slow  # one g++ compile and a short fine-tune: about 15 s of CPU


def test_jointly_trained_levels_verify_bit_exactly(
    onnx_export: Callable[[str, str], Path], tmp_path: Path
) -> None:
    calib, data = tmp_path / "calib.npy", tmp_path / "train.npy"
    np.save(calib, random_input("cnn", 32, seed=3))
    np.save(data, random_input("cnn", 64, seed=4))
    passes = f'lowrank(levels="1,0.5,0.3"), finetune(data="{data}", epochs=2)'
    options = BuildOptions(calib=calib, passes=passes, backend="vitis", io="stream", precision=10)
    report = build(onnx_export("cnn", "torchscript"), tmp_path / "out", options)
    levels = report["finetune"]["rank_levels"]["levels"]
    assert [e["level"] for e in levels] == [0, 1, 2]
    result = verify(str(tmp_path / "out"), samples=4)
    assert sorted({d.level for d in result.layers}) == [0, 1, 2]
    assert result.mismatches == 0, result.first_mismatch
