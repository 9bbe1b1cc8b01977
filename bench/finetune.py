"""Accuracy before and after the ``finetune`` pass (knowledge distillation from the float model, issue #18).

``python bench/finetune.py`` trains the digits CNN (the seeded recipe of ``tests/trained.py``; 1,297
training images, 500 held out), and for each case builds the design without and with ``finetune`` on the
training images and their labels (calibration: the first 1,000 training images):

* (a) ``lowrank(macs=0.2)``, fine-tuned in float before the implied 16-bit ``quantize``;
* (c) ``quantize(precision=4)``, fine-tuned at its 4-bit formats (quantization-aware training);
* (d) ``lowrank(levels="1,0.5,0.3,0.2")``: every run-time rank level, training-free and jointly trained
  (``finetune`` after a levelled ``lowrank`` trains the full model and a drawn smaller level each step).

Accuracy is the bit-accurate simulator's on the held-out images. Seeded, CPU (a CUDA GPU when torch sees
one); each case takes under two minutes on one core. Prints a Markdown table and the issue's targets.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small matrices: threads only add contention

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the trained models

from fpgac.build import BuildOptions, CompiledDesign, compile_model  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from tests.trained import Trained, export, train  # noqa: E402

CASES = {  # label: (compression passes, finetune options, target accuracy)
    "(a) lowrank(macs=0.2)": ("lowrank(macs=0.2)", "epochs=100, lr=0.03, temperature=2", 0.97),
    "(c) 4-bit quantize": ("quantize(precision=4)", "epochs=60, lr=0.01", 0.98),
}


def main() -> None:
    trained = train("digits_cnn")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = export(trained, folder / "digits_cnn.onnx")
        calib, data = folder / "calib.npy", folder / "train.npz"
        np.save(calib, trained.data.x_train[:1000])
        np.savez(data, x=trained.data.x_train, labels=trained.data.y_train)

        def accuracy(passes: str) -> tuple[float, dict[str, object], float]:
            start = time.perf_counter()
            design = compile_model(model, BuildOptions(calib=calib, passes=passes, backend="none"))
            seconds = time.perf_counter() - start
            logits = run_fixed(design.graph, [trained.data.x_test]).outputs[0]
            return float(np.mean(logits.argmax(axis=1) == trained.data.y_test)), design.report, seconds

        print(f"\n**digits CNN** (float {100 * trained.accuracy:.1f}% on the 500 held-out images)\n")
        print("| case | training-free | fine-tuned | target | train loss before -> after | seconds |")
        print("|---|---:|---:|---:|---:|---:|")
        met = []
        for label, (passes, options, target) in CASES.items():
            before, _, _ = accuracy(passes)
            after, report, seconds = accuracy(f'{passes}, finetune(data="{data}", {options})')
            tuned = report["finetune"]
            assert isinstance(tuned, dict)
            print(
                f"| {label}, `finetune({options})` | {100 * before:.1f}% | {100 * after:.1f}% "
                f"| {100 * target:.0f}% | {tuned['loss_before']:.3f} -> {tuned['loss_after']:.3f} "
                f"| {seconds:.0f} |"
            )
            met.append((label, after >= target))
        met += rank_levels(model, calib, data, trained)
        print()
        for label, ok in met:
            print(f"- [{'x' if ok else ' '}] {label} reaches its target")


LEVELS, LEVEL_OPTIONS = "1,0.5,0.3,0.2", "epochs=40, lr=0.01"
CLEARLY = 0.1  # "clearly better": the smallest level gains at least 10 points


def rank_levels(model: Path, calib: Path, data: Path, trained: Trained) -> list[tuple[str, bool]]:
    """Case (d): every rank level of one design before and after joint training (Decomposable-Net)."""

    def build(passes: str) -> tuple[CompiledDesign, float]:
        start = time.perf_counter()
        design = compile_model(model, BuildOptions(calib=calib, passes=passes, backend="none"))
        return design, time.perf_counter() - start

    def accuracy(design: CompiledDesign, level: int) -> float:
        logits = run_fixed(design.graph, [trained.data.x_test], rank_level=level).outputs[0]
        return float(np.mean(logits.argmax(axis=1) == trained.data.y_test))

    free, _ = build(f'lowrank(levels="{LEVELS}")')
    joint, seconds = build(f'lowrank(levels="{LEVELS}"), finetune(data="{data}", {LEVEL_OPTIONS})')
    print(f'\n(d) `lowrank(levels="{LEVELS}")`, then `finetune({LEVEL_OPTIONS})`: {seconds:.0f} s\n')
    print("| level | MACs | training-free | jointly trained |")
    print("|---:|---:|---:|---:|")
    gains = []
    for entry in free.report["rank_levels"]:
        level, macs = entry["level"], entry["macs"]
        before, after = accuracy(free, level), accuracy(joint, level)
        gains.append(after - before)
        print(f"| {level} | {macs:,} | {100 * before:.1f}% | {100 * after:.1f}% |")
    return [
        ("(d) every jointly trained level at least as accurate as training-free", min(gains) >= 0),
        (f"(d) the smallest level at least {100 * CLEARLY:.0f} points better", gains[-1] >= CLEARLY),
    ]


if __name__ == "__main__":
    main()
