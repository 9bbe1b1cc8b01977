"""The build's hand-offs: the explicit pipeline (clean-ups as passes, listed in the report), the typed
compiled design and decisions, the hls4ml lowering as a verified pass, and the Vitis name map that the
C-simulation reads instead of regenerating the code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import fpgac.build
from fpgac.backends.equivalence import verify as verify_build
from fpgac.backends.hls4ml.lower import Hls4mlError, Hls4mlLowering, lower
from fpgac.backends.vitis import csim, emitter
from fpgac.backends.vitis.csim import CsimError, run_csim
from fpgac.build import BuildOptions, build, compile_model, load_model
from fpgac.frontend.onnx import load_onnx
from fpgac.interp import run_float
from fpgac.ir import Graph, graphs_equal, print_graph
from fpgac.ir.graph import Param
from fpgac.ir.serialize import load_graph
from fpgac.passes.output_names import OutputNames
from fpgac.passes.pipeline import CLEANUPS, run_pipeline
from fpgac.passes.quantize import Quantize
from tests.csim_support import skip_without_csim

CLEANUP_NAMES = "cleanup, fold_affine, sign_threshold, output_names"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemm -> BatchNormalization -> Flatten: converted as dense, affine, reshape; cleaned, one dense."""
    rng = np.random.default_rng(0)

    def tensor(name: str, data: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(data.astype(np.float32), name)

    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
        helper.make_node("BatchNormalization", ["h", "s", "t", "m", "v"], ["n"], name="bn"),
        helper.make_node("Flatten", ["n"], ["logits"], name="flat"),
    ]
    inits = [
        tensor("w", rng.standard_normal((3, 4))),
        tensor("b", rng.standard_normal(3)),
        tensor("s", rng.uniform(0.5, 2, 3)),
        tensor("t", rng.standard_normal(3)),
        tensor("m", rng.standard_normal(3)),
        tensor("v", rng.uniform(0.5, 2, 3)),
    ]
    graph = helper.make_graph(
        nodes,
        "bn_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=inits,
    )
    path = tmp_path_factory.mktemp("model") / "bn_mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def test_load_onnx_returns_the_graph_as_converted(model: Path) -> None:
    converted = load_onnx(model)
    assert _ops(converted) == ["dense", "affine", "reshape"]
    cleaned = load_model(model)
    assert _ops(cleaned) == ["dense"] and [v.name for v in cleaned.outputs] == ["logits"]
    assert graphs_equal(cleaned, run_pipeline(load_onnx(model), CLEANUPS))
    x = [np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)]
    np.testing.assert_allclose(run_float(cleaned, x)[0], run_float(converted, x)[0], rtol=1e-5, atol=1e-6)


def test_output_names_gives_the_model_its_output_name_back(model: Path) -> None:
    without = run_pipeline(load_onnx(model), [p for p in CLEANUPS if not isinstance(p, OutputNames)])
    assert [v.name for v in without.outputs] == ["h"]  # the dense's value, once the nodes after it went
    assert [v.name for v in OutputNames().run(without).outputs] == ["logits"]


@pytest.mark.parametrize(
    ("spec", "listed"),
    [
        ("", f"{CLEANUP_NAMES}, quantize"),
        ("prune(sparsity=0.5)", f"{CLEANUP_NAMES}, prune, quantize"),
        ("quantize(headroom=3)", f"{CLEANUP_NAMES}, quantize"),  # named: not implied again
    ],
)
def test_report_lists_the_whole_pipeline(model: Path, spec: str, listed: str) -> None:
    compiled = compile_model(model, BuildOptions(passes=spec, backend="none"))
    assert compiled.report["options"]["passes"] == listed
    assert ", ".join(compiled.passes) == listed


def test_decisions_are_typed_and_the_report_is_made_from_them(model: Path) -> None:
    compiled = compile_model(model, BuildOptions(reuse=2, layer_reuse={"fc": 3}, io="stream"))
    decisions = compiled.decisions
    assert (decisions.backend, decisions.io, decisions.io_choice) == ("vitis", "stream", "--io")
    assert decisions.reuse == 2 and dict(decisions.layer_reuse) == {"fc": 3}
    assert decisions.recommended_io == "parallel"  # a 12-weight model unrolls
    report = compiled.report
    assert (report["io"], report["io_choice"], report["recommended_io"]) == ("stream", "--io", "parallel")
    assert [layer["reuse"] for layer in report["layers"]] == [3] and report["reuse"] == 2
    assert compiled.estimate.layers[0].reuse == 3 and compiled.board.name == report["board"]


def test_build_looks_the_board_up_once(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = fpgac.build.get_board

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fpgac.build, "get_board", counted)
    build(model, tmp_path / "out", BuildOptions(layer_reuse={"fc": 3}))
    assert len(calls) == 1
    layers = (tmp_path / "out" / "hls" / "firmware" / "layers.h").read_text()
    assert "cyclic factor=4" in layers  # 12 weights at reuse 3: the decision rendered, not read back


def test_hls4ml_lowering_is_a_verified_pass_and_refusals_pass_through(model: Path) -> None:
    x = np.random.default_rng(2).uniform(-1, 1, (16, 4)).astype(np.float32)
    graph = Quantize(precision=10, calib=(x,)).run(load_model(model))
    lowered = run_pipeline(graph, [Hls4mlLowering()])
    assert print_graph(lowered) == print_graph(lower(graph))
    unclean = Quantize(precision=10, calib=(x,)).run(load_onnx(model))  # still has the BatchNorm's affine
    bn = next(node for node in unclean.nodes if node.name == "bn")
    for key, value in (("scale", 1.0), ("shift", 0.0)):  # identity: hls4ml drops it and its cast
        bn.params[key] = Param(np.full_like(bn.params[key].data, value), bn.params[key].format)
    with pytest.raises(Hls4mlError, match=r"^hls4ml backend: node 'bn' \(affine\)"):
        run_pipeline(unclean, [Hls4mlLowering()])


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_vitis_name_map_names_every_traced_value(model: Path, tmp_path: Path, io: str) -> None:
    out = tmp_path / "out"
    build(model, out, BuildOptions(io=io))
    text = (out / "hls" / emitter.MAP_FILE).read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=1, sort_keys=True) + "\n"  # sorted, deterministic
    graph = load_graph(out)
    assert sorted(e["value"] for e in data["traced"].values()) == sorted(v.name for v in graph.values())
    assert [e["value"] for e in data["outputs"]] == [v.name for v in graph.outputs]
    top = (out / "hls" / "firmware" / "fpgac_top.cpp").read_text()
    hook = "FPGAC_TRACE_STREAM" if io == "stream" else "FPGAC_TRACE_VALUE"
    for label, entry in data["traced"].items():
        assert f'{hook}("{label}", ' in top and entry["c_name"] == label


def test_csim_without_a_name_map_says_so(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(model, out, BuildOptions())
    (out / "hls" / emitter.MAP_FILE).unlink()
    with pytest.raises(CsimError, match=r"no hls/fpgac\.json"):
        run_csim(out, [np.zeros((1, 4), np.float32)], trace=True)


def test_verify_reads_the_map_instead_of_regenerating_code(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_without_csim()
    out = tmp_path / "out"
    build(model, out, BuildOptions())

    def regenerated(*args: object, **kwargs: object) -> None:
        raise AssertionError("csim regenerated the Vitis design")

    monkeypatch.setattr(emitter, "design", regenerated)
    monkeypatch.setattr(csim, "design", regenerated, raising=False)  # were it imported by name there
    result = verify_build(str(out), samples=8)
    assert result.mismatches == 0 and len(result.layers) == 2  # the input and the dense
