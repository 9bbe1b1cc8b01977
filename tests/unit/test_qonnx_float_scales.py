"""QONNX quantizers whose scale is not a power of two (Brevitas' default ``*PerTensorFloat`` activations):
``x / s`` as ``x`` times a 40-bit reciprocal rounded as float32 stores it near the thresholds, the
quantizer on the integer grid, and the codes times the float32 scale, exact. The codes equal the float32
semantics (qonnx's: ``round(x / s)`` in float32) on every input of a fine grid; the values differ from
qonnx's only by its float32 rounding of ``q * s`` (relative 2**-24)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.frontend.onnx import load_onnx
from fpgac.interp.simulator import run_fixed
from fpgac.ir.quant import quant_float
from fpgac.passes.quantize import Quantize

DOMAIN = "qonnx.custom_op.general"
CASES = [(0.3, 4, True, 0, "ROUND"), (0.0137, 8, False, 0, "ROUND"), (0.7, 3, True, 1, "FLOOR")]


@pytest.mark.parametrize(("scale", "bits", "signed", "zero", "mode"), CASES)
def test_non_power_of_two_scale_gives_float32_codes(
    tmp_path: Path, scale: float, bits: int, signed: bool, zero: int, mode: str
) -> None:
    s = np.array(scale, np.float32)
    inits = {"s": s, "z": np.array(zero, np.float32), "b": np.array(bits, np.float32)}
    node = helper.make_node(
        "Quant", ["x", "s", "z", "b"], ["y"], domain=DOMAIN, signed=int(signed), rounding_mode=mode
    )
    graph = helper.make_graph(
        [node],
        "float_scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    path = tmp_path / "q.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]),
        path,
    )
    x = (np.random.default_rng(0).integers(-6 * 256, 6 * 256, size=(4096, 4)) / 256).astype(np.float32)
    want = quant_float(x, s, np.array(zero, np.float32), bits, signed, False, mode).astype(np.float64)
    got = run_fixed(Quantize(precision=16, calib=(x,)).run(load_onnx(path)), [x]).outputs[0]
    np.testing.assert_array_equal(np.round(got / np.float64(s)), np.round(want / np.float64(s)))
    np.testing.assert_allclose(got, want, rtol=2.0**-24, atol=0)
