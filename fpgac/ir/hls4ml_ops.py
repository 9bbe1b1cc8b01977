"""Ops of the hls4ml dialect: hls4ml's own kernels, whose arithmetic differs from fpgac's.

Truncating table indices, a reciprocal table in softmax, truncating means (global and windowed): only the
hls4ml lowering (:mod:`fpgac.backends.hls4ml.lower`) makes these nodes, and the simulator runs them through
:mod:`fpgac.interp.hls4ml_kernels`. They live in the IR, not in the backend, so that the ``graph.fir``
of an hls4ml build loads, verifies and simulates (``fpgac sim DIR``) without importing any backend.
"""

from __future__ import annotations

from fpgac.ir import shapes
from fpgac.ir.opdef import Dialect, Kind, OpDef

_H = Dialect.HLS4ML

HLS4ML_DIALECT: tuple[OpDef, ...] = (
    OpDef(
        "hls4ml_sigmoid", Kind.ELEMENTWISE, shapes.same, tables=("table",), dialect=_H,
        doc="hls4ml's sigmoid table over [-8, 8).",
    ),
    OpDef(
        "hls4ml_tanh", Kind.ELEMENTWISE, shapes.same, tables=("table",), dialect=_H,
        doc="hls4ml's tanh table over [-4, 4).",
    ),
    OpDef(
        "hls4ml_elu", Kind.ELEMENTWISE, shapes.same, attrs={"alpha": "float"}, tables=("table",),
        fixed_params=("alpha",), dialect=_H,
        doc="hls4ml's ELU: x >= 0 ? x : alpha * table[x], a table of e^x - 1 over (-8, 0].",
    ),
    OpDef(
        "hls4ml_selu", Kind.ELEMENTWISE, shapes.same, attrs={"alpha": "float", "gamma": "float"},
        tables=("table",), dialect=_H,
        doc="hls4ml's SELU: x >= 0 ? lambda * x (lambda in ap_ufixed<16,1>) : table[x], over (-8, 0].",
    ),
    OpDef(
        "hls4ml_softmax", Kind.REDUCTION, shapes.axis_op,
        attrs={"axis": "int", "acc": "format", "inp_norm": "format", "inv_inp": "format"},
        tables=("exp_table", "inv_table"), dialect=_H,
        doc="hls4ml's stable softmax: exp table of max - x, reciprocal table of the sum.",
    ),
    OpDef(
        "hls4ml_mean", Kind.REDUCTION, shapes.reduce,
        attrs={"mode": "str", "axes": "ints", "keepdims": "bool", "acc": "format"}, dialect=_H,
        doc="hls4ml's global average pooling: a sum in acc, divided by the count (truncating).",
    ),
    OpDef(
        "hls4ml_avg_pool", Kind.WINDOW, shapes.pool,
        attrs={
            "strides": "ints", "pads": "ints", "kernel": "ints", "ceil_mode": "bool",
            "count_include_pad": "bool", "acc": "format",
        },
        dialect=_H, doc="hls4ml's average pooling: window sums in acc, divided by their counts (truncating).",
    ),
)  # fmt: skip
