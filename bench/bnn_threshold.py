"""What folding BatchNorm + sign into an integer threshold (``sign_threshold``) changes in binarized nets.

``python bench/bnn_threshold.py`` builds, with and without the ``sign_threshold`` clean-up, the tests'
w1a1 digits MLP and CNN with a BatchNorm before each sign (``tests/brevitas_trained.py``, Brevitas,
``export_qonnx``), and a BNN-PYNQ-like hidden layer (784 bipolar inputs, 256 binary units, BatchNorm with
random statistics, 2,000 random inputs). For each it prints the estimate's DSP, LUT and FF, the latency,
and how many values of its sign activations (``BipolarQuant``s) differ from qonnx's ``execute_onnx``.
The random layer is built at one reuse factor both ways (the fitter spends the affine's freed LUTs on a
lower reuse otherwise).
Writes under a temporary folder only; needs torch, brevitas and qonnx; about a minute on one core.

Measured when written (before -> after, fitted to zcu104): MLP DSP 64 -> 0, LUT 107,068 -> 106,904,
latency 40 -> 33 cycles; CNN DSP 12 -> 0, LUT 9,261 -> 8,229, FF 44,380 -> 15,124, latency 398 -> 258
cycles; both equal qonnx on every sign of the 1,797 digits either way. Random layer at reuse 5: DSP 256 ->
0, LUT 157,169 -> 131,111, FF 143,639 -> 126,131, latency 29 -> 23 cycles; sign values differing from
qonnx 131 -> 0 (of 512,000 hidden, 1,568,000 input signs: the 16-bit affine's rounding).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import fpgac.build as fpgac_build
from fpgac.build import BuildOptions, build
from fpgac.interp.simulator import run_fixed
from fpgac.ir.fixed import to_float
from fpgac.ir.serialize import load_graph
from fpgac.passes.sign_threshold import SignThreshold

DOMAIN = "qonnx.custom_op.general"


def _random_layer(path: Path, rng: np.random.Generator) -> Path:
    f32 = np.float32
    inits = {
        "one": np.array(1.0, f32),
        "w": np.where(rng.normal(size=(784, 256)) >= 0, 1.0, -1.0).astype(f32),
        "gamma": rng.uniform(-1.5, 1.5, 256).astype(f32),
        "beta": rng.normal(0, 1, 256).astype(f32),
        "mean": rng.normal(0, 20, 256).astype(f32),
        "var": rng.uniform(100, 900, 256).astype(f32),
    }
    nodes = [
        helper.make_node("BipolarQuant", ["x", "one"], ["xq"], domain=DOMAIN),
        helper.make_node("MatMul", ["xq", "w"], ["acc"]),
        helper.make_node("BatchNormalization", ["acc", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-4),
        helper.make_node("BipolarQuant", ["bn", "one"], ["y"], domain=DOMAIN),
    ]
    graph = helper.make_graph(
        nodes,
        "fc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def _qonnx_signs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """qonnx's outputs of the activation ``BipolarQuant`` nodes (not the weights'), in graph order."""
    from tests.brevitas_trained import qonnx_context

    context = qonnx_context(path, x)
    names = [n.output[0] for n in onnx.load(path).graph.node if n.op_type == "BipolarQuant"]
    return [context[n] for n in names if np.shape(context[n])[0] == len(x)]


def _measure(label: str, path: Path, x: np.ndarray, calib: Path, folder: Path, reuse: int | None) -> None:
    build(path, folder, BuildOptions(calib=calib, reuse=reuse))
    graph = load_graph(folder)
    report = json.loads((folder / "report.json").read_text())
    total = {k: sum(int(layer["resources"][k]) for layer in report["layers"]) for k in ("dsp", "lut", "ff")}
    result = run_fixed(graph, [x], trace=True)
    signs = [n.output for n in graph.nodes if n.op == "quant" and n.attrs["bits"] == 1 and n.attrs["signed"]]
    theirs = _qonnx_signs(path, x)
    ours = [
        np.asarray(to_float(result.trace[v.name], v.type.format)).reshape(t.shape)
        for v, t in zip(signs, theirs, strict=True)
    ]
    differ = sum(int((o != t).sum()) for o, t in zip(ours, theirs, strict=True))
    of = sum(t.size for t in theirs)
    print(
        f"{label}: {total}, latency {report['latency_cycles']} cycles; sign values differing {differ} of {of}"
    )


def main() -> None:
    from tests.brevitas_trained import BATCHNORM, export, trained

    cleanups = fpgac_build.CLEANUPS
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = []
        for family in ("mlp", "cnn"):
            model, data = trained(family, BATCHNORM)
            path = export(model, data.x_test, root / f"{family}.onnx")
            np.save(root / f"{family}.npy", data.x_train[:64])
            cases.append((family, path, np.concatenate([data.x_train, data.x_test]), None))
        rng = np.random.default_rng(0)
        path = _random_layer(root / "fc.onnx", rng)
        x = rng.choice([-1.0, 1.0], size=(2000, 784)).astype(np.float32)
        np.save(root / "fc.npy", x[:64])
        cases.append(("fc", path, x, 5))
        for name, path, x, reuse in cases:
            for label, passes in (
                ("before", tuple(p for p in cleanups if not isinstance(p, SignThreshold))),
                ("after", cleanups),
            ):
                fpgac_build.CLEANUPS = passes
                _measure(f"{name} {label}", path, x, root / f"{name}.npy", root / f"{name}_{label}", reuse)
        fpgac_build.CLEANUPS = cleanups


if __name__ == "__main__":
    main()
