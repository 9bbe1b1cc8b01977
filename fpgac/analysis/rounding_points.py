"""Declared rounding points: where a design with a non-power-of-two scale can differ from float QONNX.

A weight quantized with a scale that is not a power of two (Brevitas' binary weights: +-0.1) is factored by
the frontend into integer codes and an ``affine`` node that multiplies by the scale's float32 value
(:func:`fpgac.frontend.qonnx_ops.pin_weight_grids`), then rounded to float32's resolution. The design
computes ``scale * sum(x * codes)`` exactly, rounds it as float32 would store the exact value, and its next
quantizer rounds that. Float QONNX execution computes the same sum in float32, whose rounding error depends
on the runtime's summation order. The two disagree only where the exact value is closer to one of the
quantizer's rounding thresholds (a tie for ROUND, an integer for FLOOR) than float32's error bound: there
the float execution can land on either side, or on the tie itself.

Measured on Brevitas' binary weights of scale 0.1 (digits MLP and CNN, 2-bit activations,
``bench/qonnx_rounding_points.py``): every element on which qonnx's execution and the design differ is an
exact tie of the model with the decimal scale 0.1 (``0.1 * s == (k + 1/2) * step``), which the design
rounds to even (float32's 0.1 is 1.5e-8 above 0.1, a fraction of float32's step), and onnxruntime's float32
sum of that layer lands above or below the tie instead (its error exceeds that fraction). No fixed-point
design reproduces a summation order, so the build reports, per rounding point, how many values of the
calibration samples are that close to a threshold: the values where the design may round differently.

The bound is Higham's for a float32 dot product of ``n`` terms plus the weight's and bias's own float32
rounding: ``gamma(n + 2) * (|scale| * (|x| * |codes|) + |bias|)``, ``gamma(n) = n u / (1 - n u)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fpgac.interp.float_kernels import FLOAT_OPS
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Graph, Node, Param, Value
from fpgac.ir.fixed import to_float
from fpgac.ir.opdef import Kind
from fpgac.ir.ops import OPS
from fpgac.ir.quant import exponents
from fpgac.ir.types import Fixed

_UNIT = 2.0**-24  # float32's unit roundoff
_TRANSPARENT = ("relu", "max_pool", "reshape", "transpose")  # ops between the affine and its quantizer
_HALF_MODES = ("ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN")


def _points(graph: Graph) -> list[tuple[Node, Node, Node, bool]]:
    """``(layer, affine, quant, relu)`` for each affine with a non-power-of-two scale after a dense/conv
    whose result reaches a ``quant`` node through ops that do not round (``relu``: a ReLU among them)."""
    found = []
    for affine in graph.nodes:
        layer = affine.inputs[0].producer if affine.op == "affine" and affine.inputs else None
        if layer is None or OPS[layer.op].kind not in (Kind.MATMUL, Kind.WINDOW):
            continue
        if exponents(affine.params["scale"].data) is not None:
            continue
        node, relu, quant = affine, False, None
        while len(node.output.uses) == 1:  # the last quantizer: the first may be the float32 rounding
            node = node.output.uses[0][0]
            relu |= node.op == "relu"
            if node.op == "quant":
                quant = node
            elif node.op not in _TRANSPARENT:
                break
        if quant is not None:
            found.append((layer, affine, quant, relu))
    return found


def _value(trace: dict[str, np.ndarray], value: Value) -> np.ndarray:
    fmt = value.type.format
    assert isinstance(fmt, Fixed)  # the graph is quantized: every value has a fixed format
    return np.asarray(to_float(trace[value.name], fmt), np.float64)


def _magnitude(layer: Node, x: np.ndarray) -> np.ndarray:
    """``|x| * |codes|``: the layer run on the magnitudes of its input and weights (no bias)."""
    params = {"weight": Param(np.abs(layer.params["weight"].data))}
    return np.asarray(FLOAT_OPS[layer.op]([np.abs(x)], layer.attrs, params), np.float64)


def rounding_points_json(graph: Graph, samples: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """Per declared rounding point: the layer, its scale, its quantizer, and the values (and samples) of
    ``samples`` within float32 error of one of the quantizer's thresholds; empty if there is none."""
    points = _points(graph)
    if not points:
        return []
    trace = run_fixed(graph, list(samples), trace=True).trace
    rows = []
    for layer, affine, quant, relu in points:
        x, exact = _value(trace, layer.inputs[0]), _value(trace, affine.output)
        scale = np.abs(affine.params["scale"].data.astype(np.float64))
        bias = np.abs(affine.params["shift"].data.astype(np.float64))
        terms = layer.params["weight"].data[0].size + 2
        gamma = terms * _UNIT / (1 - terms * _UNIT)
        bound = gamma * (scale * _magnitude(layer, x) + bias)
        step = quant.params["scale"].data.astype(np.float64)
        if step.ndim > len(exact.shape) - 1 or any(
            d not in (1, e) for d, e in zip(step.shape[::-1], exact.shape[:0:-1], strict=False)
        ):  # per-channel steps that a reshape moved away from the affine's axes: the finest
            step = np.asarray(step.min())
        offset = 0.5 if quant.attrs["rounding"] in _HALF_MODES else 0.0
        t = exact / step - offset
        near = np.abs(t - np.round(t)) * step <= bound
        if relu:
            near &= exact > 0  # the ReLU makes every value <= 0 a 0 in both
        rows.append(
            {
                "layer": layer.name,
                "scale": sorted({float(s) for s in np.unique(scale)})[:4],
                "quantizer": quant.name,
                "step": float(np.max(step)),  # a value rounded the other way differs by one step
                "values": int(near.sum()),
                "of": int(near.size),
                "samples": int(np.any(near.reshape(len(near), -1), axis=1).sum()),
                "of_samples": len(near),
                "cause": (
                    "the exact value is within float32 error of the quantizer's rounding threshold: "
                    "float QONNX execution rounds it by its summation order, the design as float32 "
                    "stores its exact value"
                ),
            }
        )
    return rows


def rounding_points_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``report.md``'s table of declared rounding points (nothing when the model has none)."""
    if not rows:
        return []
    lines = [
        "",
        "## Declared rounding points (non-power-of-two weight scales)",
        "",
        "Values of the calibration samples whose exact value is within float32 error of the next "
        "quantizer's rounding threshold: there float QONNX execution (float32 sums, rounded in the "
        "runtime's order) and the design (exact) may round differently; elsewhere they agree.",
        "",
        "| layer | scale | quantizer | step (largest difference) | values at a threshold | samples |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['layer']}` | {', '.join(f'{s:.9g}' for s in r['scale'])} | `{r['quantizer']}` | "
            f"{r['step']:.9g} | {r['values']} of {r['of']} | {r['samples']} of {r['of_samples']} |"
        )
    return lines
