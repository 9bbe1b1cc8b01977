"""The simulator's fast paths equal its reference paths bit for bit.

* ``fixed.cast``'s int64 shift-and-clip path against ``fixed._requantize`` (the general rule, which
  ``tests/exact/test_fixed_vs_apfixed.py`` checks against g++'s ``ap_fixed``), over formats, rounding and
  overflow modes;
* ``fixed.quantize`` of float32 data (the simulator's inputs) against ``fixed._quantize_bits``, which reads
  the double's bits as the header does, subnormals, infinities and huge values included;
* BLAS runs on one thread during a simulation;
* a batch run in chunks (any chunk size, through ``run_fixed`` and through the ``fpgac sim`` file path)
  against the same batch in one chunk: outputs, mantissas and overflow counts.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpgac.interp.simulator import BitsimResult, run_fixed
from fpgac.ir import Graph, Param, TensorType, fixed, verify
from fpgac.ir.types import Fixed, Overflow, Rounding
from fpgac.passes.quantize import Quantize
from fpgac.streaming import run_file

ROUNDINGS = st.sampled_from(list(Rounding))
OVERFLOWS = st.sampled_from(list(Overflow))


@st.composite
def formats(draw: st.DrawFn, max_width: int = 62) -> Fixed:
    width = draw(st.integers(1, max_width))
    return Fixed(
        width, draw(st.integers(-8, width + 8)), draw(st.booleans()), draw(ROUNDINGS), draw(OVERFLOWS)
    )


def mantissas(fmt: Fixed, seed: int, size: int = 64) -> np.ndarray:
    """Uniform over ``fmt``'s range, its extremes planted."""
    rng = np.random.default_rng(seed)
    m = rng.integers(fmt.min_mantissa, fmt.max_mantissa, size=size, endpoint=True, dtype=np.int64)
    m[:3] = fmt.min_mantissa, fmt.max_mantissa, 0
    return m


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(formats(), formats(), st.integers(0, 2**32))
def test_fast_cast_equals_requantize(src: Fixed, dst: Fixed, seed: int) -> None:
    m = mantissas(src, seed)
    shift = src.frac_bits - dst.frac_bits
    expected, expected_bad = fixed._requantize(m, max(shift, 0), max(-shift, 0), dst)
    got, bad = fixed.cast(m, src, dst, return_overflow=True)
    if src == dst:  # a bit copy, not operator= (see cast)
        expected, expected_bad = m, np.zeros(m.shape, bool)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert np.array_equal(bad, expected_bad)
    assert fixed.cast_count(m, src, dst)[1] == np.count_nonzero(expected_bad)


FLOAT32S = st.floats(width=32, allow_nan=False, allow_infinity=True, allow_subnormal=True)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(FLOAT32S, min_size=1, max_size=40), formats(max_width=40), st.floats(0, 2**20))
def test_float32_quantize_equals_bitwise(values: list[float], fmt: Fixed, scale: float) -> None:
    with np.errstate(over="ignore"):  # beyond float32's range: infinities, which the header saturates
        x = np.array(values + [v * scale for v in values], dtype=np.float32)
    expected, expected_bad = fixed._quantize_bits(x.astype(np.float64), fmt)
    got, bad = fixed.quantize(x, fmt, return_overflow=True)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert np.array_equal(bad, expected_bad)
    assert fixed.quantize_count(x, fmt)[1] == np.count_nonzero(expected_bad)


def test_float32_quantize_takes_the_fast_path_on_ordinary_data() -> None:
    """Otherwise the test above would compare the bitwise path with itself."""
    x = np.array([0.5, -1.25, 3e-45, 7.0], dtype=np.float32)
    assert fixed._quantize_float32(x, Fixed(16, 4, True)) is not None


CONV = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
POOL = {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1], "ceil_mode": False}


def _float_cnn(rng: np.random.Generator) -> Graph:
    g = Graph("chunks")
    x = g.add_input("x", TensorType((2, 4, 4)))
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    x = g.add(
        "conv", [x], name="conv", attrs=CONV, params={"weight": Param(w), "bias": Param(w[:, 0, 0, 0])}
    ).output
    x = g.add("relu", [x], name="relu").output
    x = g.add("max_pool", [x], name="pool", attrs=POOL).output
    x = g.add("reshape", [x], name="flatten", attrs={"shape": [12]}).output
    w = rng.standard_normal((5, 12)).astype(np.float32)
    x = g.add("dense", [x], name="fc", params={"weight": Param(w), "bias": Param(w[:, 0])}).output
    g.set_outputs([x])
    return g


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**32),
    st.integers(4, 20),
    st.integers(1, 12),
    st.lists(st.tuples(ROUNDINGS, OVERFLOWS), min_size=6, max_size=6),
)
def test_chunks_equal_whole_batch(
    seed: int, precision: int, chunk: int, modes: list[tuple[Rounding, Overflow]]
) -> None:
    rng = np.random.default_rng(seed)
    calib = rng.standard_normal((8, 2, 4, 4)).astype(np.float32)
    graph = Quantize(precision=precision, headroom=0, calib=(calib,)).run(_float_cnn(rng))
    for value, (rounding, overflow) in zip(
        [*graph.inputs, *(n.output for n in graph.nodes)], modes, strict=False
    ):
        fmt = value.type.format
        assert isinstance(fmt, Fixed)
        value.type = TensorType(value.shape, replace(fmt, rounding=rounding, overflow=overflow))
    verify(graph)
    x = (rng.standard_normal((23, 2, 4, 4)) * 3).astype(np.float32)  # beyond calibration: overflows happen
    whole = run_fixed(graph, x, chunk=len(x))
    chunked = run_fixed(graph, x, chunk=chunk)
    assert np.array_equal(chunked.mantissas[0], whole.mantissas[0])
    assert np.array_equal(chunked.outputs[0], whole.outputs[0])
    assert chunked.overflows == whole.overflows and chunked.elements == whole.elements
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        counts: list[BitsimResult] = []

        def run(part: list[np.ndarray]) -> list[np.ndarray]:
            result = run_fixed(graph, part)
            counts.append(result)
            return result.outputs

        shapes = run_file(graph, Path(tmp) / "x.npy", Path(tmp) / "y.npy", run, chunk)
        assert shapes == [whole.outputs[0].shape]
        assert np.load(Path(tmp) / "y.npy").tobytes() == whole.outputs[0].tobytes()
        assert BitsimResult.concatenate(counts).overflows == whole.overflows


def test_simulation_runs_blas_on_one_thread() -> None:
    """A chunk's matmuls are too small for a second OpenBLAS thread, which only spins (README "Simulator
    speed"); the limit is lifted afterwards."""
    from threadpoolctl import threadpool_info

    from fpgac.interp.simulator import one_blas_thread

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    with one_blas_thread():
        assert set(blas_threads()) <= {1}
    assert blas_threads() == before
