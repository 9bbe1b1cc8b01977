"""fpgac against QKeras itself: a QKeras model saved by QKeras is read, simulated bit-accurately and
compared with QKeras's own predictions, and its quantized weights with QKeras's quantizers.

Needs the ``qkeras`` extra (TensorFlow, tf_keras and QKeras 0.9); skipped where it is not installed (CI).
Measured where it installs (QKeras 0.9.0, TensorFlow 2.21): every weight identical, every output
identical (256 samples).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qkeras_model(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # QKeras builds on Keras 2 (tf_keras)
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, QDepthwiseConv2D
    from qkeras.quantizers import binary, quantized_bits, ternary

    keras = tf.keras
    rng = np.random.default_rng(0)
    inp = keras.Input((8, 8, 2), name="x")
    h = QActivation("quantized_bits(8, 0, alpha=1)", name="qin")(inp)
    h = QConv2D(
        4,
        3,
        padding="same",
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(8, 2, alpha=1),
        name="c1",
    )(h)
    h = QActivation("quantized_relu(4, 1)", name="r1")(h)
    h = QDepthwiseConv2D(
        3,
        depth_multiplier=2,
        depthwise_quantizer=ternary(alpha="auto_po2"),
        bias_quantizer=quantized_bits(8, 1, 1, alpha=1),
        name="dw",
        activation="quantized_bits(8, 2, 1, alpha=1)",
    )(h)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = QDense(
        16,
        kernel_quantizer=binary(alpha="auto_po2"),
        bias_quantizer=quantized_bits(8, 3, alpha=1),
        activation="quantized_tanh(6)",
        name="fc",
    )(h)
    h = QDense(
        8,
        kernel_quantizer=quantized_bits(4, 0, alpha="auto_po2"),
        bias_quantizer=quantized_bits(6, 2, keep_negative=False, alpha=1),
        name="fc2",
        activation="quantized_relu(6, 2)",
    )(h)
    y = QDense(
        3,
        kernel_quantizer=quantized_bits(8, 0, alpha=1),
        bias_quantizer=quantized_bits(8, 0, alpha=1),
        activation="quantized_sigmoid(5)",
        name="out",
    )(h)
    model = keras.Model(inp, y)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in weights])
    folder = tmp_path_factory.mktemp("qkeras")
    model.save(folder / "qcnn.h5")
    (folder / "qcnn.json").write_text(model.to_json())
    model.save_weights(folder / "qcnn_weights.h5")
    x = rng.uniform(-1.2, 1.2, (256, 8, 8, 2)).astype("float32")
    quantized = {}
    for layer in model.layers:
        if hasattr(layer, "get_quantizers"):
            for i, (q, w) in enumerate(zip(layer.get_quantizers(), layer.get_weights(), strict=False)):
                if q is not None:
                    quantized[f"{layer.name}/{i}"] = np.array(q(tf.constant(w)))
    return folder, x, model.predict(x, verbose=0), quantized


def test_weights_equal_qkeras_quantizers(
    qkeras_model: tuple[Path, np.ndarray, np.ndarray, dict[str, np.ndarray]],
) -> None:
    from fpgac.frontend.keras_files import read_keras
    from fpgac.frontend.keras_quantizers import parse_quantizer, quantize_weight

    folder, _, _, quantized = qkeras_model
    files = read_keras(folder / "qcnn.h5", None, "qcnn.h5")
    configs = {layer["name"]: layer["config"] for layer in files.config["config"]["layers"]}
    keys = {"kernel": "kernel_quantizer", "bias": "bias_quantizer", "depthwise_kernel": "depthwise_quantizer"}
    for name, expected in quantized.items():
        layer, index = name.split("/")
        role, weight = files.weights[layer][int(index)]
        q = parse_quantizer(configs[layer][keys[str(role)]])
        assert q is not None
        values, fmt = quantize_weight(q, weight)
        np.testing.assert_array_equal(values, expected.astype(np.float64), err_msg=name)
        assert fmt is not None


@pytest.mark.parametrize("form", ["h5", "split"])
def test_simulation_equals_qkeras_predictions(
    qkeras_model: tuple[Path, np.ndarray, np.ndarray, dict[str, np.ndarray]], form: str
) -> None:
    from fpgac.build import load_model
    from fpgac.interp.interpreter import run_float
    from fpgac.interp.simulator import run_fixed
    from fpgac.passes.quantize import Quantize

    folder, x, expected, _ = qkeras_model
    graph = (
        load_model(folder / "qcnn.h5")
        if form == "h5"
        else load_model(folder / "qcnn.json", folder / "qcnn_weights.h5")
    )
    np.testing.assert_array_equal(run_float(graph, x)[0], expected)
    design = Quantize(precision=16, calib=(x[:64],)).run(graph)
    np.testing.assert_array_equal(run_fixed(design, x).outputs[0], expected.astype(np.float64))
