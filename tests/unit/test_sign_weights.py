"""Binary and ternary weights: found from the values, given their narrow exact format, costed without DSPs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpgac.analysis.estimate import estimate
from fpgac.boards import get_board
from fpgac.build import load_model
from fpgac.ir import Fixed, Graph, Overflow, Rounding
from fpgac.ir.sign_weights import SignWeights, sign_weights
from fpgac.passes.quantize import Quantize
from tests.keras_files import Layer, write_h5


def test_sign_weights_are_found_per_output_unit() -> None:
    binary = np.array([[1.0, -1.0, 1.0], [-0.25, 0.25, 0.25]])
    assert sign_weights(binary) == SignWeights(ternary=False, low=-2, high=0)
    assert sign_weights(np.array([[2.0, 0.0, -2.0], [0.0, 0.0, 0.0]])) == SignWeights(True, 1, 1)
    assert sign_weights(np.array([[1.0, -0.5]])) is None  # two magnitudes in one unit
    assert sign_weights(np.array([[0.75, -0.75]])) is None  # not a power of two
    assert sign_weights(np.zeros((2, 3))) is None
    assert SignWeights(False, -2, 0).format() == Fixed(4, 2, True, Rounding.RND_CONV, Overflow.SAT)


def sign_net(folder: Path) -> Path:
    """A float Keras net (no quantizers): a binary (+-0.25) conv, a binary (+-0.5) dense and a ternary
    dense layer."""
    rng = np.random.default_rng(0)
    conv = np.where(rng.normal(size=(3, 3, 2, 4)) >= 0, 0.25, -0.25)
    binary = np.where(rng.normal(size=(64, 16)) >= 0, 0.5, -0.5)
    w = rng.normal(size=(16, 8))
    ternary = (np.abs(w) > 0.5) * np.sign(w)
    layers = [
        Layer(
            "Conv2D",
            "conv",
            {"filters": 4, "kernel_size": [3, 3], "padding": "same", "activation": "relu"},
            [("kernel", conv), ("bias", rng.normal(size=4))],
        ),
        Layer("Flatten", "flat"),
        Layer(
            "Dense",
            "fc1",
            {"units": 16, "activation": "relu"},
            [("kernel", binary), ("bias", rng.normal(size=16))],
        ),
        Layer("Dense", "fc2", {"units": 8}, [("kernel", ternary), ("bias", rng.normal(size=8))]),
    ]
    return write_h5(folder / "signs.h5", layers, (4, 4, 2))


def _quantized(folder: Path) -> Graph:
    x = np.random.default_rng(1).uniform(-1, 1, (64, 4, 4, 2)).astype(np.float32)
    return Quantize(precision=16, calib=(x,)).run(load_model(sign_net(folder)))


def test_binary_and_ternary_layers_get_2_bit_formats_and_no_dsp(tmp_path: Path) -> None:
    design = _quantized(tmp_path)
    layers = [n for n in design.nodes if n.op in ("dense", "conv")]
    assert [n.params["weight"].format.width for n in layers] == [2, 2, 2]
    costs = {layer.name: layer for layer in estimate(design, get_board("zcu104"), "parallel").layers}
    assert [costs[n.name].resources.dsp for n in layers] == [0, 0, 0]
    assert all(costs[n.name].resources.lut > 0 for n in layers)  # the adds and subtracts
