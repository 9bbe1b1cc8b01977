"""QONNX's Trunc (versions 1 and 2), one node each, against qonnx's own ``trunc_v1``/``trunc_v2``.

Power-of-two scales: the float interpreter and the bit-accurate simulator of the quantized graph equal
qonnx's functions (run in float64) bit for bit, for signed/unsigned, narrow, FLOOR/ROUND/CEIL.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgac.errors import FpgacError
from fpgac.frontend.onnx import load_onnx
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.passes.quantize import Quantize

DOMAIN = "qonnx.custom_op.general"
SCALE, IN_BITS = 2.0**-4, 10
V2 = list(itertools.product((True, False), (False, True), ("FLOOR", "ROUND", "CEIL"), (4, 6)))


def _model(path: Path, out_scale: float = 2.0**-1) -> Path:
    """One v2 node per case of V2 (output scale ``out_scale``), and one v1 node (10 -> 7 bits, FLOOR)."""
    inits = {
        "s": np.array(SCALE, np.float32),
        "z": np.array(0.0, np.float32),
        "ib": np.array(IN_BITS, np.float32),
        "os": np.array(out_scale, np.float32),
        **{f"ob{b}": np.array(b, np.float32) for b in (4, 6, 7)},
    }
    nodes = [
        helper.make_node(
            "Trunc", ["x", "s", "z", "ib", "os", f"ob{bits}"], [f"y{k}"], name=f"t{k}", domain=DOMAIN,
            signed=int(signed), narrow=int(narrow), rounding_mode=mode,
        )
        for k, (signed, narrow, mode, bits) in enumerate(V2)
    ]  # fmt: skip
    nodes.append(helper.make_node("Trunc", ["x", "s", "z", "ib", "ob7"], ["v1"], name="v1", domain=DOMAIN))
    outputs = [f"y{k}" for k in range(len(V2))] + ["v1"]
    graph = helper.make_graph(
        nodes,
        "trunc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 3]) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 2)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def test_trunc_equals_qonnx_bit_for_bit(tmp_path: Path) -> None:
    pytest.importorskip("qonnx")
    from qonnx.custom_op.general.trunc import trunc_v1, trunc_v2

    # Signed 10-bit inputs of scale 2**-4 (within +-32), some off the grid (on 2**-6: Trunc rounds them).
    x = (np.random.default_rng(0).integers(-(2**11), 2**11, size=(200, 3)) / 64).astype(np.float32)
    graph = load_onnx(_model(tmp_path / "trunc.onnx"))
    expected = [
        trunc_v2(x.astype(np.float64), SCALE, 0.0, IN_BITS, narrow, signed, 0.5, np.array(bits), mode)
        for signed, narrow, mode, bits in V2
    ] + [trunc_v1(x.astype(np.float64), SCALE, 0.0, IN_BITS, 7, "FLOOR")]
    for got, want in zip(run_float(graph, [x]), expected, strict=True):
        assert np.array_equal(got, want)
    fixed = Quantize(precision=16, calib=(x,)).run(graph)
    for k, (got, want) in enumerate(zip(run_fixed(fixed, [x]).outputs, expected, strict=True)):
        assert np.array_equal(got, want), (k, np.argwhere(got != want)[:3])


def test_trunc_refuses_a_scale_ratio_that_is_not_a_power_of_two(tmp_path: Path) -> None:
    with pytest.raises(FpgacError, match=r"t0.*Trunc.*not a power of two"):
        load_onnx(_model(tmp_path / "bad.onnx", out_scale=0.3))
