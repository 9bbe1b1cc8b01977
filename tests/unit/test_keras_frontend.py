"""The Keras/QKeras frontend: QKeras's quantizers as formats, exactly, and models from every file form.

The references are numpy transcriptions of ``qkeras/quantizers.py``'s formulas (``p = x * m / m_i``,
``tf.round`` = round half to even, ``clip``), written here independently of the frontend's format-based
code; a QKeras model's simulation must equal the transcription of its forward pass bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpgac.build import load_model
from fpgac.frontend.context import FrontendError
from fpgac.frontend.keras_quantizers import (
    Quantizer,
    QuantizerError,
    activation_format,
    parse_quantizer,
    quantize_weight,
)
from fpgac.interp.interpreter import run_float
from fpgac.interp.simulator import run_fixed
from fpgac.ir import fixed
from fpgac.ir.types import Fixed, Overflow, Rounding
from fpgac.passes.quantize import Quantize
from tests.keras_files import Layer, quantizer, write_h5, write_keras3, write_split


# -- numpy transcriptions of QKeras's quantizers ---------------------------------------------------
def qk_bits(
    x: np.ndarray, bits: int, integer: int, symmetric: int = 0, keep_negative: bool = True
) -> np.ndarray:
    unsigned = bits - int(keep_negative)
    if unsigned == 0:
        xq = np.sign(x)
        return xq + (1.0 - np.abs(xq))
    m, m_i = 2.0**unsigned, 2.0**integer
    return m_i * np.clip(np.round(x * m / m_i), int(keep_negative) * (-m + symmetric), m - 1) / m


def qk_relu(x: np.ndarray, bits: int, integer: int) -> np.ndarray:
    m, m_i = 2.0**bits, 2.0**integer
    return m_i * np.clip(np.round(x * m / m_i) / m, 0.0, 1.0 - 1.0 / m)


def qk_tanh(x: np.ndarray, bits: int, symmetric: bool = False) -> np.ndarray:
    m = 2.0 ** (bits - 1)
    p = 2.0 * np.clip(0.5 * x + 0.5, 0.0, 1.0) - 1.0
    return np.clip(np.round(p * m) / m, -1.0 + symmetric / m, 1.0 - 1.0 / m)


def qk_sigmoid(x: np.ndarray, bits: int, symmetric: bool = False) -> np.ndarray:
    m = 2.0**bits
    p = np.clip(0.5 * x + 0.5, 0.0, 1.0)
    return np.clip(np.round(p * m) / m, symmetric / m, 1.0 - 1.0 / m)


def representable(values: np.ndarray, fmt: Fixed) -> bool:
    return bool(np.array_equal(fixed.to_float(fixed.quantize(values, fmt), fmt), values))


# -- quantizers ------------------------------------------------------------------------------------
BITS_CASES = [
    (8, 0, 0, True),
    (8, 0, 1, True),
    (4, 2, 0, True),
    (6, 1, 0, False),
    (3, 0, 1, False),
    (2, 0, 0, True),
    (1, 0, 0, True),  # the sign
    (5, -2, 0, True),
    (16, 6, 1, True),
]


@pytest.mark.parametrize(("bits", "integer", "symmetric", "keep_negative"), BITS_CASES)
def test_quantized_bits_values_and_format_are_qkeras(
    bits: int, integer: int, symmetric: int, keep_negative: bool
) -> None:
    rng = np.random.default_rng(bits * 7 + integer)
    span = 2.0 ** max(integer, 0) * 1.5
    x = np.concatenate([rng.uniform(-span, span, 2000), [0.0, 0.5, -0.5, 1e3, -1e3]]).astype(np.float32)
    ties = np.float32(2.0 ** (integer - bits + int(keep_negative))) * (np.arange(-9, 10) + 0.5)
    x = np.concatenate([x, ties])  # half-way between grid points: round half to even
    q = Quantizer(
        "quantized_bits",
        {
            "bits": bits,
            "integer": integer,
            "symmetric": symmetric,
            "keep_negative": keep_negative,
            "alpha": 1,
        },
    )
    values, fmt = quantize_weight(q, x)
    expected = qk_bits(x.astype(np.float64), bits, integer, symmetric, keep_negative)
    np.testing.assert_array_equal(values, expected)
    assert fmt is not None and representable(values, fmt)
    assert fmt.signed == keep_negative or bits == 1
    if bits > 1:  # the format is the quantizer's grid: casting any x into it is the quantizer
        assert fmt.width == bits and fmt.rounding is Rounding.RND_CONV
        cast = fixed.to_float(fixed.quantize(x.astype(np.float64), fmt), fmt)
        np.testing.assert_array_equal(cast, expected)


def test_hls4ml_874_weights_keep_their_values() -> None:
    """quantized_bits(8, 0, alpha=1) holds 0.3203125 = 41/128 exactly: ap_fixed<8,1>, not <8,0>."""
    q = parse_quantizer("quantized_bits(8, 0, alpha=1)")
    assert q is not None
    w = np.array([0.3203125, -0.3203125, 0.9921875, -1.0, 0.0078125], dtype=np.float32)
    values, fmt = quantize_weight(q, w)
    assert fmt == Fixed(8, 1, True, Rounding.RND_CONV, Overflow.SAT)
    np.testing.assert_array_equal(values, w)


def test_activation_formats() -> None:
    relu = activation_format(Quantizer("quantized_relu", {"bits": 4, "integer": 1}))
    assert relu == Fixed(4, 1, False, Rounding.RND_CONV, Overflow.SAT)
    tanh = activation_format(Quantizer("quantized_tanh", {"bits": 6, "symmetric": True}))
    assert tanh == Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT_SYM)
    x = np.linspace(-3, 3, 4001)
    relu_cast = fixed.to_float(fixed.quantize(np.maximum(x, 0), relu), relu)
    np.testing.assert_array_equal(relu_cast, qk_relu(x, 4, 1))
    np.testing.assert_array_equal(fixed.to_float(fixed.quantize(x, tanh), tanh), qk_tanh(x, 6, True))


def test_quantizers_parse_from_strings_and_dicts() -> None:
    text = parse_quantizer("quantized_bits(4, 0, 1, keep_negative=False, alpha='auto_po2')")
    assert text == Quantizer(
        "quantized_bits",
        {"bits": 4, "integer": 0, "symmetric": 1, "keep_negative": False, "alpha": "auto_po2"},
    )
    assert parse_quantizer(quantizer("ternary", alpha=None, threshold=0.5)) == Quantizer(
        "ternary", {"alpha": None, "threshold": 0.5}
    )
    assert parse_quantizer(None) is None
    with pytest.raises(QuantizerError, match="not supported"):
        parse_quantizer("quantized_po2(4)")
    with pytest.raises(QuantizerError, match="literals"):
        parse_quantizer("quantized_bits(__import__('os'))")


def test_binary_and_ternary_weights() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.4, (6, 5)).astype(np.float32)
    w[0, 0] = 0.0
    values, fmt = quantize_weight(Quantizer("binary", {}), w)
    np.testing.assert_array_equal(values, np.where(w >= 0, 1.0, -1.0))
    assert fmt == Fixed(2, 2, True, Rounding.RND_CONV, Overflow.SAT)
    values, fmt = quantize_weight(Quantizer("ternary", {"threshold": 0.3}), w)
    np.testing.assert_array_equal(values, (np.abs(w) >= np.float32(0.3)) * np.sign(w))
    assert fmt is not None and representable(values, fmt)
    # auto_po2: one power-of-two scale per output channel (last axis), and one format holds them all
    values, fmt = quantize_weight(Quantizer("binary", {"alpha": "auto_po2"}), w)
    scales = np.abs(values).max(axis=0)
    assert np.all(np.log2(scales) == np.round(np.log2(scales)))
    np.testing.assert_array_equal(values, np.where(w >= 0, 1.0, -1.0) * scales)
    assert fmt is not None and representable(values, fmt)


def test_quantized_bits_auto_po2_is_per_channel_powers_of_two() -> None:
    rng = np.random.default_rng(4)
    w = (rng.normal(0, 1, (3, 3, 2, 4)) * np.array([0.05, 0.3, 1.0, 4.0])).astype(np.float32)
    q = Quantizer("quantized_bits", {"bits": 4, "integer": 0, "alpha": "auto_po2"})
    values, fmt = quantize_weight(q, w)
    assert fmt is not None and representable(values, fmt)
    for c in range(4):
        lsb = np.min(np.abs(values[..., c])[values[..., c] != 0])
        steps = values[..., c] / lsb
        assert np.all(steps == np.round(steps)) and np.abs(steps).max() <= 7  # 4 bits, symmetric


# -- models ----------------------------------------------------------------------------------------
def _qkeras_cnn(rng: np.random.Generator) -> list[Layer]:
    w = rng.normal(0, 0.4, (3, 3, 2, 4))
    w.flat[0] = 0.3203125
    return [
        Layer("QActivation", "qin", {"activation": "quantized_bits(8, 0, alpha=1)"}),
        Layer(
            "QConv2D",
            "c1",
            {
                "filters": 4,
                "kernel_size": [3, 3],
                "padding": "same",
                "kernel_quantizer": quantizer("quantized_bits", bits=6, integer=0, alpha=1),
                "bias_quantizer": quantizer("quantized_bits", bits=8, integer=2),
            },
            [("kernel", w), ("bias", rng.normal(0, 0.3, 4))],
        ),
        Layer("QActivation", "r1", {"activation": "quantized_relu(4, 1)"}),
        Layer(
            "QDepthwiseConv2D",
            "dw",
            {
                "kernel_size": [3, 3],
                "depth_multiplier": 2,
                "padding": "valid",
                "depthwise_quantizer": quantizer("ternary", threshold=0.2),
                "bias_quantizer": quantizer("quantized_bits", bits=8, integer=1, symmetric=1),
                "activation": "quantized_bits(8, 2, 1)",
            },
            [("depthwise_kernel", rng.normal(0, 0.4, (3, 3, 4, 2))), ("bias", rng.normal(0, 0.3, 8))],
        ),
        Layer("MaxPooling2D", "pool", {"pool_size": [2, 2], "padding": "valid"}),
        Layer("Flatten", "flat"),
        Layer(
            "QDense",
            "fc",
            {
                "units": 6,
                "activation": "quantized_tanh(6)",
                "kernel_quantizer": quantizer("binary", alpha="auto_po2"),
                "bias_quantizer": quantizer("quantized_bits", bits=8, integer=3, keep_negative=True),
            },
            [("kernel", rng.normal(0, 0.2, (32, 6))), ("bias", rng.normal(0, 0.5, 6))],
        ),
        Layer(
            "QDense",
            "out",
            {
                "units": 3,
                "activation": "quantized_sigmoid(5, symmetric=True)",
                "kernel_quantizer": "quantized_bits(4, 0, alpha='auto_po2')",
                "bias_quantizer": quantizer("quantized_bits", bits=6, integer=2, keep_negative=False),
            },
            [("kernel", rng.normal(0, 0.6, (6, 3))), ("bias", rng.uniform(0, 1, 3))],
        ),
    ]


def _conv_nhwc(x: np.ndarray, k: np.ndarray, pad: int) -> np.ndarray:
    """Cross-correlation of NHWC ``x`` with a (kh, kw, C, F) kernel, stride 1."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = k.shape[:2]
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], oh, ow, k.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,cf->nhwf", x[:, i : i + oh, j : j + ow], k[i, j])
    return out


def _qkeras_cnn_reference(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    """The model's forward pass as QKeras computes it (exact float64 sums), quantizers transcribed."""
    by = {layer.name: dict(layer.weights) for layer in layers}
    q = {layer.name: layer.config for layer in layers}

    def wq(name: str, key: str, role: str) -> np.ndarray:
        quant = parse_quantizer(q[name][key])
        assert quant is not None
        return quantize_weight(quant, np.asarray(by[name][role], np.float32))[0]

    def bias(name: str) -> np.ndarray:
        return by[name]["bias"].astype(np.float32).astype(np.float64)

    h = qk_bits(x.astype(np.float64), 8, 0)
    h = _conv_nhwc(h, qk_bits(by["c1"]["kernel"].astype(np.float32).astype(np.float64), 6, 0), 1)
    h = qk_relu(h + qk_bits(bias("c1"), 8, 2), 4, 1)
    k = wq("dw", "depthwise_quantizer", "depthwise_kernel")  # (3, 3, 4, 2): channel c -> 2c, 2c + 1
    dense_k = np.zeros((3, 3, 4, 8))
    for c in range(4):
        for m in range(2):
            dense_k[:, :, c, 2 * c + m] = k[:, :, c, m]
    h = qk_bits(_conv_nhwc(h, dense_k, 0) + qk_bits(bias("dw"), 8, 1, 1), 8, 2, 1)
    n = h.shape[0]
    h = h.reshape(n, 2, 2, 2, 2, 8).max(axis=(2, 4))  # 2x2 max pool
    h = h.reshape(n, -1)
    h = qk_tanh(h @ wq("fc", "kernel_quantizer", "kernel") + qk_bits(bias("fc"), 8, 3), 6)
    b = qk_bits(bias("out"), 6, 2, 0, False)
    return qk_sigmoid(h @ wq("out", "kernel_quantizer", "kernel") + b, 5, True)


def test_qkeras_cnn_simulates_as_the_transcription_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    layers = _qkeras_cnn(rng)
    path = write_h5(tmp_path / "qcnn.h5", layers, (6, 6, 2))
    x = rng.uniform(-1.2, 1.2, (64, 6, 6, 2)).astype(np.float32)
    graph = load_model(path)
    # No transpose left: the input's is the graph's boundary (NHWC arrays), Flatten -> Dense permutes.
    assert "transpose" not in [n.op for n in graph.nodes]
    assert graph.input_layouts == {graph.inputs[0].name: (1, 2, 0)}
    expected = _qkeras_cnn_reference(layers, x)
    np.testing.assert_array_equal(run_float(graph, x)[0], expected.astype(np.float32))
    design = Quantize(precision=12, calib=(x,)).run(graph)
    result = run_fixed(design, x)
    np.testing.assert_array_equal(result.outputs[0], expected)
    dense = design.node("fc/linear")
    assert dense.params["weight"].format.width > 2  # binary times per-unit powers of two: one format
    assert design.node("c1").params["weight"].format == Fixed(6, 1, True, Rounding.RND_CONV, Overflow.SAT)


def test_file_forms_give_one_graph(tmp_path: Path) -> None:
    from fpgac.ir.printer import print_graph

    layers = _qkeras_cnn(np.random.default_rng(1))
    h5 = print_graph(load_model(write_h5(tmp_path / "m.h5", layers, (6, 6, 2))))
    arch, weights = write_split(tmp_path, layers, (6, 6, 2))
    split = print_graph(load_model(arch, weights))
    k3 = print_graph(load_model(write_keras3(tmp_path / "m.keras", layers, (6, 6, 2))))
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("meta")]  # noqa: E731
    assert strip(h5) == strip(split) == strip(k3)


def test_sequential_model_with_the_input_shape_on_its_first_layer(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    k, b = rng.normal(0, 0.5, (4, 3)), rng.normal(0, 0.1, 3)
    layers = [
        Layer("Dense", "fc", {"units": 3, "activation": "tanh"}, [("kernel", k), ("bias", b)]),
        Layer("Softmax", "prob", {"axis": -1}),
    ]
    graph = load_model(write_h5(tmp_path / "seq.h5", layers, (4,), sequential=True))
    x = rng.normal(0, 1, (8, 4)).astype(np.float32)
    z = np.exp(np.tanh(x @ k + b))
    np.testing.assert_allclose(run_float(graph, x)[0], z / z.sum(axis=1, keepdims=True), rtol=1e-5)
    assert [v.name for v in graph.outputs] == ["prob"]


def test_plain_keras_functional_model_matches_numpy(tmp_path: Path) -> None:
    """Conv1D (causal), BatchNormalization, Add, Concatenate, global pooling, Dense, softmax; NWC data."""
    rng = np.random.default_rng(2)
    k1, b1 = rng.normal(0, 0.5, (3, 3, 4)), rng.normal(0, 0.1, 4)
    gamma, beta = rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, 4)
    mean, var = rng.normal(0, 0.1, 4), rng.uniform(0.5, 2, 4)
    kd, bd = rng.normal(0, 0.5, (8, 3)), rng.normal(0, 0.1, 3)
    layers = [
        Layer(
            "Conv1D",
            "conv",
            {"filters": 4, "kernel_size": [3], "padding": "causal", "activation": "relu"},
            [("kernel", k1), ("bias", b1)],
        ),
        Layer(
            "BatchNormalization",
            "bn",
            {"axis": -1, "epsilon": 1e-3},
            [("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", var)],
        ),
        Layer("Add", "add", {}, inbound=["conv", "bn"]),
        Layer("GlobalAveragePooling1D", "gap", {}, inbound=["add"]),
        Layer("GlobalMaxPooling1D", "gmp", {}, inbound=["bn"]),
        Layer("Concatenate", "cat", {"axis": -1}, inbound=["gap", "gmp"]),
        Layer("Dropout", "drop", {"rate": 0.5}, inbound=["cat"]),
        Layer(
            "Dense",
            "logits",
            {"units": 3, "activation": "softmax"},
            [("kernel", kd), ("bias", bd)],
            inbound=["drop"],
        ),
    ]
    path = write_h5(tmp_path / "plain.h5", layers, (10, 3))
    x = rng.normal(0, 1, (16, 10, 3)).astype(np.float32)
    xp = np.pad(x, ((0, 0), (2, 0), (0, 0)))
    conv = np.maximum(sum(xp[:, i : i + 10] @ k1[i] for i in range(3)) + b1, 0)
    bn = (conv - mean) / np.sqrt(var + 1e-3) * gamma + beta
    feats = np.concatenate([(conv + bn).mean(axis=1), bn.max(axis=1)], axis=1)
    z = feats @ kd + bd
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    graph = load_model(path)
    np.testing.assert_allclose(run_float(graph, x)[0], expected, rtol=1e-4, atol=1e-5)
    assert [v.name for v in graph.outputs] == ["logits"]


def test_conv2d_same_stride_two_pads_like_tensorflow(tmp_path: Path) -> None:
    """TF's SAME with stride 2 on an even size pads the extra row at the end; the output keeps NHWC (the
    graph's boundary: no transpose layer, NHWC arrays)."""
    rng = np.random.default_rng(5)
    k = rng.normal(0, 0.5, (3, 3, 1, 2))
    layers = [
        Layer(
            "Conv2D",
            "conv",
            {"filters": 2, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same", "use_bias": False},
            [("kernel", k)],
        )
    ]
    x = rng.normal(0, 1, (4, 6, 6, 1)).astype(np.float32)
    graph = load_model(write_h5(tmp_path / "s2.h5", layers, (6, 6, 1)))
    assert [n.op for n in graph.nodes] == ["conv"] and graph.output_layouts == {0: (1, 2, 0)}
    out = run_float(graph, x)[0]
    full = _conv_nhwc(np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))), k, 0)  # pads 0 before, 1 after
    np.testing.assert_allclose(out, full[:, ::2, ::2], rtol=1e-5, atol=1e-5)


def test_errors_name_the_file_and_layer(tmp_path: Path) -> None:
    layers = [Layer("LSTM", "lstm", {"units": 3})]
    with pytest.raises(FrontendError, match=r"m\.h5: layer 'lstm' \(LSTM\) is not supported"):
        load_model(write_h5(tmp_path / "m.h5", layers, (4, 2)))
    bad = [Layer("QActivation", "qa", {"activation": "quantized_relu(4, 0, 0, 0.25)"})]
    with pytest.raises(FrontendError, match=r"layer 'qa' \(QActivation\).*negative_slope"):
        load_model(write_h5(tmp_path / "n.h5", bad, (4,)))
    dense = Layer("Dense", "d", {"units": 2}, [("kernel", np.ones((4, 2))), ("bias", np.zeros(2))])
    arch, _ = write_split(tmp_path, [dense], (4,))
    with pytest.raises(FrontendError, match="--keras-weights"):
        load_model(arch)
    broken = [
        Layer(
            "Conv2D",
            "conv",
            {"filters": 2, "use_bias": False, "strides": "x"},
            [("kernel", np.ones((3, 3, 2, 2)))],
        )
    ]
    with pytest.raises(FrontendError, match=r"b\.h5: layer 'conv' \(Conv2D\): cannot read the Keras config"):
        load_model(write_h5(tmp_path / "b.h5", broken, (4, 4, 2)))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(FrontendError, match=r"junk\.h5: cannot read Keras model"):
        load_model(tmp_path / "junk.h5")


def test_cli_inspect_and_sim_read_the_split_form(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fpgac.cli import cli

    rng = np.random.default_rng(6)
    layers = [
        Layer(
            "QDense",
            "fc",
            {"units": 2, "kernel_quantizer": "quantized_bits(4, 0, alpha=1)"},
            [("kernel", rng.normal(0, 0.5, (4, 2))), ("bias", np.zeros(2))],
        )
    ]
    arch, weights = write_split(tmp_path, layers, (4,))
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect", str(arch), "--keras-weights", str(weights)])
    assert result.exit_code == 0, result.output
    assert "fc" in result.output and "dense" in result.output
    np.save(tmp_path / "x.npy", rng.normal(0, 1, (3, 4)).astype(np.float32))
    result = runner.invoke(
        cli,
        [
            "sim",
            str(arch),
            "--keras-weights",
            str(weights),
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "y.npy"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "y.npy").shape == (3, 2)


def test_readme_lists_exactly_the_supported_layers() -> None:
    from fpgac.frontend.keras import SUPPORTED_LAYERS

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Keras and QKeras models", 1)[1].split("\n## ", 1)[0]
    listed = section.split(f"These {len(SUPPORTED_LAYERS)} layers are read:", 1)[1].split(".\n", 1)[0]
    assert sorted(" ".join(listed.split()).split(", ")) == SUPPORTED_LAYERS
