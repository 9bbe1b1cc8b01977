"""Value ranges for quantization: measured on calibration data, or bounded by intervals.

Not a pass: the analysis the ``quantize`` pass sizes its formats from.

* :func:`calibrated_ranges` runs the float interpreter on a calibration batch and
  records each value's observed minimum and maximum.
* :func:`interval_ranges` needs no data: it propagates an elementwise interval
  ``[lo, hi]`` from an input range through every op (weights split into positive
  and negative parts for dense/conv/affine, monotone ops applied to both ends,
  kinked ops evaluated at the kink too), so formats sized from it cannot
  overflow. The bounds are sound but loose on deep networks, which is why
  calibration is preferred: they grow by a layer's ``sum |w|`` at every layer,
  so ShuffleNet's logits reached 2**102 (a 16-bit format with an LSB of 2**87)
  and ResNet-50's overflowed float64. They are therefore capped at :data:`GROWTH_BITS` bits
  above the input range's magnitude. Values past a cap saturate in their
  format, so every bound after it is sound again; the capped nodes are
  returned, for the quantize pass to name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from fpgac.errors import FpgacError
from fpgac.interp.float_kernels import FLOAT_OPS
from fpgac.interp.interpreter import run_float
from fpgac.ir.graph import Graph, Node, Param, Value
from fpgac.ir.opdef import Monotone
from fpgac.ir.ops import OPS
from fpgac.progress import counted

Range = tuple[float, float]

# Interval bounds stay within 2**GROWTH_BITS times the input range's magnitude: at 16 bits and an input
# range of [-1, 1], a capped value keeps 4 fraction bits (12 integer bits, sign included).
GROWTH_BITS = 10


class RangeError(FpgacError):
    """A value whose range cannot be measured or bounded."""


def calibrated_ranges(graph: Graph, calib: list[np.ndarray]) -> dict[str, Range]:
    """Observed (min, max) of every value over the calibration batch.

    Each value is measured as the interpreter computes it, so the batch's activations are not all kept
    (a deep network on a real calibration batch holds gigabytes of them). On a terminal the layers
    measured so far are counted (a large batch through a deep network takes a while).
    """
    ranges: dict[str, Range] = {}
    samples = len(calib[0]) if calib else 0
    with counted(f"calibration on {samples:,} samples: layers", len(graph.nodes)) as layer_done:

        def measure(value: Value, array: np.ndarray) -> None:
            if not np.all(np.isfinite(array)):
                raise RangeError(f"{_where(graph, value.name)} produces NaN or Inf on the calibration data")
            ranges[value.name] = (float(array.min(initial=0.0)), float(array.max(initial=0.0)))
            if value.producer is not None:
                layer_done()

        run_float(graph, calib, observe=measure)
    return ranges


def _where(graph: Graph, value_name: str) -> str:
    for node in graph.nodes:
        if any(v.name == value_name for v in node.outputs):
            return f"node {node.name!r} ({node.op})"
    return f"input {value_name!r}"


Widen = Callable[[Value, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def interval_ranges(
    graph: Graph, input_range: Range, widen: Widen | None = None
) -> tuple[dict[str, Range], list[str]]:
    """Sound (min, max) of every value when every input element lies in ``input_range``, and the nodes
    whose bounds were capped (see the module docstring; their values may saturate, no others can).

    ``widen(value, lo, hi)``, when given, may enlarge each value's elementwise bounds before they
    propagate further: the quantize pass uses it to cover the rounding of every value into its format,
    which the float ops here do not see.
    """
    lo_in, hi_in = input_range
    if not lo_in <= hi_in:
        raise RangeError(f"input range {input_range} is empty")
    limit = (max(abs(lo_in), abs(hi_in)) or 1.0) * 2.0**GROWTH_BITS
    bounds: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for value in graph.inputs:
        bounds[id(value)] = (
            np.full((1, *value.shape), lo_in, np.float64),
            np.full((1, *value.shape), hi_in, np.float64),
        )
        if widen is not None:
            bounds[id(value)] = widen(value, *bounds[id(value)])
    capped: list[str] = []
    for node in graph.nodes:
        ins = [bounds[id(v)] for v in node.inputs]
        try:
            lo, hi = _propagate(node, ins)
        except FloatingPointError as exc:
            raise RangeError(f"node {node.name!r} ({node.op}): cannot bound its output ({exc})") from None
        if np.any(lo < -limit) or np.any(hi > limit):
            capped.append(node.name)
            lo, hi = np.maximum(lo, -limit), np.minimum(hi, limit)
        bounds[id(node.output)] = (lo, hi) if widen is None else widen(node.output, lo, hi)
    ranges = {}
    for value in graph.values():
        lo, hi = bounds[id(value)]
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise RangeError(f"{_where(graph, value.name)} has an unbounded output range")
        ranges[value.name] = (float(lo.min(initial=0.0)), float(hi.max(initial=0.0)))
    return ranges, capped


def _apply(node: Node, xs: list[np.ndarray], params: Mapping[str, Param] | None = None) -> np.ndarray:
    return FLOAT_OPS[node.op](xs, node.attrs, node.params if params is None else params).astype(np.float64)


def _split(
    params: Mapping[str, Param], key: str, keep: Callable[[np.ndarray], np.ndarray]
) -> dict[str, Param]:
    out = dict(params)
    out[key] = Param(keep(params[key].data))
    return out


def _propagate(node: Node, ins: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    op, monotone = node.op, OPS[node.op].monotone
    if monotone is Monotone.INCREASING:
        return _apply(node, [lo for lo, _ in ins]), _apply(node, [hi for _, hi in ins])
    if monotone is Monotone.PIECEWISE:
        ((lo, hi),) = ins
        kink = np.clip(np.zeros_like(lo), lo, hi)
        points = [_apply(node, [p]) for p in (lo, hi, kink)]
        return np.minimum.reduce(points), np.maximum.reduce(points)
    if op in ("dense", "conv", "affine"):
        ((lo, hi),) = ins
        key = "scale" if op == "affine" else "weight"
        pos = _split(node.params, key, lambda w: np.maximum(w, 0))
        neg = _split(node.params, key, lambda w: np.minimum(w, 0))
        # The bias/shift is added once: drop it from the negative half.
        neg = {k: (Param(np.zeros_like(p.data)) if k in ("bias", "shift") else p) for k, p in neg.items()}
        return _apply(node, [lo], pos) + _apply(node, [hi], neg), _apply(node, [hi], pos) + _apply(
            node, [lo], neg
        )
    if op == "add":
        return _apply(node, [lo for lo, _ in ins]), _apply(node, [hi for _, hi in ins])
    if op == "sub":
        (alo, ahi), (blo, bhi) = ins
        return _apply(node, [alo, bhi]), _apply(node, [ahi, blo])
    if op in ("mul", "div"):
        (alo, ahi), (blo, bhi) = ins
        if op == "div" and np.any((blo <= 0) & (bhi >= 0)):
            raise FloatingPointError("the divisor's range contains zero")
        corners = [_apply(node, [a, b]) for a in (alo, ahi) for b in (blo, bhi)]
        return np.minimum.reduce(corners), np.maximum.reduce(corners)
    if op == "softmax":
        ((lo, _),) = ins
        shape = _apply(node, [lo]).shape
        return np.zeros(shape), np.ones(shape)
    if op == "lrn":  # y = x * f with 0 < f <= bias^-beta when bias > 0 and alpha, beta >= 0
        ((lo, hi),) = ins
        a = node.attrs
        if not (a["bias"] > 0 and a["alpha"] >= 0 and a["beta"] >= 0):
            raise FloatingPointError("lrn is bounded only for bias > 0, alpha >= 0 and beta >= 0")
        top = float(a["bias"]) ** -float(a["beta"])
        return np.minimum(lo, 0) * top, np.maximum(hi, 0) * top
    raise FloatingPointError(f"no interval rule for op {op!r}")
