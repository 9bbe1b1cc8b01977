"""Fidelity in every build: the design against the float model on calibration samples, after each pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpgac.analysis import fidelity
from fpgac.analysis.fidelity import FidelityProbe, fidelity_line
from fpgac.analysis.report import report_markdown
from fpgac.build import BuildOptions, compile_model, load_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODEL, BATCH = EXAMPLES / "digits_cnn.onnx", EXAMPLES / "digits_batch.npy"


def test_every_pass_is_measured_and_16_bits_agree_with_float() -> None:
    report = compile_model(MODEL, BuildOptions(calib=BATCH, passes="prune(sparsity=0.5), quantize")).report
    stages = report["fidelity"]["stages"]
    assert [s["stage"] for s in stages] == ["prune", "quantize"]
    assert report["fidelity"]["samples"] == 16  # the example batch has 64: MAX_SAMPLES of them
    for stage in stages:
        (logits,) = stage["outputs"].values()
        assert 0.0 <= logits["argmax_agreement"] <= 1.0
        assert 0.0 <= logits["mean_abs_error"] <= logits["max_abs_error"] < np.inf
    plain = compile_model(MODEL, BuildOptions(calib=BATCH)).report["fidelity"]
    (logits,) = plain["stages"][-1]["outputs"].values()
    assert logits["argmax_agreement"] == 1.0 and logits["max_abs_error"] < 0.05
    line = fidelity_line(plain)
    assert line.startswith("fidelity vs float on 16 calibration samples: argmax agrees 100.0%"), line
    assert "## Fidelity vs the float model" in report_markdown(report)


def test_a_destructive_recipe_shows() -> None:
    passes = "prune(sparsity=0.95), share(bits=2), quantize(precision=6)"
    stages = compile_model(MODEL, BuildOptions(calib=BATCH, passes=passes)).report["fidelity"]["stages"]
    agreement = [next(iter(s["outputs"].values()))["argmax_agreement"] for s in stages]
    assert agreement[-1] < 0.5, agreement


def test_no_calibration_no_fidelity() -> None:
    assert "fidelity" not in compile_model(MODEL, BuildOptions()).report


def test_large_models_get_fewer_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is bounded: about MAC_BUDGET multiply-accumulates per stage, at least MIN_SAMPLES."""
    monkeypatch.setattr(fidelity, "MAC_BUDGET", 1)
    probe = FidelityProbe(load_model(MODEL), [np.load(BATCH)])
    assert len(probe.samples[0]) == fidelity.MIN_SAMPLES


def test_report_md_says_where_the_fitting_put_line_buffers() -> None:
    """report.json's fit lists the line buffers the fitting moved out of block RAM; report.md counts them."""
    report = compile_model(MODEL, BuildOptions(calib=BATCH, io="stream")).report
    assert "line buffers in" not in report_markdown(report)
    report["fit"] = {**report["fit"], "uram_rows": ["a"], "lutram_rows": ["b", "c"]}
    text = report_markdown(report)
    assert "- line buffers in URAM: 1 layers (`a`)" in text
    assert "- line buffers in LUT RAM: 2 layers (`b`, `c`)" in text
