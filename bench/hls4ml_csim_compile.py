"""Time and peak memory of compiling an hls4ml build's C-simulation (``fpgac csim`` / ``fpgac verify``).

``python bench/hls4ml_csim_compile.py [MODEL.onnx CALIB.npy ...] [--samples N]`` builds each model with
``--backend hls4ml --io parallel`` into a temporary folder, compiles its C-simulation library with
:func:`fpgac.backends.hls4ml.csim.library` (cold: nothing cached) and prints a Markdown table: compile
wall time, the largest g++ process's peak RSS, the size of the weights hls4ml writes and of the im2col
code it generates for io_parallel convolutions (``nnet_code_gen.h``: one C++ statement per output pixel
and kernel tap, compiled whatever the flags), and with ``--samples`` a bit-exact ``fpgac verify``.
Without models it measures LeNet-300-100 (784-300-100-10, seeded weights; needs torch). The budget in
the issue is 5 minutes and 4 GB per model; hls4ml's own ``build_lib.sh`` (-O3, weights as array
initializers) did not finish LeNet-300-100 in 47 minutes. Each model is measured in a child process so
that its peak RSS is its own. Run large models under ``flock /tmp/bigmodel.lock``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lenet(folder: Path) -> tuple[Path, Path]:
    """LeNet-300-100 exported by torch, with a calibration batch in [0, 1) (MNIST-like pixels)."""
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.models import export_model

    torch.manual_seed(0)
    layers = [torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(100, 10)).eval()
    onnx = export_model(model, torch.randn(2, 784), folder / "lenet_300_100.onnx", "torchscript")
    calib = folder / "lenet_calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(0, 1, (64, 784)).astype(np.float32))
    return onnx, calib


def measure(model: Path, calib: Path, samples: int) -> dict[str, object]:
    """In this (child) process: build, compile cold, optionally verify."""
    from fpgac.backends.equivalence import verify
    from fpgac.backends.hls4ml import csim
    from fpgac.build import BuildOptions, build

    with tempfile.TemporaryDirectory(prefix="fpgac-bench-") as tmp:
        out = Path(tmp) / "build"
        build(model, out, BuildOptions(calib=calib, backend="hls4ml", io="parallel"))
        firmware = out / "hls4ml" / "firmware"
        code_gen = firmware / "nnet_utils" / "nnet_code_gen.h"
        start = time.perf_counter()
        csim.library(out)
        row: dict[str, object] = {
            "model": model.stem,
            "compile_s": round(time.perf_counter() - start, 1),
            "peak_gxx_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
            "weights_mb": round(
                sum(p.stat().st_size for p in (firmware / "weights").glob("*.txt")) / 2**20, 1
            ),
            "code_gen_mb": round(code_gen.stat().st_size / 2**20, 1) if code_gen.is_file() else 0.0,
        }
        if samples:
            result = verify(str(out), samples=samples)
            row["mismatches"] = result.mismatches
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="*", type=Path, help="MODEL.onnx CALIB.npy, repeated")
    parser.add_argument("--samples", type=int, default=0, help="also verify bit-exactness on N samples")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.pairs[0], args.pairs[1], args.samples)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        pairs = list(zip(args.pairs[::2], args.pairs[1::2], strict=True)) or [lenet(Path(tmp))]
        print("| model | compile s | peak g++ MB | weights (txt) MB | im2col code MB | mismatches |")
        print("|---|---:|---:|---:|---:|---:|")
        for model, calib in pairs:
            command = [
                sys.executable,
                __file__,
                "--child",
                str(model),
                str(calib),
                "--samples",
                str(args.samples),
            ]
            proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(f"| {model.stem} | failed: {proc.stderr.strip().splitlines()[-1]} | | | | |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            row = [r["model"], r["compile_s"], r["peak_gxx_mb"], r["weights_mb"], r["code_gen_mb"]]
            print("| " + " | ".join(map(str, row)) + f" | {r.get('mismatches', '-')} |")


if __name__ == "__main__":
    main()
