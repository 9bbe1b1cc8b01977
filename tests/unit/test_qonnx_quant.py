"""QONNX's quantizers, one node each, against a numpy transcription of the QONNX operator docs.

Every combination of signed/narrow, rounding (ROUND, FLOOR, CEIL), bit widths 1..16 and per-tensor or
per-channel power-of-two scales is one Quant node of a single graph (one load, one run): the float
interpreter (``fpgac sim model.onnx``) and the bit-accurate simulator of the quantized graph equal the
transcription bit for bit, and qonnx's own ``execute_onnx`` equals it within float32 rounding.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.frontend.onnx import load_onnx
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Fixed
from fpgac.passes.quantize import Quantize

DOMAIN = "qonnx.custom_op.general"
CHANNELS = 4
CHANNEL_SHIFT = np.array([0, -1, 1, -2])  # per-channel scales: 2**shift times the per-tensor one
CASES = list(
    itertools.product((True, False), (False, True), ("ROUND", "FLOOR", "CEIL"), range(1, 17), (False, True))
)


def reference(
    x: np.ndarray, scale: np.ndarray, bits: int, signed: bool, narrow: bool, mode: str
) -> np.ndarray:
    """The QONNX docs' Quant (zero point 0), in float64: clamp to the integer range, round, rescale; a
    1-bit signed quantizer is the bipolar sign."""
    y = x.astype(np.float64) / scale
    if signed and bits == 1:
        return np.where(y >= 0, 1.0, -1.0) * scale
    lo = -(2 ** (bits - 1)) + narrow if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
    y = np.clip(y, lo, hi)
    y = {"ROUND": np.round, "FLOOR": np.floor, "CEIL": np.ceil}[mode](y)
    return y * scale


def _scale(bits: int, per_channel: bool) -> np.ndarray:
    """A scale whose range reaches about +-4: inputs in [-8, 8] are clamped and rounded at every width."""
    base = 2.0 ** (3 - bits)
    return (base * 2.0**CHANNEL_SHIFT if per_channel else np.array(base)).astype(np.float32)


def _model(path: Path, cases: list[tuple[bool, bool, str, int, bool]], batch: int | str = "N") -> Path:
    nodes, inits, outputs = [], [], []
    for k, (signed, narrow, mode, bits, per_channel) in enumerate(cases):
        names = [f"s{k}", f"z{k}", f"b{k}"]
        inits += [
            numpy_helper.from_array(_scale(bits, per_channel), names[0]),
            numpy_helper.from_array(np.array(0.0, np.float32), names[1]),
            numpy_helper.from_array(np.array(float(bits), np.float32), names[2]),
        ]
        nodes.append(
            helper.make_node(
                "Quant", ["x", *names], [f"y{k}"], name=f"q{k}", domain=DOMAIN,
                signed=int(signed), narrow=int(narrow), rounding_mode=mode,
            )
        )  # fmt: skip
        outputs.append(helper.make_tensor_value_info(f"y{k}", TensorProto.FLOAT, [batch, CHANNELS]))
    graph = helper.make_graph(
        nodes,
        "quant_ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, CHANNELS])],
        outputs,
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]
    )
    onnx.save(model, path)
    return path


def _inputs() -> np.ndarray:
    """Values on a 2**-20 grid in [-8, 8]: random ones, every grid point and half step of the coarse
    scales (ties for ROUND), and the ends."""
    rng = np.random.default_rng(0)
    random = rng.integers(-(2**23), 2**23, size=(512, CHANNELS)) * 2.0**-20
    steps = np.concatenate([np.arange(-16, 17) * 2.0**-e for e in range(0, 14)])
    special = np.concatenate([steps, steps + 2.0**-20, steps - 2.0**-20, [8.0, -8.0, 0.0]])
    special = np.clip(special, -8, 8)
    special = np.resize(special, (len(special) + CHANNELS - 1) // CHANNELS * CHANNELS).reshape(-1, CHANNELS)
    return np.concatenate([random, special, special[:, ::-1]]).astype(np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model(tmp_path_factory.mktemp("quant") / "quant_ops.onnx", CASES)


@pytest.fixture(scope="module")
def expected() -> list[np.ndarray]:
    x = _inputs()
    return [reference(x, _scale(b, pc).astype(np.float64), b, s, n, m) for s, n, m, b, pc in CASES]


def test_float_interpreter_equals_the_qonnx_semantics(model: Path, expected: list[np.ndarray]) -> None:
    outputs = run_float(load_onnx(model), [_inputs()])
    for case, got, want in zip(CASES, outputs, expected, strict=True):
        assert np.array_equal(got.astype(np.float64), want), case


@pytest.mark.slow
def test_simulator_equals_the_qonnx_semantics_bit_for_bit(model: Path, expected: list[np.ndarray]) -> None:
    """Each quantizer's format is its QONNX grid; every output is exact at 32-bit input precision."""
    x = _inputs()
    graph = Quantize(precision=32, calib=(x,)).run(load_onnx(model))
    assert all(isinstance(v.type.format, Fixed) for v in graph.outputs)
    fmt = graph.outputs[CASES.index((True, True, "ROUND", 4, False))].type.format
    assert fmt == Fixed(4, 3, True, "RND_CONV", "SAT_SYM")  # 4 bits, scale 2**-1: ap_fixed<4,3,...>
    result = run_fixed(graph, [x])
    for case, got, want in zip(CASES, result.outputs, expected, strict=True):
        assert np.array_equal(got, want), case


def test_qonnx_agrees_within_float32_rounding(tmp_path: Path, expected: list[np.ndarray]) -> None:
    """qonnx's own quantizer on every case; its ``execute_onnx`` (slow per node) on one graph of the
    signed/narrow/rounding combinations at 1, 4 and 16 bits, per channel."""
    pytest.importorskip("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.general.quant import quant

    x = _inputs()
    for case, want in zip(CASES, expected, strict=True):
        signed, narrow, mode, bits, per_channel = case
        theirs = quant(x, _scale(bits, per_channel), np.float32(0), np.float32(bits), signed, narrow, mode)
        assert np.all(
            np.abs(theirs.astype(np.float64) - want) <= np.spacing(np.abs(want).astype(np.float32))
        ), case
    some = [c for c in CASES if c[3] in (1, 4, 16) and c[4]]
    wrapped = ModelWrapper(onnx.load(_model(tmp_path / "some.onnx", some, batch=len(x))))
    got = execute_onnx(wrapped, {"x": x})
    for k, case in enumerate(some):
        want = expected[CASES.index(case)]
        theirs = got[f"y{k}"].astype(np.float64)
        assert np.all(np.abs(theirs - want) <= np.spacing(np.abs(want).astype(np.float32))), case


@pytest.mark.slow
def test_kernel_equals_the_exact_reference_node_by_node(tmp_path: Path) -> None:
    """The fixed-point kernel against ``test_fixed_kernels``' rational reference, at 16-bit inputs (whose
    grid is coarser than some quantizers' and finer than others'), with QONNX's other rounding modes."""
    from tests.unit.test_fixed_kernels import check_graph

    cases = [c for c in CASES if c[3] in (1, 5, 12)]
    cases += [
        (s, False, m, 3, pc) for s in (True, False) for m in ("DOWN", "HALF_UP", "HALF_DOWN") for pc in (0, 1)
    ]
    x = _inputs()[::40]
    graph = Quantize(precision=16, calib=(x,)).run(load_onnx(_model(tmp_path / "m.onnx", cases)))
    check_graph(graph, [x])


def _graph(
    path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], width: int, out: int
) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out])],  # no inference through QONNX ops
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def test_quantize_dequantize_linear_pairs(tmp_path: Path) -> None:
    """QuantizeLinear/DequantizeLinear on an activation is one quant node (int8, scale 2**-4); int8 weights
    behind a DequantizeLinear fold into the weight, which keeps its 8-bit grid. The float interpreter
    equals onnxruntime exactly, and the simulator up to the rounding of the (unquantized) output."""
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    inits = {
        "s": np.array(2.0**-4, np.float32),
        "z": np.array(0, np.int8),
        "wq": rng.integers(-128, 128, size=(6, 3)).astype(np.int8),
        "ws": np.array(2.0**-7, np.float32),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "z"], ["w"]),
        helper.make_node("MatMul", ["d", "w"], ["y"]),
    ]
    path = _graph(tmp_path / "qdq.onnx", nodes, inits, 6, 3)
    # On a 2**-8 grid, which the 16-bit input format holds: a float input would be rounded into the input
    # format first, and the quantizer after it would round a second time.
    x = (np.round(rng.normal(size=(64, 6)) * 4 * 256) / 256).astype(np.float32)
    options = ort.SessionOptions()  # its QDQ fusion runs int8 kernels whose 16-bit sums saturate (AVX2)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})[0]
    graph = load_onnx(path)
    assert [n.op for n in graph.nodes] == ["quant", "dense"]
    assert graph.nodes[1].params["weight"].format == Fixed(8, 1, True, "RND_CONV", "SAT")
    got = run_float(graph, [x])[0]
    assert np.array_equal(got, want), (np.abs(got - want).max(), np.argwhere(got != want)[:3])
    fixed = Quantize(calib=(x,)).run(graph)
    fmt = fixed.outputs[0].type.format  # the float output rounds (to nearest) into its 16-bit format
    assert isinstance(fmt, Fixed) and fixed.nodes[0].output.type.format == Fixed(
        8, 4, True, "RND_CONV", "SAT"
    )
    assert np.abs(run_fixed(fixed, [x]).outputs[0] - want).max() <= fmt.lsb / 2


def test_weight_scale_not_a_power_of_two_becomes_a_declared_affine(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """2-bit weights of scale 0.1: the dense layer keeps the integer codes (a 2-bit format) and an affine
    after it applies 0.1, with a warning naming the layer; the float graph computes what QONNX does."""
    rng = np.random.default_rng(2)
    inits = {
        "w": rng.normal(size=(4, 5)).astype(np.float32),
        "s": np.array(0.1, np.float32),
        "z": np.array(0.0, np.float32),
        "b": np.array(2.0, np.float32),
    }
    nodes = [
        helper.make_node("Quant", ["w", "s", "z", "b"], ["wq"], domain=DOMAIN, signed=1, narrow=0),
        helper.make_node("MatMul", ["x", "wq"], ["y"], name="fc"),
    ]
    path = _graph(tmp_path / "scale.onnx", nodes, inits, 4, 5)
    graph = load_onnx(path)
    assert [n.op for n in graph.nodes] == ["dense", "affine"]
    assert graph.nodes[0].params["weight"].format == Fixed(2, 2, True, "RND_CONV", "SAT")
    assert "'fc' (dense): weight scale" in caplog.text
    x = rng.normal(size=(32, 4)).astype(np.float32)
    codes = np.clip(np.round(inits["w"] / np.float32(0.1)), -2, 1)
    np.testing.assert_allclose(run_float(graph, [x])[0], x @ (codes * np.float32(0.1)), rtol=1e-6, atol=1e-6)
