"""Stream ports carry at most 64 elements and 1024 bits a beat: K, the largest divisor of C that fits."""

from __future__ import annotations

import pytest

from fpgac.backends.vitis.stream import port_channels
from fpgac.ir import Graph, TensorType
from fpgac.ir.types import Fixed


@pytest.mark.parametrize(
    ("shape", "width", "k"),
    [
        ((1000,), 16, 50),  # ResNet-50's logits: 20 beats of 50 (800 bits), not one of 16,000
        ((10,), 16, 10),
        ((130,), 16, 26),
        ((96, 4, 4), 16, 48),  # a pixel of 96 channels: 2 beats
        ((64,), 32, 32),  # 1024 bits
        ((1009,), 8, 1),  # a prime: one value a beat
        ((3, 8, 8), 16, 3),
    ],
)
def test_port_channels(shape: tuple[int, ...], width: int, k: int) -> None:
    graph = Graph("g")
    value = graph.add_input("x", TensorType(shape, Fixed(width, 2)))
    assert port_channels(value) == k
