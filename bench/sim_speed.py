"""Speed and memory of ``fpgac sim`` next to onnxruntime float and hls4ml's C-simulation, in one run.

``python bench/sim_speed.py [--repeat 3] [--baseline SRC]`` prints two Markdown tables.

The first times whole processes, as a user runs them: ``fpgac sim BUILD --input x.npy --output y.npy``
(start-up, reading the build and the input, simulating, writing the output) against a script that loads
the same ``x.npy`` into onnxruntime (CPU provider, float32), runs it and saves the output, on the cases
of issue 20: the 16-64-32-32-5 jet-tagging MLP on 200,000 samples, LeNet-300-100 (trained) and the digits
CNN on 20,000 each; builds are 16-bit and calibrated. It reports the best wall time of ``--repeat`` runs
(interleaved) and of CPU time (user + system, all threads), their ratios and each side's peak resident
memory (GNU time's ``%M``); on a loaded machine the CPU times are the steadier measure. With
``--baseline SRC`` (another fpgac source tree, e.g. ``git worktree add /tmp/base <rev>``) that tree's
``fpgac sim`` runs the same builds too, and its outputs must be byte-identical: a before/after in one run.
fpgac sim runs numpy's BLAS on one thread (its own choice), onnxruntime its default pool; on a shared
machine only ratios taken in the same run mean much.

The second compares the simulator with hls4ml's ``predict()`` (its g++ C-simulation, one ctypes call per
sample) on the same hls4ml build: the lowered graph (``fpgac build --backend hls4ml``) and the
``ModelGraph`` made from it, compiled by hls4ml, after checking that their outputs are bit-identical.
``predict()`` runs ``--hls4ml-samples`` samples (it manages about 2,000-10,000 a second), the simulator the
case's whole batch, in-process; both are timed in wall and in CPU time (one thread each, so on a shared
machine the CPU ratio is the steadier), best of ``--repeat`` runs alternating, and the simulator's first
run on its own: it also pays what a process pays once (finding numpy's BLAS to hold it to one thread,
about 20 ms) and what a model pays once (its weights laid out for the matmuls), as ``predict()``'s
library was loaded by hls4ml's compile. ``--no-hls4ml`` skips it (hls4ml compiles each model with g++
-O3: half a minute for the small models; LeNet-300-100 is left out, its compile takes over 25 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.*: the models the tests use

from tests.models import export_model  # noqa: E402
from tests.trained import export, train  # noqa: E402

T = TypeVar("T")

ORT_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
outputs = session.run(None, {session.get_inputs()[0].name: np.load(sys.argv[2])})
np.save(sys.argv[3], outputs[0])
"""


@dataclass(frozen=True)
class Case:
    name: str
    samples: int
    make: Callable[[Path], tuple[Path, np.ndarray]]  # ONNX file in the folder, and data to draw from


def _jet_mlp(folder: Path) -> tuple[Path, np.ndarray]:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for cin, cout in itertools.pairwise((16, 64, 32, 32, 5)):
        layers += [nn.Linear(cin, cout), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).eval()
    data = np.random.default_rng(0).uniform(0.0, 1.0, (4096, 16)).astype(np.float32)
    return export_model(model, torch.from_numpy(data[:2]), folder / "model.onnx", "torchscript"), data


def _trained(name: str) -> Callable[[Path], tuple[Path, np.ndarray]]:
    def make(folder: Path) -> tuple[Path, np.ndarray]:
        trained = train(name)
        data = np.concatenate([trained.data.x_train, trained.data.x_test])
        return export(trained, folder / "model.onnx"), data

    return make


CASES = [
    Case("MLP 16-64-32-32-5 (jet tagging)", 200_000, _jet_mlp),
    Case("LeNet-300-100 (MNIST)", 20_000, _trained("lenet_300_100")),
    Case("digits CNN (1x8x8)", 20_000, _trained("digits_cnn")),
]


def _batch(data: np.ndarray, samples: int) -> np.ndarray:
    return np.concatenate([data] * -(-samples // len(data)))[:samples]


def _process(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak resident MB of one process (which must succeed).

    GNU time measures it: ``wait4`` from this process would report this (torch-sized) process's resident
    memory at the fork as the child's peak.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%e %U %S %M", "-o", report.name, *command],
            env=env,
            cwd=Path(report.name).parent,  # not a source tree: `python -m` puts the working folder first
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} ... failed: {result.stderr.decode()[-2000:]}")
        wall, user, system, peak_kb = report.read().split()[-4:]
    return float(wall), float(user) + float(system), float(peak_kb) / 1024


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def bench_processes(case: Case, repeat: int, baseline: Path | None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx_path, data = case.make(folder)
        np.save(folder / "calib.npy", data[:512])
        np.save(folder / "x.npy", _batch(data, case.samples))
        build = folder / "build"
        options = [
            "--board",
            "zcu104",
            "--out",
            str(build),
            "--calib",
            str(folder / "calib.npy"),
            "--backend",
            "none",
        ]
        subprocess.run(
            [sys.executable, "-m", "fpgac", "build", str(onnx_path), *options],
            env=_env(ROOT),
            check=True,
            capture_output=True,
        )
        sim = [sys.executable, "-m", "fpgac", "sim", str(build), "--input", str(folder / "x.npy"), "--output"]
        runs: dict[str, tuple[list[str], dict[str, str]]] = {
            "ort": (
                [
                    sys.executable,
                    "-c",
                    ORT_SCRIPT,
                    str(onnx_path),
                    str(folder / "x.npy"),
                    str(folder / "ort.npy"),
                ],
                dict(os.environ),
            ),
            "sim": ([*sim, str(folder / "sim.npy")], _env(ROOT)),
        }
        if baseline is not None:
            runs["base"] = ([*sim, str(folder / "base.npy")], _env(baseline))
        best: dict[str, tuple[float, float, float]] = {}
        for _ in range(repeat):
            for key, (command, env) in runs.items():
                measured = _process(command, env)
                best[key] = tuple(min(a, b) for a, b in zip(measured, best.get(key, measured), strict=True))
        (ort_wall, ort_cpu, ort_peak), (wall, cpu, peak) = best["ort"], best["sim"]
        row = f"| {case.name} | {case.samples:,} | {ort_wall:.2f} / {ort_cpu:.2f} | {wall:.2f} / {cpu:.2f} "
        row += f"| {wall / ort_wall:.1f}x / {cpu / ort_cpu:.1f}x | {peak:,.0f} | {ort_peak:,.0f} |"
        if baseline is not None:
            base_wall, base_cpu, base_peak = best["base"]
            same = (folder / "sim.npy").read_bytes() == (folder / "base.npy").read_bytes()
            row += f" {base_wall:.2f} / {base_cpu:.2f} "
            row += f"| {base_wall / ort_wall:.1f}x / {base_cpu / ort_cpu:.1f}x "
            row += f"| {base_peak:,.0f} | {'yes' if same else 'NO'} |"
    return row


def bench_hls4ml(case: Case, samples: int, repeat: int) -> str:
    """The simulator on the case's batch vs hls4ml's ``predict()`` on ``samples``, on one hls4ml build:
    the best of ``repeat`` runs of each, alternating, and the simulator's first run on its own."""
    from fpgac.backends.hls4ml.emitter import model_graph
    from fpgac.backends.hls4ml.lower import lower
    from fpgac.boards import get_board
    from fpgac.build import BuildOptions, compile_model
    from fpgac.interp.simulator import run_fixed

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, data = case.make(Path(tmp))
        np.save(Path(tmp) / "calib.npy", data[:512])
        graph = compile_model(onnx_path, BuildOptions(calib=Path(tmp) / "calib.npy", backend="hls4ml")).graph
        lowered = lower(graph)
        hls_model = model_graph(lowered, get_board("zcu104"), "parallel", str(Path(tmp) / "prj"), 1)
        start = time.perf_counter()
        hls_model.compile()
        compile_s = time.perf_counter() - start
        x = _batch(data, case.samples)
        layout = lowered.inputs[0].type.layout or tuple(range(x.ndim - 1))
        rows = np.ascontiguousarray(
            x[:samples].transpose(0, *(a + 1 for a in layout)).reshape(samples, -1), np.float64
        )
        predict, sim, first = (np.inf, np.inf), (np.inf, np.inf), (np.inf, np.inf)
        for i in range(repeat):
            (theirs, predict_s, predict_cpu) = _timed(lambda: np.asarray(hls_model.predict(rows)))
            (result, sim_s, sim_cpu) = _timed(lambda: run_fixed(lowered, [x]))
            predict, sim = _best(predict, (predict_s, predict_cpu)), _best(sim, (sim_s, sim_cpu))
            first = (sim_s, sim_cpu) if i == 0 else first
    outputs = result.outputs[0]
    identical = np.array_equal(outputs[:samples], theirs.reshape(outputs[:samples].shape))
    ours, theirs_rate = [case.samples / t for t in sim], [samples / t for t in predict]
    cold = [case.samples / t for t in first]
    return (
        f"| {case.name} | {ours[0]:,.0f} / {ours[1]:,.0f} | {theirs_rate[0]:,.0f} / {theirs_rate[1]:,.0f} "
        f"| {ours[0] / theirs_rate[0]:,.0f}x / {ours[1] / theirs_rate[1]:,.0f}x "
        f"| {cold[0] / theirs_rate[0]:,.0f}x / {cold[1] / theirs_rate[1]:,.0f}x "
        f"| {'yes' if identical else 'NO'} | {compile_s:.0f} s |"
    )


def _best(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return min(a[0], b[0]), min(a[1], b[1])


def _timed(run: Callable[[], T]) -> tuple[T, float, float]:
    """``run()``'s result, wall seconds and CPU seconds of this process (both sides run in it)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another fpgac source tree to time alongside")
    parser.add_argument("--hls4ml-samples", type=int, default=2000)
    parser.add_argument("--no-hls4ml", action="store_true", help="skip fpgac sim vs hls4ml predict()")
    args = parser.parse_args()
    import onnxruntime as ort

    print(
        f"whole processes, best of {args.repeat}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}, onnxruntime {ort.__version__}, load average {os.getloadavg()[0]:.1f}\n"
    )
    head = "| model | samples | ORT s (wall / CPU) | fpgac sim s | sim / ORT | sim peak MB | ORT peak MB |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if args.baseline is not None:
        head += " baseline sim s | baseline / ORT | baseline peak MB | outputs identical |"
        rule += "---:|---:|---:|:---:|"
    print(head)
    print(rule)
    for case in CASES:
        print(bench_processes(case, args.repeat, args.baseline), flush=True)
    if args.no_hls4ml:
        return
    import hls4ml

    print(
        f"\nfpgac sim (in-process) vs hls4ml {hls4ml.__version__} predict() on the same hls4ml build, "
        f"best of {args.repeat}\n"
    )
    print(
        "| model | fpgac sim samples/s (wall / CPU) | hls4ml predict() samples/s (wall / CPU) "
        "| speed-up (wall / CPU) | sim's first run: speed-up | bit-identical | compile |"
    )
    print("|---|---:|---:|---:|---:|:---:|---:|")
    for case in CASES:
        if "LeNet" not in case.name:
            print(bench_hls4ml(case, args.hls4ml_samples, args.repeat), flush=True)


if __name__ == "__main__":
    main()
