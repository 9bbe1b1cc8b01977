"""Why Brevitas' binary weights of scale 0.1 make designs differ from qonnx's execution, element by element.

``python bench/qonnx_rounding_points.py`` trains the tests' binary-weight digits MLP and CNN
(``tests/brevitas_trained.py``) with Brevitas' default ``SignedBinaryWeightPerTensorConst`` (scale 0.1),
exports them with ``export_qonnx``, builds them, and compares the bit-accurate simulation with qonnx's
``execute_onnx`` on the 500 held-out samples. For each layer with the scale it recomputes the exact sum
``s = x @ codes`` from qonnx's own layer inputs and checks that every pre-quantizer value qonnx rounds
differently from the design (float32's rounding of the exact ``0.1f * s``, then the quantizer) is a tie of
the decimal model (``0.1 * s == (k + 1/2) * step``), and where qonnx's float32 sum lands around each tie.
Then it checks that the build's ``rounding_points`` report flags every sample that differs. Prints one line
per layer and per model; writes under a temporary folder only. Needs torch, brevitas and qonnx; about a
minute on one core.

Measured when written: MLP 13/500 samples differ, none in argmax (14 of 32000 first-layer values, all
ties; 32 samples flagged); CNN 369/500, 20 in argmax (103 of 1594 first-layer ties, 2607 of 9965
second-layer; 499 flagged); no differing sample unflagged.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from fpgac.analysis.rounding_points import rounding_points_json
from fpgac.build import BuildOptions, build
from fpgac.interp.simulator import run_fixed
from fpgac.ir.serialize import load_graph

SCALE = float(np.float32(0.1))


def _layers(path: Path) -> list[tuple[onnx.NodeProto, float]]:
    """Each MatMul/Conv and the scale of the Quant after it (through a Relu)."""
    graph = onnx.load(path).graph
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    readers = {i: n for n in graph.node for i in n.input}
    found = []
    for node in graph.node:
        if node.op_type in ("MatMul", "Conv"):
            after = readers[node.output[0]]
            after = readers[after.output[0]] if after.op_type == "Relu" else after
            found.append((node, float(consts[after.input[1]])))
    return found


def _exact_sum(node: onnx.NodeProto, ctx: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    x = ctx[node.input[0]].astype(np.float64)
    codes = np.round(ctx[node.input[1]].astype(np.float64) / SCALE)
    if node.op_type == "MatMul":
        return np.asarray(x @ codes)
    return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(codes), padding=1).numpy()


def measure(family: str, root: Path) -> None:
    from brevitas.quant import SignedBinaryWeightPerTensorConst

    import tests.brevitas_trained as bt

    default = bt._layers

    def layers(weight_bits: int, act_bits: int) -> dict[str, object]:
        kwargs = default(weight_bits, act_bits)
        kwargs["weight"]["weight_quant"] = SignedBinaryWeightPerTensorConst  # type: ignore[index]
        return kwargs

    bt._layers = layers
    try:
        model, data = bt.trained(family, "w1a2")
    finally:
        bt._layers = default
    path = bt.export(model, data.x_test, root / f"{family}.onnx")
    np.save(root / "calib.npy", data.x_train[:64])
    build(path, root / family, BuildOptions(calib=root / "calib.npy", backend="none"))
    graph = load_graph(root / family)
    ctx = bt.qonnx_context(path, data.x_test)
    for node, step in _layers(path):
        s = _exact_sum(node, ctx)
        exact, f32 = s * SCALE, ctx[node.output[0]].astype(np.float64)
        stored = exact.astype(np.float32).astype(np.float64)  # the design's float32 rounding
        design = np.round(stored / step)
        differ = (design != np.round(f32 / step)) & (exact > 0)
        q = s / step
        ties = (q % 5 == 0) & ((q / 5) % 2 == 1) & (exact > 0)
        tie = (np.floor(exact / step) + 0.5) * step
        print(
            f"{family} {node.name}: {differ.sum()} of {differ.size} values rounded differently by qonnx, "
            f"all ties of the 0.1 model: {bool(np.all(ties[differ]))} ({ties.sum()} ties; qonnx's float32 "
            f"sum lands on {(ties & (f32 == tie)).sum()}, above {(ties & (f32 > tie)).sum()}, "
            f"below {(ties & (f32 < tie)).sum()})"
        )
    ours = run_fixed(graph, [data.x_test]).outputs[0]
    theirs = ctx[onnx.load(path).graph.output[0].name]
    differ = np.any(ours != theirs, axis=1)
    flagged = np.array(
        [
            any(r["values"] for r in rounding_points_json(graph, [data.x_test[i : i + 1]]))
            for i in range(len(ours))
        ]
    )
    argmax = ours.argmax(1) != theirs.argmax(1)
    print(
        f"{family}: {differ.sum()} of {len(ours)} samples differ ({argmax.sum()} in argmax), "
        f"{flagged.sum()} flagged, {(differ & ~flagged).sum()} differing samples unflagged"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for family in ("mlp", "cnn"):
            measure(family, Path(folder))


if __name__ == "__main__":
    main()
