"""The testbench's data: ``tb/inputs.txt`` and ``tb/expected.txt``, so that a wrong design fails.

``expected.txt`` holds the bit-accurate simulator's output mantissas (``run_fixed``) for the samples in
``inputs.txt``, in the format the testbench writes its outputs; the testbench compares
every mantissa and exits 1 on any difference, so ``vitis_hls -f build.tcl`` stops at csim or C/RTL
co-simulation when the hardware computes other bits than ``fpgac sim``. The samples are the first
:data:`TB_SAMPLES` of the calibration batch when the build has one (real data exercises real ranges), else
one all-zero sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fpgac.atomic import write_atomic
from fpgac.errors import FpgacError
from fpgac.interp.interpreter import bind_inputs
from fpgac.interp.simulator import run_fixed
from fpgac.ir.boundary import array_shape, output_to_logical
from fpgac.ir.graph import Graph

TB_SAMPLES = 8  # a handful: RTL co-simulation runs a few samples per minute on large designs
INPUTS_FILE = "inputs.txt"
EXPECTED_FILE = "expected.txt"


def input_text(arrays: list[np.ndarray]) -> str:
    """The testbench's input file: sample count, then per sample every input's values as exact hex doubles."""
    n = arrays[0].shape[0] if arrays else 0
    flat = [np.asarray(a, dtype=np.float64).reshape(n, -1) for a in arrays]
    lines = [str(n)]
    for s in range(n):
        for a in flat:
            lines.append(" ".join(float(v).hex() for v in a[s]))
    return "\n".join(lines) + "\n"


def output_text(mantissas: Sequence[np.ndarray]) -> str:
    """Outputs as the testbench writes them: per sample one line ``O <port> <mantissa> ...`` per output."""
    n = mantissas[0].shape[0] if mantissas else 0
    flat = [np.asarray(m).reshape(n, -1) for m in mantissas]
    lines = [f"O {k} " + " ".join(str(int(v)) for v in m[s]) for s in range(n) for k, m in enumerate(flat)]
    return "".join(line + "\n" for line in lines)


def testbench_data(graph: Graph, samples: Sequence[np.ndarray] | None = None) -> dict[str, str]:
    """``{file name: text}`` of the testbench's inputs and expected outputs for a quantized ``graph``;
    ``samples`` are in the callers' layout (:mod:`fpgac.ir.boundary`), as ``fpgac sim`` takes them."""
    if samples is None:
        arrays = [np.zeros((1, *array_shape(graph, v)), np.float32) for v in graph.inputs]
    else:
        arrays = [np.asarray(a[:TB_SAMPLES], np.float32) for a in samples]
    # The testbench reads each input and compares each output in its logical order (the ports').
    expected = [output_to_logical(graph, i, m) for i, m in enumerate(run_fixed(graph, arrays).mantissas)]
    logical = bind_inputs(graph, arrays)
    return {INPUTS_FILE: input_text(logical), EXPECTED_FILE: output_text(expected)}


def write_testbench_data(folder: Path, graph: Graph, samples: Sequence[np.ndarray]) -> Path:
    """Replace the testbench data of build folder ``folder`` (its IR is ``graph``) with ``samples`` (the
    first :data:`TB_SAMPLES`) and their expected outputs; each file is replaced atomically."""
    tb = folder / "hls" / "tb"
    if not tb.is_dir():
        raise FpgacError(f"{folder}: no Vitis testbench in hls/tb/ (build with --backend vitis)")
    for name, text in testbench_data(graph, samples).items():
        write_atomic(tb / name, text)
    return tb
