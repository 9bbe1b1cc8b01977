"""The fpgac command as a user runs it: exit codes, one-line errors, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fpgac.boards import BOARDS
from fpgac.build import load_model
from fpgac.ir import graphs_equal, parse_graph

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODEL = EXAMPLES / "digits_cnn.onnx"
BATCH = EXAMPLES / "digits_batch.npy"


def fpgac(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fpgac", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=None if env is None else {**os.environ, **env},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_inspect_prints_layer_table_and_totals() -> None:
    result = fpgac("inspect", MODEL)
    assert result.returncode == 0, result.stderr
    graph = load_model(MODEL)
    params = sum(p.data.size for n in graph.nodes for p in n.params.values())
    assert "total" in result.stdout
    assert f"{params:,}" in result.stdout
    for node in graph.nodes:
        assert node.op in result.stdout


def test_inspect_ir_parses_back() -> None:
    result = fpgac("inspect", MODEL, "--ir")
    assert result.returncode == 0, result.stderr
    graph = load_model(MODEL)
    params = {(n.name, k): p.data for n in graph.nodes for k, p in n.params.items()}
    assert graphs_equal(graph, parse_graph(result.stdout, params))


def test_sim_matches_onnxruntime(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "y.npy"
    result = fpgac("sim", MODEL, "--input", BATCH, "--output", out)
    assert result.returncode == 0, result.stderr
    x = np.load(BATCH)
    (ref,) = ort.InferenceSession(str(MODEL)).run(None, {"image": x})
    ours = np.load(out)
    assert ours.shape == ref.shape == (64, 10)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_sim_rejects_wrong_input_shape(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 8, 8), np.float32))
    result = fpgac("sim", MODEL, "--input", bad, "--output", tmp_path / "y.npy")
    assert_one_line_error(result, "bad.npy", "(2, 3, 8, 8)", "(N, 1, 8, 8)")
    assert not (tmp_path / "y.npy").exists()


def test_sim_rejects_non_numpy_input(tmp_path: Path) -> None:
    bad = tmp_path / "x.npy"
    bad.write_text("not numpy")
    assert_one_line_error(fpgac("sim", MODEL, "--input", bad, "--output", tmp_path / "y.npy"), "x.npy")


@pytest.mark.parametrize("output", ["y.txt", "y", "y.npy.tmp"])
def test_sim_refuses_an_output_name_that_is_not_npy(tmp_path: Path, output: str) -> None:
    result = fpgac("sim", MODEL, "--input", BATCH, "--output", tmp_path / output)
    assert_one_line_error(result, output, ".npy")
    assert list(tmp_path.iterdir()) == []


def test_sim_refuses_npy_for_several_outputs(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y0"]), helper.make_node("Neg", ["x"], ["y1"])]
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in ("x", "y0", "y1")]
    graph = helper.make_graph(nodes, "g", info[:1], info[1:])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros((1, 3), np.float32))
    result = fpgac("sim", tmp_path / "m.onnx", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_one_line_error(result, "y.npy", "2 outputs", ".npz")
    assert not (tmp_path / "y.npy").exists()


def test_csim_refuses_a_bad_output_name_before_compiling(tmp_path: Path) -> None:
    build = fpgac("build", MODEL, "--out", tmp_path / "b", "--backend", "none")
    assert build.returncode == 0, build.stderr
    # A build without an HLS project cannot be C-simulated: the output name is checked first.
    result = fpgac("csim", tmp_path / "b", "--input", BATCH, "--output", tmp_path / "y.txt")
    assert_one_line_error(result, "y.txt", ".npy")


def test_boards_names_are_never_cut() -> None:
    """The names --board and --part take, whole, at 80 columns and piped (rich shrank them to 'alveo…')."""
    result = fpgac("boards", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["board", "part", "LUT"]
    for board, line in zip(BOARDS.values(), lines[1:], strict=True):
        assert line.split()[:3] == [board.name, board.part, f"{board.lut:,}"]
        assert line.endswith(board.description)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _lstm_model(path: Path) -> Path:
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="Foo_3", hidden_size=4)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [1, 16, 3], np.zeros(48)),
            helper.make_tensor("r", TensorProto.FLOAT, [1, 16, 4], np.zeros(64)),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda d: d / "missing.onnx", ["missing.onnx"]),
        (lambda d: _write(d / "empty.onnx", b""), ["empty.onnx"]),
        (lambda d: _write(d / "trunc.onnx", MODEL.read_bytes()[:500]), ["trunc.onnx"]),
        (lambda d: _write(d / "model.txt", MODEL.read_bytes()), ["model.txt"]),
        (
            lambda d: _lstm_model(d / "lstm.onnx"),
            ["lstm.onnx", "node 'Foo_3' (op LSTM) is not supported", "'Supported ONNX ops'"],
        ),
    ],
    ids=["missing", "empty", "truncated", "extension", "unsupported-op"],
)
def test_bad_models_give_one_line(tmp_path: Path, make, fragments) -> None:
    path = make(tmp_path)
    assert_one_line_error(fpgac("inspect", path), *fragments)


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = fpgac("--debug", "inspect", tmp_path / "missing.onnx")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_unknown_option_is_one_line() -> None:
    assert_one_line_error(fpgac("inspect", MODEL, "--bogus"), "--bogus")


def test_sim_keeps_onnx_output_names_when_outputs_share_a_value(tmp_path: Path) -> None:
    """Outputs returned twice, or an input passed through, keep their ONNX names in the .npz."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Identity", ["r"], ["y0"]),
        helper.make_node("Identity", ["r"], ["y1"]),
        helper.make_node("Identity", ["x"], ["y2"]),
    ]
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in ("x", "y0", "y1", "y2")]
    graph = helper.make_graph(nodes, "g", info[:1], info[1:])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    np.save(tmp_path / "x.npy", x)
    result = fpgac("sim", tmp_path / "m.onnx", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npz")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "y.npz") as out:
        assert list(out.keys()) == ["y0", "y1", "y2"]
        assert np.array_equal(out["y0"], np.maximum(x, 0)) and np.array_equal(out["y2"], x)


def test_build_fits_the_board_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "digits"
    args = ("build", MODEL, "--board", "pynq-z2", "--calib", BATCH, "--backend", "none", "--out", out)
    result = fpgac(*args, "--util", "0.5", "--target-fps", "100000", "--weights", "onchip")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["fits"] and report["fps"] >= 100_000 and report["fit"]["util"] == 0.5
    assert f"estimate fits at {report['fps']:,.0f} fps (100 MHz)" in result.stdout
    assert all(u <= 0.5 for u in report["utilization"].values())
    assert "## Design estimate" in (out / "report.md").read_text()
    result = fpgac(*args, "--force", "--reuse", "3")
    assert result.returncode == 0, result.stderr
    layers = json.loads((out / "report.json").read_text())["layers"]
    # a scanning pool (io stream) takes a beat a cycle whatever the factor: its report says what it runs at
    assert {layer["reuse"] for layer in layers if layer["op"] != "max_pool"} == {3}
    assert {layer["reuse"] for layer in layers if layer["op"] == "max_pool"} == {1}


@pytest.mark.parametrize(
    ("option", "fragment"),
    [("--util=0", "--util"), ("--target-fps=-5", "--target-fps"), ("--weights=ddr", "--weights")],
)
def test_build_rejects_bad_fit_options(tmp_path: Path, option: str, fragment: str) -> None:
    result = fpgac("build", MODEL, "--board", "pynq-z2", "--backend", "none", "--out", tmp_path / "x", option)
    assert result.returncode != 0 and fragment in result.stderr and "Traceback" not in result.stderr
