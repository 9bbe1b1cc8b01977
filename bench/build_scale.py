"""How ``fpgac build``'s time, memory and output grow with the model: ImageNet-sized light models.

``python bench/build_scale.py [--models resnet50,vgg19] [--baseline /work/main] [--backend vitis]``
builds each model with ``python -m fpgac build MODEL --board zcu104 --calib BATCH`` in a fresh
subprocess and prints a Markdown table: wall and CPU time (user + system; less
sensitive to busy neighbours than wall time), peak RSS of that process (``os.wait4``'s rusage, so
each build is measured alone) and the size of the build folder next to the model's float32 weight bytes.
With ``--baseline DIR`` every model is built by that checkout as well (its ``fpgac`` package on
``PYTHONPATH``, the same interpreter), giving a before/after table.

The models are the ``onnx`` package's light ResNet-50, VGG-19, SqueezeNet and DenseNet-121 (real
topologies, degenerate weights) with every constant replaced by seeded random weights
(``tests/numerics/test_onnx_zoo.py``'s ``randomize_weights``, here without its cap on huge classifier
weights, so VGG-19 keeps all 143M), and a random normal calibration batch of 2. They are written once
to ``--cache`` (default ``/tmp/fpgac-build-scale``) and reused.

Building VGG-19 took 15 GB before the work this benchmark measures; on a shared machine run it under a
lock (``flock /tmp/bigmodel.lock python bench/build_scale.py``). Numbers depend on the machine and its
neighbours; only the rows of one run are comparable.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.*: the light models' randomizer

from tests.numerics import test_onnx_zoo as zoo  # noqa: E402

MODELS = ("resnet50", "vgg19", "squeezenet", "densenet121")


@dataclass(frozen=True)
class Run:
    """One build: which checkout, how long, how much memory, how much written."""

    checkout: str
    model: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    folder_mb: float
    ok: bool


def prepare(name: str, cache: Path) -> tuple[Path, Path, int]:
    """The randomized model, its calibration batch and its float32 weight bytes, made once."""
    model_path, batch_path = cache / f"{name}.onnx", cache / f"{name}_batch.npy"
    if not model_path.exists():
        zoo.MAX_RANDOM_WEIGHT = sys.maxsize  # keep every classifier weight: the scale is the point
        model = zoo.randomize_weights(onnx.load(zoo.DATA / "light" / zoo.LIGHT[name]))
        (info,) = zoo.data_inputs(model)
        shape = [2, *[d.dim_value for d in info.type.tensor_type.shape.dim][1:]]
        np.save(batch_path, np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        onnx.save(model, model_path)
    weights = sum(
        int(np.prod(t.dims)) * 4 for t in onnx.load(model_path).graph.initializer if t.data_type == 1
    )
    return model_path, batch_path, weights


def measure(checkout: Path, name: str, model: Path, batch: Path, backend: str, scratch: Path) -> Run:
    """Build ``model`` with ``checkout``'s fpgac in a child process; its own wall time and peak RSS."""
    out = scratch / f"{checkout.name}-{name}"
    command = [sys.executable, "-m", "fpgac", "build", str(model), "--board", "zcu104"]
    command += ["--calib", str(batch), "--backend", backend, "--out", str(out), "--force"]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    # Run in the checkout: ``python -m`` puts the working folder first on sys.path.
    child = subprocess.Popen(
        command, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert child.stderr is not None
    errors = child.stderr.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        print(f"{checkout} {name}: exit {child.returncode}: {errors.strip()[-500:]}", file=sys.stderr)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.exists() else 0
    cpu = usage.ru_utime + usage.ru_stime
    ok = child.returncode == 0
    return Run(str(checkout), name, seconds, cpu, usage.ru_maxrss / 1024, size / 2**20, ok)


def table(runs: list[Run], weight_mb: dict[str, float]) -> str:
    """Markdown: one row per model and checkout, memory also as a multiple of the weights' size."""
    lines = [
        "| model | float32 weights | checkout | wall time | CPU time | peak RSS | RSS / weights "
        "| build folder |",
        "|---|--:|---|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        weights = weight_mb[run.model]
        failed = "" if run.ok else " (failed)"
        lines.append(
            f"| {run.model} | {weights:,.0f} MB | {run.checkout}{failed} | {run.seconds:,.1f} s "
            f"| {run.cpu_seconds:,.1f} s | {run.peak_rss_mb:,.0f} MB | {run.peak_rss_mb / weights:.1f}x "
            f"| {run.folder_mb:,.0f} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vgg19", help=f"comma-separated, of {MODELS}")
    parser.add_argument("--baseline", type=Path, help="another fpgac checkout to build with too")
    parser.add_argument("--backend", default="vitis", choices=("vitis", "hls4ml", "none"))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fpgac-build-scale")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = set(names) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; expected some of {MODELS}")
    args.cache.mkdir(parents=True, exist_ok=True)
    checkouts = [ROOT, *([args.baseline.resolve()] if args.baseline else [])]
    runs, weight_mb = [], {}
    with tempfile.TemporaryDirectory(dir=args.cache) as scratch:
        for name in names:
            model, batch, weights = prepare(name, args.cache)
            weight_mb[name] = weights / 2**20
            for checkout in reversed(checkouts):  # the baseline first: "before" reads above "after"
                runs.append(measure(checkout, name, model, batch, args.backend, Path(scratch)))
                print(table(runs[-1:], weight_mb).splitlines()[-1], file=sys.stderr, flush=True)
    print(f"`fpgac build --board zcu104 --calib (batch of 2) --backend {args.backend}`\n")
    print(table(runs, weight_mb))


if __name__ == "__main__":
    main()
