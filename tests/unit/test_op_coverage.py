"""Every op of the IR has each piece of behaviour it needs, or a named refusal (README, "Adding an op").

An op added to :mod:`fpgac.ir.ops` without its float kernel, fixed-point kernel and quantize rule, Vitis
emitter, estimate entry and hls4ml decision fails here, naming the op and the missing piece, instead of
failing on the first model that uses it. Refusals are named: ``float_only`` on the op's definition (no
fixed-point meaning, so no hardware either), ``UNMAPPED`` in the hls4ml lowering.
"""

from __future__ import annotations

import pytest

from fpgac.analysis.estimate import WORK
from fpgac.backends.hls4ml.lower import SUPPORTED, UNMAPPED
from fpgac.backends.vitis.layers import EMITTERS
from fpgac.interp.fixed_kernels import FIXED_OPS
from fpgac.interp.float_kernels import FLOAT_OPS
from fpgac.interp.hls4ml_kernels import HLS4ML_OPS
from fpgac.ir.opdef import Dialect
from fpgac.ir.ops import OPS
from fpgac.passes.quantize import _RULES

CORE = sorted(name for name, op in OPS.items() if op.dialect is Dialect.CORE)
HLS4ML = sorted(name for name, op in OPS.items() if op.dialect is Dialect.HLS4ML)
FIXED = [name for name in CORE if not OPS[name].float_only]


@pytest.mark.parametrize("op", sorted(OPS))
def test_float_semantics(op: str) -> None:
    assert op in FLOAT_OPS, f"{op}: no float kernel in fpgac/interp/float_kernels.py"


@pytest.mark.parametrize("op", CORE)
def test_fixed_semantics_or_float_only(op: str) -> None:
    has = {"a fixed-point kernel (interp/fixed_kernels.py)": op in FIXED_OPS, "a quantize rule": op in _RULES}
    if OPS[op].float_only:
        present = [k for k, v in has.items() if v]
        assert not present, f"{op} is declared float_only but has {present}"
    else:
        missing = [k for k, v in has.items() if not v]
        assert not missing, f"{op}: no {missing} (or a float_only reason on its definition in ir/ops.py)"


@pytest.mark.parametrize("op", FIXED)
def test_vitis_emitter(op: str) -> None:
    assert op in EMITTERS, f"{op}: no C++ emitter in fpgac/backends/vitis/layers.py"


@pytest.mark.parametrize("op", FIXED)
def test_estimate_entry(op: str) -> None:
    assert op in WORK, f"{op}: no WORK entry in fpgac/analysis/estimate.py"


@pytest.mark.parametrize("op", CORE)
def test_hls4ml_mapping_or_refusal(op: str) -> None:
    assert (op in SUPPORTED) != (op in UNMAPPED), (
        f"{op}: must be in exactly one of SUPPORTED and UNMAPPED in fpgac/backends/hls4ml/lower.py"
    )


@pytest.mark.parametrize("op", HLS4ML)
def test_hls4ml_dialect_is_simulated_not_emitted(op: str) -> None:
    assert op in HLS4ML_OPS, f"{op}: no kernel in fpgac/interp/hls4ml_kernels.py"
    assert op not in EMITTERS and op not in WORK and op not in SUPPORTED


def test_no_entry_for_an_unknown_op() -> None:
    """A renamed or removed op leaves no stale entry behind."""
    tables = {
        "FLOAT_OPS": FLOAT_OPS,
        "FIXED_OPS": FIXED_OPS,
        "quantize rules": _RULES,
        "HLS4ML_OPS": HLS4ML_OPS,
        "Vitis EMITTERS": EMITTERS,
        "estimate WORK": WORK,
        "hls4ml SUPPORTED": SUPPORTED,
        "hls4ml UNMAPPED": UNMAPPED,
    }
    stale = {name: sorted(set(table) - set(OPS)) for name, table in tables.items() if set(table) - set(OPS)}
    assert not stale, f"entries for ops that do not exist: {stale}"
