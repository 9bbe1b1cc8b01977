"""One design point: compile it (nothing written), simulate it bit-accurately, and measure it.

This is the function the sweep runs in worker processes or Ray tasks, so it takes and returns plain,
picklable data and never raises: a point that cannot be built is a result too (``status`` ``failed``, its
one-line error), so one bad combination does not stop a sweep of hundreds.

Quality is measured on the validation data with the bit-accurate simulator (what the hardware computes):
``accuracy`` against the labels when the data has them, otherwise the argmax agreement with the float model;
``agreement``, ``max_abs_error`` and ``mean_abs_error`` are always against the float model, on the first
output. ``outputs_sha256`` fingerprints every simulated output bit, so two runs of a point (local processes,
Ray) can be compared bit for bit from the table alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.build import BuildOptions, compile_model
from fpgac.errors import FpgacError
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import Graph
from fpgac.sweep.grid import Point

# The estimate's numbers a point reports, as report.json names them.
DESIGN_KEYS = ("dsp", "bram18", "lut", "ff", "uram")
TIMING_KEYS = ("latency_cycles", "latency_us", "ii", "fps")


@dataclass(frozen=True)
class SweepData:
    """The validation inputs, their labels (None: compare with the float model only) and the float
    model's outputs on them, computed once for the whole sweep."""

    inputs: tuple[np.ndarray, ...]
    labels: np.ndarray | None
    reference: tuple[np.ndarray, ...]


def prepare_data(graph: Graph, inputs: list[np.ndarray], labels: np.ndarray | None) -> SweepData:
    """Run the float model on the validation inputs (the reference every point is compared with)."""
    reference = run_float(graph, inputs)
    return SweepData(tuple(inputs), labels, tuple(np.asarray(y, np.float64) for y in reference))


def evaluate_point(model: Path, base: BuildOptions, point: Point, data: SweepData) -> dict[str, Any]:
    """The row of ``point`` in the sweep's table; failures are recorded, never raised."""
    start = time.perf_counter()
    try:
        with _quiet():
            compiled = compile_model(model, point.options(base))
            outputs = run_fixed(compiled.graph, list(data.inputs)).outputs
        result = {"status": "ok", "error": "", **_quality(outputs, data), **_design(compiled.report)}
    except FpgacError as exc:
        result = {"status": "failed", "error": _one_line(str(exc))}
    except MemoryError:
        result = {"status": "failed", "error": "out of memory"}
    except Exception as exc:  # a bug hit by one combination must not stop the sweep: record it
        result = {"status": "failed", "error": _one_line(f"internal error: {type(exc).__name__}: {exc}")}
    result["seconds"] = round(time.perf_counter() - start, 3)
    return {"point": point.index, "settings": dict(point.settings), **result}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the build's warnings (a design that does not fit, ...) out of the sweep's terminal: the table
    records what matters of them, and hundreds of points would bury the progress."""
    logger = logging.getLogger("fpgac")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _quality(outputs: list[np.ndarray], data: SweepData) -> dict[str, Any]:
    got = np.asarray(outputs[0], np.float64)
    reference = data.reference[0]
    error = np.abs(got - reference)
    digest = hashlib.sha256()
    for output in outputs:
        digest.update(np.ascontiguousarray(output, np.float64).tobytes())
    agreement = accuracy = None
    if got.ndim >= 2 and int(np.prod(got.shape[1:])) > 1:  # one score vector per sample: a classifier
        predicted = got.reshape(len(got), -1).argmax(axis=1)
        agreement = float(np.mean(predicted == reference.reshape(len(got), -1).argmax(axis=1)))
        accuracy = float(np.mean(predicted == data.labels)) if data.labels is not None else agreement
    return {
        "accuracy": accuracy,
        "agreement": agreement,
        "max_abs_error": float(error.max(initial=0.0)),
        "mean_abs_error": float(error.mean()) if error.size else 0.0,
        "outputs_sha256": digest.hexdigest(),
    }


def _design(report: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: report["resources"][k] for k in DESIGN_KEYS},
        **{k: report[k] for k in TIMING_KEYS},
        "fits": report["fits"],
        "io_built": report["io"],
        "weight_bits": report["weight_bits"],
        "macs": report["macs"],
    }
