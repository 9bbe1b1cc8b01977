"""Fidelity: how closely the design computes the float model, measured after every pass of the build.

A compressed, quantized design can be small and wrong: a compression recipe that turns a 99% classifier into
a 15% one used to build without a word. With a calibration batch, the build runs the float model (after the
frontend's clean-ups) on a few of its samples and, after each pass, the graph as it then is: the float
interpreter before ``quantize``, the bit-accurate simulator (what the hardware computes) after it. Each
stage reports, per output, the largest and the mean absolute difference from the float outputs and, for
classifier-like outputs (one vector per sample), how often the largest entry is the same (argmax agreement).

The samples are the calibration batch's, which quantization was calibrated on: this is a check of the
build, not a held-out accuracy. At most :data:`MAX_SAMPLES` samples, fewer for large models, so that the
check costs about :data:`MAC_BUDGET` multiply-accumulates per stage (ResNet-50: 2 samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpgac.analysis.cost import graph_cost
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir.graph import Graph
from fpgac.ir.types import Fixed

MAX_SAMPLES = 16
MIN_SAMPLES = 2
MAC_BUDGET = 4_000_000_000  # the interpreters run some 10^8 MACs a second: seconds per stage


@dataclass(frozen=True)
class OutputFidelity:
    """One output against the float model's: absolute errors, and argmax agreement when it is a vector."""

    name: str
    max_abs_error: float
    mean_abs_error: float
    argmax_agreement: float | None


@dataclass(frozen=True)
class StageFidelity:
    """The graph after one pass (``stage`` is the pass's name) against the float model."""

    stage: str
    samples: int
    outputs: tuple[OutputFidelity, ...]


class FidelityProbe:
    """The float model's outputs on a few calibration samples; :meth:`measure` compares a graph with them."""

    def __init__(self, float_graph: Graph, calib: Sequence[np.ndarray]) -> None:
        macs = max(graph_cost(float_graph).macs, 1)
        count = min(MAX_SAMPLES, max(MIN_SAMPLES, MAC_BUDGET // macs), len(calib[0]))
        self.samples = [np.asarray(a[:count], np.float32) for a in calib]
        self.reference = [np.asarray(y, np.float64) for y in run_float(float_graph, self.samples)]

    def measure(self, stage: str, graph: Graph) -> StageFidelity:
        """``graph`` (float, or quantized: then as the hardware computes it) on the probe's samples."""
        quantized = all(isinstance(v.type.format, Fixed) for v in (*graph.inputs, *graph.outputs))
        outputs = run_fixed(graph, self.samples).outputs if quantized else run_float(graph, self.samples)
        # Outputs a pass appended (the OOD monitor's) have no float counterpart: the model's own are compared.
        n = len(self.reference)
        compared = tuple(
            _compare(value.name, np.asarray(got, np.float64), ref)
            for value, got, ref in zip(graph.outputs[:n], outputs[:n], self.reference, strict=True)
        )
        return StageFidelity(stage, len(self.samples[0]), compared)


def _compare(name: str, got: np.ndarray, reference: np.ndarray) -> OutputFidelity:
    error = np.abs(got - reference)
    agreement = None
    if reference.ndim == 2 and reference.shape[1] > 1:  # one vector per sample: a classifier's scores
        agreement = float(np.mean(got.argmax(axis=1) == reference.argmax(axis=1)))
    return OutputFidelity(
        name, float(error.max(initial=0.0)), float(error.mean()) if error.size else 0.0, agreement
    )


def fidelity_json(stages: Sequence[StageFidelity]) -> dict[str, Any]:
    """``report.json``'s ``fidelity``: the samples used and, per stage, per output, the errors."""
    return {
        "samples": stages[0].samples if stages else 0,
        "reference": "float model on the first calibration samples",
        "stages": [
            {
                "stage": s.stage,
                "outputs": {
                    o.name: {
                        "argmax_agreement": o.argmax_agreement,
                        "max_abs_error": o.max_abs_error,
                        "mean_abs_error": o.mean_abs_error,
                    }
                    for o in s.outputs
                },
            }
            for s in stages
        ],
    }


def _describe(output: dict[str, Any]) -> str:
    agree = output["argmax_agreement"]
    argmax = f"argmax agrees {100 * agree:.1f}%, " if agree is not None else ""
    return f"{argmax}max |error| {output['max_abs_error']:.4g}, mean {output['mean_abs_error']:.4g}"


def fidelity_line(fidelity: dict[str, Any]) -> str:
    """One line for the terminal: the built design (last stage) against the float model, first output."""
    last = fidelity["stages"][-1]
    name, output = next(iter(last["outputs"].items()))
    more = (
        f" (output {name!r}; {len(last['outputs'])} outputs in report.json)"
        if len(last["outputs"]) > 1
        else ""
    )
    return f"fidelity vs float on {fidelity['samples']} calibration samples: {_describe(output)}{more}"


def fidelity_markdown(fidelity: dict[str, Any] | None) -> list[str]:
    """``report.md``'s fidelity table: one row per stage and output."""
    if not fidelity:
        return []
    lines = [
        "",
        f"## Fidelity vs the float model ({fidelity['samples']} calibration samples)",
        "",
        "| after | output | argmax agreement | max abs error | mean abs error |",
        "|---|---|---:|---:|---:|",
    ]
    for stage in fidelity["stages"]:
        for name, o in stage["outputs"].items():
            agree = "" if o["argmax_agreement"] is None else f"{100 * o['argmax_agreement']:.1f}%"
            cell = name.replace("|", "\\|")
            lines.append(
                f"| {stage['stage']} | `{cell}` | {agree} | {o['max_abs_error']:.4g} "
                f"| {o['mean_abs_error']:.4g} |"
            )
    return lines
