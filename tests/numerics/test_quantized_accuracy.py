"""The quantization issue's "done when": calibrated fixed point keeps trained models accurate.

Trained classifiers (``tests/trained.py``: digits MLP, digits CNN, LeNet-300-100 on MNIST) are built
with a calibration batch of training samples and simulated bit-accurately on their held-out sets.
Tolerances, all against onnxruntime on the same exported ONNX file:

* trained models at the default 16 bits: accuracy at most 1 point below float;
* 12/10/8 bits are measured and printed (``pytest -s``, or ``python -m
  tests.numerics.test_quantized_accuracy`` for the table); asserted only loosely (2/2/5 points) so a
  collapse of the narrow formats cannot go unnoticed;
* untrained models of every family in ``tests/models.py``: mean absolute error below 5% of the float
  output's spread (max - min) on fresh inputs from the calibration distribution;
* Softmax outputs: every probability within 0.01 of float's;
* without calibration (interval mode): a warning, and zero overflows on inputs inside ``--input-range``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fpgac.build import BuildOptions, build, compile_model
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Graph
from fpgac.ir.serialize import load_graph
from tests.models import MODELS, random_input
from tests.numerics.compare import run_onnxruntime
from tests.trained import RECIPES, Trained, export, train

CALIB_SAMPLES = 300
MAX_DROP_16 = 0.01
LOOSE_DROP = {12: 0.02, 10: 0.02, 8: 0.05}
MAE_SPREAD = 0.05
SOFTMAX_ATOL = 0.01
BATCH = 256


@dataclass(frozen=True)
class Exported:
    """A trained model exported to ONNX, with its calibration file and onnxruntime's test accuracy."""

    trained: Trained
    onnx: Path
    calib: Path
    float_accuracy: float
    folder: Path


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Exported]:
    """``trained_model(name)``: trained, exported and calibrated once per session (training costs seconds)."""
    folder = tmp_path_factory.mktemp("trained")
    cache: dict[str, Exported] = {}

    def get(name: str) -> Exported:
        if name not in cache:
            cache[name] = _export(name, folder)
        return cache[name]

    return get


def _export(name: str, folder: Path) -> Exported:
    trained = train(name)
    path = export(trained, folder / f"{name}.onnx")
    calib = folder / f"{name}_calib.npy"
    np.save(calib, trained.data.x_train[:CALIB_SAMPLES])
    (logits,) = run_onnxruntime(path, [trained.data.x_test])
    accuracy = float((logits.argmax(1) == trained.data.y_test).mean())
    return Exported(trained, path, calib, accuracy, folder)


def _accuracy(graph: Graph, model: Exported) -> float:
    (logits,) = run_fixed(graph, [model.trained.data.x_test]).outputs
    return float((logits.argmax(1) == model.trained.data.y_test).mean())


def _sweep(model: Exported, precisions: tuple[int, ...]) -> dict[int, float]:
    accuracies = {}
    for bits in precisions:
        graph = compile_model(model.onnx, BuildOptions(calib=model.calib, precision=bits)).graph
        accuracies[bits] = _accuracy(graph, model)
    return accuracies


# -- trained models ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RECIPES))
def test_16_bits_within_one_point_of_float(
    name: str, trained_model: Callable[[str], Exported], tmp_path: Path
) -> None:
    """The default build (written to disk, loaded back, simulated) loses at most 1 point of accuracy."""
    model = trained_model(name)
    assert model.float_accuracy > 0.9, f"{name}: float accuracy {model.float_accuracy:.3f}; training broke"
    build(model.onnx, tmp_path / "build", BuildOptions(calib=model.calib))
    accuracy = _accuracy(load_graph(tmp_path / "build"), model)
    assert accuracy >= model.float_accuracy - MAX_DROP_16, (
        f"{name}: 16-bit accuracy {accuracy:.3f} vs float {model.float_accuracy:.3f}"
    )


@pytest.mark.parametrize("name", list(RECIPES))
def test_narrow_precisions_report(name: str, trained_model: Callable[[str], Exported]) -> None:
    """Accuracy at 12/10/8 bits, printed for the README; only a collapse fails (see module docstring)."""
    model = trained_model(name)
    accuracies = _sweep(model, tuple(LOOSE_DROP))
    row = " ".join(f"{bits}b={acc:.3f}" for bits, acc in accuracies.items())
    print(f"\n{name}: float={model.float_accuracy:.3f} {row}")
    for bits, accuracy in accuracies.items():
        assert accuracy >= model.float_accuracy - LOOSE_DROP[bits], f"{name} at {bits} bits: {row}"


def _fpgac(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # rich wraps tables at 80 columns without a terminal
    return subprocess.run(
        [sys.executable, "-m", "fpgac", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_build_and_sim_match_the_api(trained_model: Callable[[str], Exported], tmp_path: Path) -> None:
    """``fpgac build --calib`` then ``fpgac sim``: the same bits as the Python API, and the same accuracy."""
    model = trained_model("digits_cnn")
    x = tmp_path / "x.npy"
    np.save(x, model.trained.data.x_test)
    result = _fpgac("build", model.onnx, "--out", tmp_path / "build", "--calib", model.calib)
    assert result.returncode == 0, result.stderr
    result = _fpgac("sim", tmp_path / "build", "--input", x, "--output", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    graph = compile_model(model.onnx, BuildOptions(calib=model.calib)).graph
    (expected,) = run_fixed(graph, [model.trained.data.x_test]).outputs
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    accuracy = float((expected.argmax(1) == model.trained.data.y_test).mean())
    assert accuracy >= model.float_accuracy - MAX_DROP_16


def test_softmax_of_trained_model(trained_model: Callable[[str], Exported]) -> None:
    """With a Softmax appended, every quantized probability is within 0.01 of float's."""
    model = trained_model("digits_mlp")
    path = export(model.trained, model.folder / "digits_mlp_softmax.onnx", softmax=True)
    graph = compile_model(path, BuildOptions(calib=model.calib)).graph
    assert graph.nodes[-1].op == "softmax"
    x = model.trained.data.x_test
    (probs,) = run_fixed(graph, [x]).outputs
    (ref,) = run_onnxruntime(path, [x])
    deviation = float(np.abs(probs - ref).max())
    print(f"\ndigits_mlp+softmax: max |p - p_float| = {deviation:.5f}")
    assert deviation <= SOFTMAX_ATOL


# -- untrained model families ------------------------------------------------------------------------


FAMILIES = list(MODELS)


def _calibrated(name: str, onnx_path: Path, tmp_path: Path) -> Graph:
    calib = tmp_path / "calib.npy"
    np.save(calib, random_input(name, BATCH, seed=3))
    graph = compile_model(onnx_path, BuildOptions(calib=calib)).graph
    return graph


@pytest.mark.parametrize("name", FAMILIES)
def test_untrained_mean_error_below_5_percent_of_spread(
    name: str, onnx_export: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """Calibrated on one random batch, tested on a fresh one: MAE < 5% of the float output's spread."""
    path = onnx_export(name, "torchscript")
    graph = _calibrated(name, path, tmp_path)
    x = random_input(name, BATCH, seed=7)
    (ref,) = run_onnxruntime(path, [x])
    result = run_fixed(graph, [x])
    (ours,) = result.outputs
    spread = float(ref.max() - ref.min())
    mae = float(np.abs(ours - ref).mean())
    print(f"\n{name}: MAE/spread = {mae / spread:.2e} (overflows {sum(result.overflows.values())})")
    assert spread > 0
    assert mae < MAE_SPREAD * spread, f"{name}: MAE {mae:.4g}, spread {spread:.4g}"


def test_untrained_softmax_head(onnx_export: Callable[[str, str], Path], tmp_path: Path) -> None:
    """The two-branch model ends in Softmax: probabilities within 0.01 of float's."""
    name = "two_branch_concat"
    path = onnx_export(name, "torchscript")
    graph = _calibrated(name, path, tmp_path)
    x = random_input(name, BATCH, seed=7)
    (ref,) = run_onnxruntime(path, [x])
    (probs,) = run_fixed(graph, [x]).outputs
    deviation = float(np.abs(probs - ref).max())
    print(f"\n{name}: max |p - p_float| = {deviation:.5f}")
    assert deviation <= SOFTMAX_ATOL


def test_ops_without_fixed_point_kernel_are_refused(tmp_path: Path) -> None:
    """div (of two tensors) has no kernel: one clear line naming the node and op, no folder."""
    names = ["a", "b"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4, 3, 3]) for n in names]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 3, 3])
    graph = helper.make_graph([helper.make_node("Div", names, ["y"], name="Div")], "div", inputs, [output])
    model = tmp_path / "div.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    result = _fpgac("build", model, "--out", tmp_path / "build")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "no fixed-point kernel for div" in line, line
    assert not (tmp_path / "build").exists()


# -- interval mode (no calibration) ------------------------------------------------------------------


def _inside_range(shape: tuple[int, ...], lo: float, hi: float, seed: int) -> np.ndarray:
    """Uniform samples plus the corners of the box, where linear layers reach their extremes."""
    rng = np.random.default_rng(seed)
    uniform = rng.uniform(lo, hi, (BATCH, *shape))
    corners = np.where(rng.random((BATCH, *shape)) < 0.5, lo, hi)
    constant = np.stack([np.full(shape, lo), np.full(shape, hi)])
    return np.concatenate([uniform, corners, constant]).astype(np.float32)


@pytest.mark.parametrize("name", FAMILIES)
def test_interval_mode_never_overflows(
    name: str, onnx_export: Callable[[str, str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    """No ``--calib``: a warning says so, and inputs inside [-1, 1] overflow nowhere."""
    path = onnx_export(name, "torchscript")
    with caplog.at_level(logging.WARNING, logger="fpgac"):
        graph = compile_model(path, BuildOptions()).graph
    assert any("no calibration data" in r.getMessage() for r in caplog.records)
    assert graph.metadata["quantize"]["ranges"] == "interval"
    result = run_fixed(graph, [_inside_range(MODELS[name].input_shape, -1.0, 1.0, seed=5)])
    overflowing = {k: v for k, v in result.overflows.items() if v}
    assert not overflowing, f"{name}: overflows {overflowing}"


def test_cli_overflow_report_is_zero_inside_input_range(
    trained_model: Callable[[str], Exported], tmp_path: Path
) -> None:
    """``fpgac build --input-range 0,1`` (no --calib) then ``fpgac sim --overflow-report``: all zeros."""
    model = trained_model("digits_cnn")
    x = tmp_path / "x.npy"
    np.save(x, np.concatenate([model.trained.data.x_test, _inside_range((1, 8, 8), 0.0, 1.0, seed=6)]))
    result = _fpgac("build", model.onnx, "--out", tmp_path / "build", "--input-range", "0,1")
    assert result.returncode == 0, result.stderr
    assert "no calibration data" in result.stderr
    result = _fpgac(
        "sim", tmp_path / "build", "--input", x, "--output", tmp_path / "y.npy", "--overflow-report"
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("│") for line in result.stdout.splitlines() if line.count("│") == 5]
    counts = {cells[1].strip(): cells[2].strip() for cells in rows if cells[2].strip() != "overflows"}
    graph = load_graph(tmp_path / "build")
    assert set(counts) == {v.name for v in graph.inputs} | {n.name for n in graph.nodes}, result.stdout
    assert set(counts.values()) == {"0"}, result.stdout
    accuracy = _accuracy(graph, model)
    print(f"\ndigits_cnn interval mode [0, 1]: accuracy {accuracy:.3f} (float {model.float_accuracy:.3f})")


def main() -> None:
    """Print the float vs fixed accuracy table (Markdown) of the trained models."""
    import tempfile

    precisions = (16, 12, 10, 8)
    print("| model | float (onnxruntime) | " + " | ".join(f"{b} bits" for b in precisions) + " |")
    print("|---|---|" + "---|" * len(precisions))
    with tempfile.TemporaryDirectory() as tmp:
        for name in RECIPES:
            model = _export(name, Path(tmp))
            accuracies = _sweep(model, precisions)
            cells = " | ".join(f"{100 * a:.1f}%" for a in accuracies.values())
            print(f"| {name} | {100 * model.float_accuracy:.1f}% | {cells} |")


if __name__ == "__main__":
    main()
