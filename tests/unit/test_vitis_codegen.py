"""The Vitis HLS project as text: names, determinism, structure, options; one compile for hygiene.

Bit-exactness of the generated C++ is tested in ``tests/exact/test_vitis_csim.py``; here the code is read,
and compiled once with ``-Wall -Wextra`` (the ap_types headers as system headers, so only warnings from
fpgac's own files count) on a model whose names are hostile.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jinja2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.backends.cnames import CNames, c_identifier, comment_text
from fpgac.backends.equivalence import verify
from fpgac.backends.vitis import csim
from fpgac.backends.vitis.emitter import _templates, vitis_plan
from fpgac.boards import get_board
from fpgac.build import BuildOptions, ConfigError, build, compile_model
from fpgac.errors import FpgacError
from tests.csim_support import skip_without_csim

EVIL = 'x"; system("rm -rf /"); //'
EVIL_NODE = 'fc*/ #include <cstdlib>\n\\ int main() { system("reboot"); }'


def _evil_model(path: Path) -> Path:
    """Dense -> ReLU -> Dense, with names that would inject code if pasted into C++ or Tcl."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (6, 4)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (4, 3)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", [EVIL, "w1"], ["h"], name=EVIL_NODE),
        helper.make_node("Relu", ["h"], ["r"], name="int"),
        helper.make_node("MatMul", ["r", "w2"], ['y"; exit'], name="1st layer"),
    ]
    graph = helper.make_graph(
        nodes,
        'evil"graph',
        [helper.make_tensor_value_info(EVIL, TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info('y"; exit', TensorProto.FLOAT, ["N", 3])],
        initializer=[w1, w2],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture(scope="module", params=["parallel", "stream"])
def evil_build(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    root = tmp_path_factory.mktemp("evil")
    model = _evil_model(root / "evil.onnx")
    calib = root / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((32, 6)).astype(np.float32))
    build(model, root / "out", BuildOptions(calib=calib, io=request.param))
    return root / "out"


def _generated(folder: Path) -> dict[str, str]:
    hls = folder / "hls"
    return {str(p.relative_to(hls)): p.read_text() for p in sorted(hls.rglob("*")) if p.is_file()}


def test_hostile_names_stay_in_comments(evil_build: Path) -> None:
    for path, text in _generated(evil_build).items():
        if path.endswith(".md"):  # documentation: names are quoted there, never executed
            continue
        if path == "fpgac.json":  # the name map: JSON data for fpgac's csim, never compiled or run
            assert json.loads(text)["inputs"][0]["value"] == EVIL
            continue
        code = "\n".join(re.sub(r"(//|#|>).*$", "", line) for line in text.splitlines())
        assert "system(" not in code, path
        assert "rm -rf" not in code and '"reboot"' not in code, path
        assert "\\\n" not in text, path  # no line continuation can pull a comment into code
    layers = _generated(evil_build)["firmware/layers.h"]
    assert "static void m_int(" in layers  # a C++ keyword as a layer name is renamed
    assert "static void n1st_layer(" in layers  # a leading digit too


def test_hostile_names_compile_clean_and_bit_exact(evil_build: Path, tmp_path: Path) -> None:
    """``g++ -Wall -Wextra``: no warning from our files; then zero mismatches against the simulator."""
    skip_without_csim()
    hls = evil_build / "hls"
    command = csim.compile_command(hls, tmp_path / "tb", ("-Wall", "-Wextra"))
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = [line for line in proc.stderr.splitlines() if str(hls) in line and "warning" in line]
    assert not ours, "\n".join(ours)
    assert verify(str(evil_build), samples=16).mismatches == 0


def test_c_identifiers() -> None:
    assert c_identifier("/features/features.0/Conv") == "features_features_0_Conv"
    assert c_identifier("0conv") == "n0conv"
    assert c_identifier("for") == "m_for"
    assert c_identifier("ap_fixed") == "m_ap_fixed"
    assert c_identifier("") == "v"
    assert c_identifier("é€") == "v"
    assert comment_text("a\nb\\c*/") == "a?b?c*/"


def test_unique_names_claim_derived_names() -> None:
    names = CNames()
    first = names.claim("conv1", ("_weight_t",))
    assert first == "conv1"
    assert names.claim("conv1", ("_weight_t",)) == "conv1_2"
    assert names.claim("conv1_weight", ("_t",)) == "conv1_weight_2"  # conv1_weight_t is conv1's
    assert names.claim("a.b") != names.claim("a-b")


def test_project_structure(evil_build: Path) -> None:
    files = _generated(evil_build)
    assert {"build.tcl", "README.md", "tb/testbench.cpp", "firmware/fpgac_kernels.h"} <= set(files)
    for path, text in files.items():
        if path.endswith((".h", ".cpp", ".tcl", ".md")) and "fpgac_" not in Path(path).name[:6]:
            assert "Generated by fpgac" in text.splitlines()[0], path
    tcl = files["build.tcl"]
    board = get_board("zcu104")
    needles = ["open_project", "set_top fpgac_top", "add_files", "open_solution", f"set_part {board.part}"]
    needles += ["create_clock -period 5", "csim_design", "csynth_design", "cosim_design", "export_design"]
    for needle in needles:
        assert needle in tcl, needle
    defines = files["firmware/defines.h"]
    assert re.search(r"typedef ap_u?fixed<[^>]+> \w+_out_t;", defines)
    assert re.search(r"typedef ap_fixed<\d+,-?\d+,AP_TRN,AP_WRAP> \w+_acc_t;", defines)
    assert "_weight_t;" in defines
    top = files["firmware/fpgac_top.cpp"]
    assert "HLS INTERFACE" in top and top.count("fpgac_top(") == 1
    assert "PIPELINE" in files["firmware/fpgac_kernels.h"]
    original = (Path(csim.__file__).parents[2] / "hls_templates" / "fpgac_kernels.h").read_text()
    assert files["firmware/fpgac_kernels.h"] == original  # copied verbatim


def test_build_is_deterministic(tmp_path: Path) -> None:
    model = _evil_model(tmp_path / "m.onnx")
    calib = tmp_path / "c.npy"
    np.save(calib, np.random.default_rng(2).standard_normal((16, 6)).astype(np.float32))
    trees = []
    for k in range(2):
        out = tmp_path / f"b{k}"
        build(model, out, BuildOptions(calib=calib))
        trees.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert trees[0] == trees[1]
    assert any(path.startswith("hls/") for path in trees[0])


def test_backend_and_io_options(tmp_path: Path) -> None:
    model = _evil_model(tmp_path / "m.onnx")
    report = build(model, tmp_path / "none", BuildOptions(backend="none"))
    assert not (tmp_path / "none" / "hls").exists()
    written = json.loads((tmp_path / "none" / "report.json").read_text())
    assert written["io"] == written["recommended_io"] == "parallel"  # a tiny model: auto picks parallel
    assert written["io_choice"] == "auto (fitted to the board)"
    assert report["backend"] == "none"
    report = build(model, tmp_path / "stream", BuildOptions(io="stream"))
    assert (report["io"], report["io_choice"]) == ("stream", "--io")
    assert (tmp_path / "stream" / "hls" / "firmware" / "fpgac_stream.h").is_file()
    with pytest.raises(ConfigError, match="io style"):
        compile_model(model, BuildOptions(io="serial"))
    with pytest.raises(ConfigError, match="backend"):
        compile_model(model, BuildOptions(backend="quartus"))


def test_plan_does_not_mutate_the_graph(tmp_path: Path) -> None:
    from fpgac.ir.printer import print_graph

    model = _evil_model(tmp_path / "m.onnx")
    graph = compile_model(model, BuildOptions(backend="none")).graph
    before = print_graph(graph)
    vitis_plan(graph, get_board("zcu104"))
    assert print_graph(graph) == before


def test_templates_are_strict() -> None:
    with pytest.raises(jinja2.UndefinedError):
        _templates().get_template("build.tcl.j2").render({})


def test_reuse_reaches_the_hls_and_the_estimate(tmp_path: Path) -> None:
    """--reuse for all layers, `reuse` per layer in the config: the config structs, the pragmas' II and
    multiplier limit, and the estimate all use the same factors."""
    model = _evil_model(tmp_path / "m.onnx")
    base = compile_model(model, BuildOptions(io="parallel")).report
    config = tmp_path / "c.toml"
    config.write_text(f"[layers.{json.dumps(EVIL_NODE)}]\nreuse = 8\n")  # a TOML basic string
    report = build(model, tmp_path / "out", BuildOptions(io="parallel", reuse=2, config=config))
    reuse = {layer["name"]: layer["reuse"] for layer in report["layers"]}
    assert reuse == {EVIL_NODE: 8, "int": 2, "1st layer": 2}
    layers = (tmp_path / "out" / "hls" / "firmware" / "layers.h").read_text()
    assert re.findall(r"static const int REUSE = (\d+);", layers) == ["8", "2"]  # relu: no config
    assert "HLS ARRAY_RESHAPE variable=" in layers and "cyclic factor=3" in layers  # 24 weights / 8
    kernels = (tmp_path / "out" / "hls" / "firmware" / "fpgac_kernels.h").read_text()
    assert "HLS PIPELINE II=CFG::REUSE" in kernels and "limit=MULTS" in kernels
    first = {layer["name"]: layer for layer in base["layers"]}[EVIL_NODE]
    shared = {layer["name"]: layer for layer in report["layers"]}[EVIL_NODE]
    assert shared["ii"] == 8 * first["ii"]
    assert shared["resources"]["dsp"] < first["resources"]["dsp"]
    assert verify(str(tmp_path / "out"), samples=8).mismatches == 0


@pytest.mark.parametrize(
    ("setting", "message"),
    [("reuse = 0", "positive integer"), ("reuse = 1.5", "must be an integer"), ("reuse = true", "integer")],
)
def test_bad_reuse_is_one_clear_error(tmp_path: Path, setting: str, message: str) -> None:
    model = _evil_model(tmp_path / "m.onnx")
    config = tmp_path / "c.toml"
    config.write_text(f'[layers."int"]\n{setting}\n')
    with pytest.raises(FpgacError, match=message):
        compile_model(model, BuildOptions(config=config))
    with pytest.raises(FpgacError, match="positive integer"):
        compile_model(model, BuildOptions(reuse=0))
