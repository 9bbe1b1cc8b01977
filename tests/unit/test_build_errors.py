"""``fpgac build`` on bad input: one clear line on stderr, exit code 1, and nothing left on disk.

A failed build must not leave a build folder or its temporary staging folder behind (a half-written
folder looks like a design), and a refused ``--out`` must be left untouched. Run through the real
command (``python -m fpgac``) because the exit code, the single line and the absence of a traceback
are what users see. Also: building twice gives byte-identical folders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

IN, HIDDEN, OUT = 6, 5, 3


def tiny_mlp(path: Path, poison: float | None = None) -> Path:
    """Gemm-Relu-Gemm on (N, 6) built with onnx.helper; ``poison`` is written into one fc1 weight."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((HIDDEN, IN)).astype(np.float32)
    if poison is not None:
        w1[1, 2] = poison
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(rng.standard_normal(HIDDEN).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((OUT, HIDDEN)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(OUT).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", OUT])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def fpgac(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fpgac", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder holding only the model and a good calibration batch; builds go to ``build`` inside it."""
    tiny_mlp(tmp_path / "model.onnx")
    np.save(tmp_path / "calib.npy", np.random.default_rng(1).standard_normal((64, IN)).astype(np.float32))
    return tmp_path


def error_lines(stderr: str) -> list[str]:
    """stderr without the logged warnings (interval mode warns before a late error such as ``--out``)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("WARNING: ")]


def assert_fails_cleanly(workdir: Path, *args: str | Path, says: tuple[str, ...]) -> str:
    """Run ``fpgac build model.onnx --out build ARGS``; check the error contract; return the line."""
    before = sorted(p.name for p in workdir.iterdir())
    result = fpgac("build", workdir / "model.onnx", "--out", workdir / "build", *args)
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr}{result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("error: "), line
    for fragment in says:
        assert fragment in line, line
    after = sorted(p.name for p in workdir.iterdir())
    assert after == before, f"left behind: {set(after) - set(before)}"
    return line


# -- calibration data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "says"),
    [((64, IN + 1), "(64, 7)"), ((64, IN, 1), "(64, 6, 1)"), ((IN,), "(6,)")],
    ids=["wide", "extra-axis", "no-batch"],
)
def test_calibration_of_the_wrong_shape(workdir: Path, shape: tuple[int, ...], says: str) -> None:
    np.save(workdir / "calib.npy", np.zeros(shape, np.float32))
    assert_fails_cleanly(workdir, "--calib", workdir / "calib.npy", says=(says, "(N, 6)"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_calibration_with_nan_or_inf(workdir: Path, bad: float) -> None:
    calib = np.random.default_rng(2).standard_normal((64, IN)).astype(np.float32)
    calib[10, 3] = bad
    np.save(workdir / "calib.npy", calib)
    assert_fails_cleanly(workdir, "--calib", workdir / "calib.npy", says=("NaN or Inf", "calib"))


def test_empty_calibration_batch(workdir: Path) -> None:
    np.save(workdir / "calib.npy", np.zeros((0, IN), np.float32))
    assert_fails_cleanly(workdir, "--calib", workdir / "calib.npy", says=("calib.npy", "no samples"))


def test_calibration_file_missing_or_not_numpy(workdir: Path) -> None:
    assert_fails_cleanly(workdir, "--calib", workdir / "nope.npy", says=("nope.npy", "no such file"))
    (workdir / "calib.npy").write_text("not numpy")
    assert_fails_cleanly(workdir, "--calib", workdir / "calib.npy", says=("calib.npy",))


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("calibrated", [True, False], ids=["calib", "interval"])
def test_weights_with_nan_or_inf(workdir: Path, bad: float, calibrated: bool) -> None:
    tiny_mlp(workdir / "model.onnx", poison=bad)
    args = ["--calib", workdir / "calib.npy"] if calibrated else []
    line = assert_fails_cleanly(workdir, *args, says=())
    assert "NaN" in line or "Inf" in line or "inf" in line or "nan" in line, line
    assert "fc1" in line, line


# -- passes and options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("frobnicate", ("unknown pass 'frobnicate'", "known passes")),
        ("quantize(frob=1)", ("has no option 'frob'", "precision")),
        ("quantize(precision=abc)", ("precision='abc'", "must be int")),
        ("quantize(precision=8.5)", ("precision=8.5", "must be int")),
        ("quantize(headroom=true)", ("headroom=True", "must be int")),
        ("quantize(", ("missing ')'",)),
        ("quantize(precision=)", ("has no value",)),
        ("quantize(precision 8)", ("key=value",)),
        ("quantize(precision=8 headroom=1)", ("expected ','",)),
        ("quantize(precision=8, precision=9)", ("given twice",)),
        ("quantize,", ("trailing ','",)),
        (",quantize", ("expected a pass name",)),
        ("quantize quantize", ("expected ','",)),
        ("quantize(precision=8)$", ("unexpected",)),
        ("quantize(precision=3)", ("out of range",)),
        ("quantize(headroom=9)", ("headroom 9 is out of range",)),
    ],
)
def test_bad_pass_spec(workdir: Path, spec: str, says: tuple[str, ...]) -> None:
    assert_fails_cleanly(workdir, "--passes", spec, says=says)


@pytest.mark.parametrize("bits", ["3", "33", "100", "0", "-8"])
def test_precision_out_of_range(workdir: Path, bits: str) -> None:
    assert_fails_cleanly(workdir, "--precision", bits, says=(f"precision {bits}", "4..32"))


def test_precision_not_a_number(workdir: Path) -> None:
    assert_fails_cleanly(workdir, "--precision", "sixteen", says=("--precision", "sixteen"))


def test_unknown_command_line_option(workdir: Path) -> None:
    assert_fails_cleanly(workdir, "--frobnicate", says=("--frobnicate",))


def test_unknown_board(workdir: Path) -> None:
    assert_fails_cleanly(workdir, "--board", "zcu999", says=("zcu999",))


@pytest.mark.parametrize("text", ["1", "a,b", "1,0", "1,1", "0,1,2", "nan,1", ""])
def test_bad_input_range(workdir: Path, text: str) -> None:
    assert_fails_cleanly(workdir, "--input-range", text, says=("--input-range",))


def test_infinite_input_range(workdir: Path) -> None:
    """``-inf,inf`` parses as numbers, but no format can hold it: refused up front."""
    assert_fails_cleanly(workdir, "--input-range=-inf,inf", says=("--input-range", "finite"))


# -- config file -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[layers.fc1\nprecision = 8\n", ("not valid TOML",)),
        ('[layers."fc9"]\nprecision = 8\n', ("'fc9'", "not in the model")),
        ("[layer.fc1]\nprecision = 8\n", ("unknown sections", "layer")),
        ("[layers.fc1]\nbits = 8\n", ("'fc1'", "only 'precision'")),
        ("[layers.fc1]\nprecision = 3\n", ("precision 3", "4..32")),
        ('[layers.fc1]\nprecision = "8"\n', ("'8'",)),
        ("[layers.fc1]\nprecision = 8.5\n", ("8.5",)),
        ("[layers]\nfc1 = 8\n", ("'fc1'", "only 'precision'")),
        ('[layers.fc1]\nkeep = "half"\n', ("keep of layer 'fc1'", "a number")),
    ],
    ids=[
        "syntax",
        "unknown-layer",
        "unknown-section",
        "unknown-key",
        "range",
        "string",
        "float",
        "flat",
        "keep",
    ],
)
def test_bad_config(workdir: Path, toml: str, says: tuple[str, ...]) -> None:
    (workdir / "config.toml").write_text(toml)
    line = assert_fails_cleanly(workdir, "--config", workdir / "config.toml", says=says)
    assert "config.toml" in line or "quantize: precision" in line, line  # the file, or the layer's setting


def test_missing_config(workdir: Path) -> None:
    assert_fails_cleanly(workdir, "--config", workdir / "none.toml", says=("none.toml",))


def test_good_config_is_applied(workdir: Path) -> None:
    """The control for the cases above: a valid per-layer precision builds and shows in the IR."""
    (workdir / "config.toml").write_text('[layers."fc1"]\nprecision = 8\n')
    result = fpgac(
        "build", workdir / "model.onnx", "--out", workdir / "build", "--config", workdir / "config.toml"
    )
    assert result.returncode == 0, result.stderr
    fc1 = [line for line in (workdir / "build" / "graph.fir").read_text().splitlines() if "@fc1 " in line]
    assert len(fc1) == 1 and "fixed<8," in fc1[0], fc1


def test_config_keep_reaches_reap(workdir: Path) -> None:
    """``keep`` per layer overrides reap's own: fc1 keeps 2 of its 5 units; out of range is one line."""
    (workdir / "config.toml").write_text('[layers."fc1"]\nkeep = 0.4\n')
    args = ["--calib", workdir / "calib.npy", "--config", workdir / "config.toml", "--passes", "reap(keep=1)"]
    result = fpgac("build", workdir / "model.onnx", "--out", workdir / "build", *args)
    assert result.returncode == 0, result.stderr
    fc1 = [line for line in (workdir / "build" / "graph.fir").read_text().splitlines() if "@fc1 " in line]
    assert len(fc1) == 1 and "weight: fixed<16" in fc1[0] and "[2,6]" in fc1[0], fc1
    (workdir / "config.toml").write_text('[layers."fc1"]\nkeep = 1.5\n')
    shutil.rmtree(workdir / "build")
    assert_fails_cleanly(workdir, *args, says=("reap: keep of 'fc1' must be in (0, 1]",))


def test_reap_without_calibration_fails_cleanly(workdir: Path) -> None:
    assert_fails_cleanly(workdir, "--passes", "reap(keep=0.5)", says=("reap:", "needs calibration data"))


# -- the output folder -------------------------------------------------------------------------------


def test_out_is_a_foreign_folder(workdir: Path) -> None:
    """A folder fpgac did not make is refused untouched; ``--force`` replaces it with a build."""
    out = workdir / "build"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    before = sorted(p.name for p in workdir.iterdir())
    result = fpgac("build", workdir / "model.onnx", "--out", out)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert "--force" in result.stderr and "not an fpgac build folder" in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == before
    assert (out / "thesis.tex").read_text() == "years of work"

    result = fpgac("build", workdir / "model.onnx", "--out", out, "--force")
    assert result.returncode == 0, result.stderr
    assert not (out / "thesis.tex").exists()
    assert (out / "graph.fir").is_file()
    assert sorted(p.name for p in workdir.iterdir()) == before  # no staging or old folder left


def test_out_is_a_file(workdir: Path) -> None:
    (workdir / "build").write_text("a file")
    assert_fails_cleanly(workdir, says=("not a folder",))
    assert (workdir / "build").read_text() == "a file"


def test_failed_rebuild_keeps_the_previous_build(workdir: Path) -> None:
    """A build that fails over an earlier fpgac build leaves the earlier one as it was."""
    assert fpgac("build", workdir / "model.onnx", "--out", workdir / "build").returncode == 0
    files = _contents(workdir / "build")
    assert_fails_cleanly(workdir, "--precision", "3", says=("precision 3",))
    assert _contents(workdir / "build") == files


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("calibrated", [True, False], ids=["calib", "interval"])
def test_building_twice_is_byte_identical(workdir: Path, calibrated: bool) -> None:
    args = ["--calib", workdir / "calib.npy"] if calibrated else []
    for out in ("a", "b"):
        result = fpgac("build", workdir / "model.onnx", "--out", workdir / out, *args)
        assert result.returncode == 0, result.stderr
    first, second = _contents(workdir / "a"), _contents(workdir / "b")
    assert {"graph.fir", "weights.npz", "report.json"} <= set(first)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], f"{name} differs between two identical builds"
    # Rebuilding into the same folder replaces it with the same bytes.
    assert fpgac("build", workdir / "model.onnx", "--out", workdir / "a", *args).returncode == 0
    assert _contents(workdir / "a") == first
