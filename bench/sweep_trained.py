"""Sweeps of the trained LeNet-300-100 (MNIST) and digits CNN: the README's "Sweeps" numbers and pictures.

    python bench/sweep_trained.py --models lenet_300_100,digits_cnn --out build/sweeps [--jobs 2] [--ray]

Per model: trains it (tests/trained.py, seeded), exports it, writes the calibration batch (256 training
samples) and the validation set (the held-out samples with their labels, as `fpgac sweep --data` takes
them), runs `fpgac sweep` with the default grid (24 points) on zcu104, and prints the wall time and the
fronts. The folders keep results.csv, front.csv and report.html; rerun and the finished points are skipped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from fpgac.build import BuildOptions
from fpgac.sweep.sweep import sweep
from tests.trained import export, train


def prepare(name: str, folder: Path) -> tuple[Path, Path, Path, float]:
    """The model, calibration and validation files of ``name``, and its float (torch) test accuracy."""
    folder.mkdir(parents=True, exist_ok=True)
    trained = train(name)
    model = export(trained, folder / f"{name}.onnx")
    calib, data = folder / "calib.npy", folder / "val.npz"
    np.save(calib, trained.data.x_train[:256])
    np.savez(data, x=trained.data.x_test, labels=trained.data.y_test)
    return model, calib, data, trained.accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="lenet_300_100,digits_cnn")
    parser.add_argument("--out", type=Path, default=Path("build/sweeps"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="run the points as Ray tasks (a local instance)")
    args = parser.parse_args()
    for name in args.models.split(","):
        model, calib, data, accuracy = prepare(name, args.out / f"{name}_files")
        start = time.perf_counter()
        result = sweep(
            model,
            args.out / name,
            BuildOptions(calib=calib),
            data,
            jobs=args.jobs,
            ray="auto" if args.ray else None,
        )
        print(
            f"{name}: float accuracy {accuracy:.4f}; {result.points} points ({result.ran} run, "
            f"{result.skipped} skipped, {result.failed} failed) in {time.perf_counter() - start:.1f} s"
        )
        by_point = {r["point"]: r for r in result.rows}
        for cost, points in result.fronts.items():
            shown = ", ".join(f"{k}: {by_point[k]['accuracy']:.4f} at {by_point[k][cost]:,}" for k in points)
            print(f"  front vs {cost}: {shown}")


if __name__ == "__main__":
    main()
