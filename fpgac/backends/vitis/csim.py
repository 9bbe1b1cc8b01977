"""``fpgac csim``: compile a build folder's HLS testbench with g++ and run it, no vendor tool needed.

The ``ap_fixed`` headers are the ones hls4ml ships (``hls4ml/templates/vivado/ap_types``), located at run
time in the installed package and never copied into fpgac. The binary is cached in ``DIR/.csim/`` under the
hash of every source file, the flags, the compiler and the header folder, so a second run reuses it.
It is always built with ``-DFPGAC_TRACE`` (tracing costs nothing unless a trace file is given), so csim and
``fpgac verify`` share one binary.

Inputs go to the testbench as exact hex doubles of the float32 inputs (the testbench does ``input_t v =
(double)x;`` as :func:`fpgac.ir.fixed.quantize` does); outputs come back as raw mantissas (exact
integers) and become float64 through :func:`fpgac.ir.fixed.to_float`, as ``fpgac sim`` returns them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpgac.backends.vitis.emitter import MAP_FILE, TOP
from fpgac.backends.vitis.testbench import input_text
from fpgac.errors import FpgacError
from fpgac.interp.interpreter import bind_inputs
from fpgac.ir import fixed
from fpgac.ir.boundary import output_to_callers
from fpgac.ir.graph import Graph
from fpgac.ir.levels import check_level
from fpgac.ir.serialize import load_graph
from fpgac.ir.types import Fixed

HLS_DIR = "hls"
CACHE_DIR = ".csim"
# NDEBUG: ap_fixed_base::operator= reads a bit past the source's MSB for some casts and ap_private asserts
# on it; without assertions the header computes the sign-extended result fpgac.ir.fixed models (see
# tests/exact/test_fixed_vs_apfixed.py). -fno-exceptions: nothing throws, and without it g++ 12 spends
# about a minute in "access analysis" of the EH cleanups of a top function with many ap_fixed arrays.
CXXFLAGS = ("-O2", "-std=c++14", "-fno-exceptions", "-DNDEBUG", "-DFPGAC_TRACE")


class CsimError(FpgacError):
    """The C simulation could not be compiled or run."""


@dataclass
class CsimResult:
    """Outputs as float64 values, their mantissas, and (when asked) every traced value's mantissas."""

    outputs: list[np.ndarray]
    mantissas: list[np.ndarray]
    trace: dict[str, np.ndarray] = field(default_factory=dict)


def ap_types_dir() -> Path:
    """The ``ap_types`` folder of the installed hls4ml package."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise CsimError("C simulation needs the ap_fixed headers shipped by hls4ml: pip install hls4ml")
    path = Path(next(iter(spec.submodule_search_locations))) / "templates" / "vivado" / "ap_types"
    if not (path / "ap_fixed.h").is_file():
        raise CsimError(f"hls4ml is installed but {path}/ap_fixed.h is missing")
    return path


def compiler() -> str:
    gxx = os.environ.get("CXX") or shutil.which("g++")
    if not gxx:
        raise CsimError("C simulation needs g++ (or $CXX)")
    return gxx


def compile_command(hls: Path, exe: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The g++ command line (ap_types as a system include: its own warnings are not ours)."""
    return [
        compiler(), *CXXFLAGS, *extra, "-isystem", str(ap_types_dir()), f"-I{hls / 'firmware'}",
        str(hls / "firmware" / f"{TOP}.cpp"), str(hls / "tb" / "testbench.cpp"), "-o", str(exe),
    ]  # fmt: skip


def _sources(hls: Path) -> list[Path]:
    return sorted(
        p for sub in ("firmware", "tb") for p in (hls / sub).rglob("*") if p.suffix in (".h", ".cpp")
    )


def source_digest(root: Path, sources: list[Path], *settings: str) -> str:
    """Hash of the settings and of every source (path below ``root`` and content): the cache key."""
    digest = hashlib.sha256()
    for item in settings:
        digest.update(item.encode() + b"\0")
    for path in sources:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def cached(folder: Path, name: str, make: Callable[[Path], Path]) -> Path:
    """``folder/.csim/name``: from the cache, or made now by ``make(scratch folder)`` and moved into place
    atomically (a concurrent run sees the whole file or none)."""
    cache = folder / CACHE_DIR
    target = cache / name
    if target.is_file():
        return target
    cache.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        os.replace(make(Path(tmp)), target)
    return target


def binary(folder: Path) -> Path:
    """The compiled testbench of build folder ``folder``: from the cache, or compiled now."""
    hls = folder / HLS_DIR
    if not (hls / "firmware" / f"{TOP}.cpp").is_file():
        raise CsimError(f"{folder}: no HLS project in {HLS_DIR}/ (build with --backend vitis)")

    def compile_into(tmp: Path) -> Path:
        proc = subprocess.run(compile_command(hls, tmp / "tb"), capture_output=True, text=True)
        if proc.returncode != 0:
            raise CsimError(f"g++ failed on {hls}:\n{proc.stderr[-3000:]}")
        return tmp / "tb"

    key = source_digest(hls, _sources(hls), *CXXFLAGS, compiler(), str(ap_types_dir()))
    return cached(folder, f"tb-{key}", compile_into)


def _parse_line(tokens: list[str]) -> np.ndarray:
    values = [int(t) for t in tokens]
    if all(-(2**63) <= v < 2**63 for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=object)


def run_csim(
    folder: str | Path, inputs: list[np.ndarray], *, trace: bool = False, rank_level: int = 0
) -> CsimResult:
    """Run the C simulation of build folder ``folder`` on a batch (one float array per graph input, in
    the callers' layout as ``fpgac sim`` takes it: :mod:`fpgac.ir.boundary`), at
    rank level ``rank_level`` (a design with rank levels reads it from ``FPGAC_RANK_LEVEL``)."""
    folder = Path(folder)
    graph = load_graph(folder)
    check_level(graph, rank_level)
    env = {**os.environ, "FPGAC_RANK_LEVEL": str(rank_level)}
    names = _trace_names(folder) if trace else {}
    exe = binary(folder)
    n = inputs[0].shape[0] if inputs else 0
    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path, trace_path = Path(tmp) / "in.txt", Path(tmp) / "out.txt", Path(tmp) / "trace.txt"
        logical = bind_inputs(graph, inputs, copy=False)  # the callers' layout -> the ports' order
        in_path.write_text(input_text([np.asarray(a, dtype=np.float32) for a in logical]))
        args = [str(exe.resolve()), str(in_path), str(out_path)] + (["-", str(trace_path)] if trace else [])
        # In hls/: a build with off-chip weights loads weights.bin from there, as Vitis runs csim beside it.
        proc = subprocess.run(args, capture_output=True, text=True, cwd=folder / HLS_DIR, env=env)
        if proc.returncode != 0:
            raise CsimError(
                f"C simulation of {folder} failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
            )
        out_lines = out_path.read_text().splitlines()
        trace_lines = trace_path.read_text().splitlines() if trace else []
    return _collect(graph, n, out_lines, trace_lines, names)


def _collect(
    graph: Graph, n: int, out_lines: list[str], trace_lines: list[str], names: dict[str, str]
) -> CsimResult:
    per_output: list[list[np.ndarray]] = [[] for _ in graph.outputs]
    for line in out_lines:
        _, index, *tokens = line.split()
        per_output[int(index)].append(_parse_line(tokens))
    mantissas, outputs = [], []
    for k, (value, rows) in enumerate(zip(graph.outputs, per_output, strict=True)):
        if len(rows) != n:
            raise CsimError(f"C simulation wrote {len(rows)} samples of output {value.name!r}, expected {n}")
        m = np.stack(rows).reshape(n, *value.shape) if rows else np.zeros((0, *value.shape), np.int64)
        m = output_to_callers(graph, k, m)  # the ports' logical order -> the callers' layout
        fmt = value.type.format
        assert isinstance(fmt, Fixed)
        mantissas.append(m)
        outputs.append(fixed.to_float(m, fmt))
    traced: dict[str, list[np.ndarray]] = {}
    for line in trace_lines:
        if line.startswith("T "):
            _, name, *tokens = line.split()
            traced.setdefault(name, []).append(_parse_line(tokens))
    return CsimResult(outputs, mantissas, _trace_by_value(graph, traced, names))


def _trace_names(folder: Path) -> dict[str, str]:
    """Trace label -> IR value name, from the project's name map (``hls/fpgac.json``)."""
    path = folder / HLS_DIR / MAP_FILE
    try:
        traced = json.loads(path.read_text())["traced"]
        return {label: entry["value"] for label, entry in traced.items()}
    except FileNotFoundError:
        raise CsimError(f"{folder}: no {HLS_DIR}/{MAP_FILE} (made by an older fpgac? build again)") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise CsimError(f"{path}: not a valid name map ({type(exc).__name__}: {exc})") from None


def _trace_by_value(
    graph: Graph, traced: dict[str, list[np.ndarray]], names: dict[str, str]
) -> dict[str, np.ndarray]:
    """Trace rows keyed by the IR value's name (the trace labels are the sanitized C names)."""
    shapes = {v.name: v.shape for v in graph.values()}
    result = {}
    for label, rows in traced.items():
        value = names[label]
        stacked = np.stack(rows) if all(r.dtype != object for r in rows) else np.array(rows, dtype=object)
        result[value] = stacked.reshape(len(rows), *shapes[value])
    return result
