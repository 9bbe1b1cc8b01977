"""``fpgac csim`` of an hls4ml build: hls4ml's own C-simulation of the project in ``DIR/hls4ml/``.

The project's two translation units (``firmware/<project>.cpp`` and ``<project>_bridge.cpp``, unchanged)
are compiled into the shared library hls4ml's ``predict()`` and ``trace()`` call through ctypes, and called
the same way: the bridge's ``<project>_double`` per sample, and its trace storage
(``allocate_trace_storage`` / ``collect_trace_output``) for every layer's output. Doing those calls here
rather than through a ``ModelGraph`` lets the library be cached: it is kept in ``DIR/.csim/`` under the
hash of every project file, the compiler, its flags and the weights folder, so a second run does not
recompile.

The compile is ours, not hls4ml's ``build_lib.sh`` (``-O3`` on one unit that holds every weight as an
``ap_fixed`` array initializer: LeNet-300-100 did not finish in 47 minutes, SqueezeNet passed 16 GB).
The project is written with hls4ml's ``WriteWeightsTxt``: for C-simulation (``#ifndef __SYNTHESIS__``)
its headers only declare the arrays and the top function loads them once from ``firmware/weights/*.txt``
(``nnet::load_weights_from_txt``: the same decimal strings as the headers' initializers, parsed as
doubles and converted to the weight type as the initializers are), so the weights cost no compile time.
``WEIGHTS_DIR`` points at the build folder's own ``hls4ml/firmware/weights``; synthesis still reads the
initializers. The units are compiled at ``-O1`` (no ``-march``: the library is portable and no vector
unit can change ``ap_fixed`` integer arithmetic), two at a time.

Values cross the bridge as doubles: inputs are the float32 inputs (exact), hls4ml converts them into its
input type as ``fpgac sim`` quantizes them, and every output or traced value (at most 53 bits wide) comes
back exactly, so mantissas are recovered without loss. Channels-last tensors are transposed on the way in
and back to the IR's logical order on the way out.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.backends.hls4ml.emitter import MAP_FILE
from fpgac.backends.vitis.csim import CsimError, CsimResult, cached, compiler, source_digest
from fpgac.interp.interpreter import bind_inputs
from fpgac.ir import fixed
from fpgac.ir.boundary import output_to_callers
from fpgac.ir.graph import Graph
from fpgac.ir.serialize import load_graph
from fpgac.ir.types import Fixed

HLS4ML_DIR = "hls4ml"
# hls4ml's io_parallel convolutions come with generated im2col code (nnet_code_gen.h): one assignment per
# output pixel and kernel tap, in one function per layer, which g++ compiles at about 0.4 GB and 20-30 s
# per MB even at -O0 (bench/hls4ml_csim_compile.py: 5.4 MB took 2.0 GB). Above this the compile is
# refused rather than left to exhaust the machine (SqueezeNet at 224x224: 3.4 million assignments).
MAX_CODE_GEN_MB = 10.0
# hls4ml's own flags but -O1 for -O3: its kernels are loops over small arrays; -O3 spends minutes and
# gigabytes unrolling and vectorizing them for a run of a few samples.
CXXFLAGS = ("-O1", "-fPIC", "-std=c++17", "-fno-gnu-unique")


def _sources(project: Path) -> list[Path]:
    return sorted(p for p in project.rglob("*") if p.is_file() and p.suffix in (".h", ".cpp", ".hpp", ".txt"))


def library(folder: Path) -> Path:
    """The compiled C-simulation library of build folder ``folder``: cached, or built now."""
    project = (folder / HLS4ML_DIR).resolve()
    name = _meta(folder)["project"]
    weights = project / "firmware" / "weights"
    defines = (f"-DWEIGHTS_DIR={json.dumps(str(weights))}",)
    code_gen = project / "firmware" / "nnet_utils" / "nnet_code_gen.h"
    size_mb = code_gen.stat().st_size / 2**20 if code_gen.is_file() else 0.0
    if size_mb > MAX_CODE_GEN_MB:
        raise CsimError(
            f"{folder}: hls4ml generated {size_mb:.0f} MB of im2col code for its io_parallel convolutions "
            f"(firmware/nnet_utils/nnet_code_gen.h, one statement per output pixel and tap); g++ would need "
            f"about {0.4 * size_mb:.0f} GB to compile it (the limit is {MAX_CODE_GEN_MB:.0f} MB)"
        )

    def build_into(tmp: Path) -> Path:
        units = [project / "firmware" / f"{name}.cpp", project / f"{name}_bridge.cpp"]
        include = ("-I", str(project / "firmware" / "ap_types"))
        commands = [
            [compiler(), *CXXFLAGS, *include, *defines, "-c", str(unit), "-o", str(tmp / f"{unit.stem}.o")]
            for unit in units
        ]
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            for proc in pool.map(_run, commands):
                _check(proc, project)
        lib = tmp / f"{name}.so"
        _check(
            _run([compiler(), "-shared", *(str(tmp / f"{u.stem}.o") for u in units), "-o", str(lib)]), project
        )
        return lib

    key = source_digest(project, _sources(project), compiler(), *CXXFLAGS, *defines)
    return cached(folder, f"hls4ml-{key}.so", build_into)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True)


def _check(proc: subprocess.CompletedProcess[str], project: Path) -> None:
    if proc.returncode != 0:
        raise CsimError(f"g++ failed on the hls4ml project {project}:\n{(proc.stdout + proc.stderr)[-3000:]}")


def _meta(folder: Path) -> dict[str, Any]:
    path = folder / HLS4ML_DIR / MAP_FILE
    if not path.is_file():
        raise CsimError(f"{folder}: no hls4ml project in {HLS4ML_DIR}/ (build with --backend hls4ml)")
    return json.loads(path.read_text())


def _to_hls(array: np.ndarray, layout: list[int]) -> np.ndarray:
    """A batch in the IR's logical order -> hls4ml's memory order, one C-contiguous float64 row per sample."""
    x = np.asarray(array, dtype=np.float64).transpose(0, *(a + 1 for a in layout))
    return np.ascontiguousarray(x.reshape(x.shape[0], -1))


def _from_hls(rows: np.ndarray, graph: Graph, entry: dict[str, Any]) -> np.ndarray:
    """Doubles in hls4ml's order -> mantissas in logical order (exact: values are on the format's grid)."""
    value = next(v for v in graph.values() if v.name == entry["value"])
    fmt = value.type.format
    assert isinstance(fmt, Fixed)
    layout = entry["layout"]
    scaled = rows * 2.0**fmt.frac_bits
    m = np.rint(scaled).astype(np.int64)
    if not np.array_equal(m, scaled):
        raise CsimError(f"hls4ml returned a value of {value.name!r} that is not on the grid of {fmt}")
    m = m.reshape(rows.shape[0], *(value.shape[a] for a in layout))
    return m.transpose(0, *(layout.index(i) + 1 for i in range(len(layout))))


class _TraceData(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p)]  # ctypes' layout


def run_hls4ml_csim(folder: str | Path, inputs: list[np.ndarray], *, trace: bool = False) -> CsimResult:
    """hls4ml's C-simulation of build folder ``folder`` on a batch (one float array per graph input)."""
    folder = Path(folder)
    graph = load_graph(folder)
    meta = _meta(folder)
    lib = ctypes.CDLL(str(library(folder)))
    top = getattr(lib, f"{meta['project']}_double")
    top.restype = None
    logical = bind_inputs(graph, inputs, copy=False)  # the callers' layout (fpgac.ir.boundary) -> logical
    rows_in = [_to_hls(x, e["layout"]) for x, e in zip(logical, meta["inputs"], strict=True)]
    sizes = [
        int(np.prod(next(v for v in graph.values() if v.name == e["value"]).shape)) for e in meta["outputs"]
    ]
    n = rows_in[0].shape[0] if rows_in else 0
    outs = [np.zeros((n, s)) for s in sizes]
    traced = {name: np.zeros((n, int(np.prod(_shape(graph, e))))) for name, e in meta["traced"].items()}
    buffer = (_TraceData * (len(traced) + 64))()  # hls4ml may trace fewer layers than fpgac maps
    seen: set[str] = set()
    if trace:
        lib.allocate_trace_storage.argtypes = [ctypes.c_size_t]
        lib.allocate_trace_storage(ctypes.sizeof(ctypes.c_double))
    ptr = ctypes.POINTER(ctypes.c_double)
    try:
        for i in range(n):
            args = [r[i].ctypes.data_as(ptr) for r in rows_in] + [o[i].ctypes.data_as(ptr) for o in outs]
            top(*args)
            if trace:
                lib.collect_trace_output(buffer)
                for item in buffer:
                    if not item.name:
                        break
                    name = item.name.decode()
                    if name not in traced:
                        continue
                    seen.add(name)
                    size = traced[name].shape[1]
                    traced[name][i] = np.ctypeslib.as_array(ctypes.cast(item.data, ptr), shape=(size,))
    finally:
        if trace:
            lib.free_trace_storage()
    mantissas = [  # in the callers' layout of each output (fpgac.ir.boundary)
        output_to_callers(graph, i, _from_hls(o, graph, e))
        for i, (o, e) in enumerate(zip(outs, meta["outputs"], strict=True))
    ]
    values = []
    for m, value in zip(mantissas, graph.outputs, strict=True):
        fmt = value.type.format
        assert isinstance(fmt, Fixed)  # _from_hls has checked it
        values.append(fixed.to_float(m, fmt))
    by_value = {
        e["value"]: _from_hls(traced[name], graph, e) for name, e in meta["traced"].items() if name in seen
    }
    return CsimResult(values, mantissas, by_value)


def _shape(graph: Graph, entry: dict[str, Any]) -> tuple[int, ...]:
    return next(v for v in graph.values() if v.name == entry["value"]).shape
