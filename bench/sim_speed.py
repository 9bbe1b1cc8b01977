"""Throughput of the bit-accurate simulator next to onnxruntime float and hls4ml's C-simulation, in one run.

``python bench/sim_speed.py [--batch 1024] [--repeat 5]`` prints a Markdown table: samples/s of
``run_fixed`` on the built (16-bit, calibrated) graph and of onnxruntime (CPU, float32) on the same
ONNX file and batch, best and median of ``--repeat`` timed runs after one warm-up, and the ratio of
the best times (simulator / onnxruntime). The goal is a ratio within 5x: a simulator much slower than
that makes bit-exact checks of real test sets impractical. Absolute numbers depend on the machine;
only ratios taken in the same run are comparable.

A second table compares ``fpgac sim`` with hls4ml's ``predict()`` (its g++ C-simulation, one ctypes call
per sample) on the same hls4ml build: the lowered graph (``fpgac build --backend hls4ml``) and the
``ModelGraph`` made from it, compiled by hls4ml. Outputs are checked to be bit-identical before timing.
``--no-hls4ml`` skips it (hls4ml compiles each model with g++ -O3: half a minute for the small models,
more than 25 minutes for the 300k-parameter MLP on a 2-core machine).

Both sides run single-threaded by default (``--threads``): numpy's OpenBLAS and onnxruntime's intra-op
pool. On a shared 2-core machine a 2-thread OpenBLAS took 15 ms for a 1024x64 @ 64x32 product that
takes 0.2 ms on one thread, which measured the neighbours rather than the simulator.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _threads_from_argv() -> str:
    """``--threads`` must reach OpenBLAS before numpy is imported, so it is read here, first."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "1"


for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads_from_argv()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the models the tests use

from fpgac.backends.hls4ml.emitter import model_graph  # noqa: E402
from fpgac.backends.hls4ml.lower import lower  # noqa: E402
from fpgac.boards import get_board  # noqa: E402
from fpgac.build import BuildOptions, compile_model  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from tests.models import export_model  # noqa: E402
from tests.trained import train  # noqa: E402


def _mlp(*sizes: int) -> nn.Module:
    layers: list[nn.Module] = []
    for cin, cout in itertools.pairwise(sizes):
        layers += [nn.Linear(cin, cout), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def _random_model(sizes: tuple[int, ...]) -> Callable[[], tuple[nn.Module, np.ndarray]]:
    def make() -> tuple[nn.Module, np.ndarray]:
        torch.manual_seed(0)
        data = np.random.default_rng(0).uniform(0.0, 1.0, (4096, sizes[0])).astype(np.float32)
        return _mlp(*sizes), data

    return make


def _digits_cnn() -> tuple[nn.Module, np.ndarray]:
    trained = train("digits_cnn")
    return trained.model, np.concatenate([trained.data.x_train, trained.data.x_test])


CASES: dict[str, Callable[[], tuple[nn.Module, np.ndarray]]] = {
    "MLP 16-64-32-32-5": _random_model((16, 64, 32, 32, 5)),
    "digits CNN (1x8x8)": _digits_cnn,
    "MLP 784-300-200-100-10": _random_model((784, 300, 200, 100, 10)),
}


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up: caches, lazy imports, ORT's first-run allocations
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _batch(data: np.ndarray, batch: int) -> np.ndarray:
    reps = -(-batch // len(data))
    return np.concatenate([data] * reps)[:batch]


def bench(
    name: str, make: Callable[[], tuple[nn.Module, np.ndarray]], batch: int, repeat: int, threads: int
) -> str:
    model, data = make()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(model, torch.from_numpy(data[:2]), Path(tmp) / "model.onnx", "torchscript")
        np.save(Path(tmp) / "calib.npy", data[:512])
        graph = compile_model(path, BuildOptions(calib=Path(tmp) / "calib.npy")).graph
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = _batch(data, batch)
    feed = {session.get_inputs()[0].name: x}
    sim = _time(lambda: run_fixed(graph, [x]), repeat)
    ref = _time(lambda: session.run(None, feed), repeat)
    rate = lambda t: f"{batch / t:,.0f}"  # noqa: E731
    return (
        f"| {name} | {params:,} | {rate(min(sim))} | {rate(statistics.median(sim))} "
        f"| {rate(min(ref))} | {rate(statistics.median(ref))} | {min(sim) / min(ref):.1f}x |"
    )


def bench_hls4ml(name: str, make: Callable[[], tuple[nn.Module, np.ndarray]], batch: int, repeat: int) -> str:
    """``fpgac sim`` of an hls4ml build vs hls4ml's ``predict()`` on the ModelGraph of that build."""
    model, data = make()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(model, torch.from_numpy(data[:2]), Path(tmp) / "model.onnx", "torchscript")
        np.save(Path(tmp) / "calib.npy", data[:512])
        graph = compile_model(path, BuildOptions(calib=Path(tmp) / "calib.npy", backend="hls4ml")).graph
        lowered = lower(graph)
        # A 300k-parameter MLP takes hls4ml's Resource strategy (reuse 128: 235,200 parallel multipliers
        # fit no FPGA). Either way hls4ml's g++ -O3 compile of it took over 25 minutes on a 2-core machine.
        big = params > 100_000
        reuse = 128 if big else 1
        hls_model = model_graph(lowered, get_board("zcu104"), "parallel", str(Path(tmp) / "prj"), reuse)
        start = time.perf_counter()
        hls_model.compile()
        compile_s = time.perf_counter() - start
        x = _batch(data, batch)
        layout = lowered.inputs[0].type.layout or tuple(range(x.ndim - 1))
        rows = np.ascontiguousarray(x.transpose(0, *(a + 1 for a in layout)).reshape(batch, -1), np.float64)
        ours = run_fixed(lowered, [x]).outputs[0]
        theirs = np.asarray(hls_model.predict(rows)).reshape(ours.shape)
        identical = (
            "yes" if np.array_equal(ours, theirs) else f"NO ({np.count_nonzero(ours != theirs)} differ)"
        )
        sim = _time(lambda: run_fixed(lowered, [x]), repeat)
        ref = _time(lambda: hls_model.predict(rows), max(1, repeat // 2))
    rate = lambda t: f"{batch / t:,.0f}"  # noqa: E731
    return (
        f"| {name} | {params:,} | {rate(min(sim))} | {rate(min(ref))} | {min(ref) / min(sim):,.0f}x "
        f"| {identical} | {compile_s:.0f} s (reuse {reuse}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="OpenBLAS and onnxruntime threads")
    parser.add_argument("--no-hls4ml", action="store_true", help="skip fpgac sim vs hls4ml predict()")
    args = parser.parse_args()
    print(
        f"batch {args.batch}, best/median of {args.repeat} runs after a warm-up; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {args.threads} thread(s) for numpy/OpenBLAS and onnxruntime; "
        f"numpy {np.__version__}, onnxruntime {ort.__version__}; simulator at 16 bits, calibrated\n"
    )
    print(
        "| model | params | sim samples/s (best) | sim (median) | ORT float samples/s (best) "
        "| ORT (median) | sim time / ORT time |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, make in CASES.items():
        print(bench(name, make, args.batch, args.repeat, args.threads), flush=True)
    if args.no_hls4ml:
        return
    import hls4ml

    print(f"\nfpgac sim vs hls4ml {hls4ml.__version__} predict() (C-simulation) on the same hls4ml build\n")
    print(
        "| model | params | fpgac sim samples/s | hls4ml predict() samples/s | sim speed-up "
        "| bit-identical | hls4ml compile |"
    )
    print("|---|---:|---:|---:|---:|:---:|---:|")
    for name, make in CASES.items():
        print(bench_hls4ml(name, make, args.batch, args.repeat), flush=True)


if __name__ == "__main__":
    main()
