"""A small CNN with rank levels, and the static graph a level must equal (for the rank level tests)."""

from __future__ import annotations

import dataclasses

import numpy as np

from fpgac.ir import Graph, Param, TensorType
from fpgac.ir.levels import LEVEL_BIAS
from fpgac.passes.lowrank import LowRank
from fpgac.passes.quantize import Quantize

LEVELS = "1,0.5,0.3,0.2"
WINDOW = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}


def small_cnn(seed: int = 0) -> Graph:
    """conv 2 -> 8, relu, conv 8 -> 8, relu, flatten, dense -> 10, relu, dense -> 4 on 6 x 6 inputs (random
    weights); the last dense layer is too small to split, so it gets only a bias per level."""
    rng = np.random.default_rng(seed)
    graph = Graph("small_cnn")
    x = graph.add_input("x", TensorType((2, 6, 6)))

    def param(*shape: int) -> Param:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return Param((rng.normal(size=shape) / np.sqrt(fan_in)).astype(np.float32))

    c1 = graph.add(
        "conv", [x], name="c1", attrs=WINDOW, params={"weight": param(8, 2, 3, 3), "bias": param(8)}
    )
    r1 = graph.add("relu", [c1.output], name="r1")
    c2 = graph.add(
        "conv", [r1.output], name="c2", attrs=WINDOW, params={"weight": param(8, 8, 3, 3), "bias": param(8)}
    )
    r2 = graph.add("relu", [c2.output], name="r2")
    flat = graph.add("reshape", [r2.output], name="flat", attrs={"shape": [288]})
    fc = graph.add("dense", [flat.output], name="fc", params={"weight": param(10, 288), "bias": param(10)})
    r3 = graph.add("relu", [fc.output], name="r3")
    head = graph.add("dense", [r3.output], name="head", params={"weight": param(4, 10), "bias": param(4)})
    graph.set_outputs([head.output])
    return graph


def calib(samples: int = 64, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(samples, 2, 6, 6)).astype(np.float32)


def levelled(levels: str = LEVELS, data: bool = True) -> Graph:
    """The small CNN with rank levels, quantized (calibrated on :func:`calib`)."""
    batch = (calib(),)
    graph = LowRank(levels=levels, calib=batch if data else None).run(small_cnn())
    return Quantize(calib=batch).run(graph)


def truncated(graph: Graph, level: int) -> Graph:
    """A static graph with each factor cut to its rank at ``level`` and the level's bias, same formats."""
    static = graph.clone()
    for node in static.nodes:
        if "ranks_out" in node.attrs:
            rank = node.attrs.pop("ranks_out")[level]
            weight = node.params["weight"]
            node.params["weight"] = Param(weight.data[:rank].copy(), weight.format)
            shape = (rank, *node.output.shape[1:]) if node.op == "conv" else (rank,)
            node.output.type = dataclasses.replace(node.output.type, shape=shape)
        if "ranks_in" in node.attrs:
            rank = node.attrs.pop("ranks_in")[level]
            weight = node.params["weight"]
            node.params["weight"] = Param(weight.data[:, :rank].copy(), weight.format)
        if LEVEL_BIAS in node.params:
            biases = node.params.pop(LEVEL_BIAS)
            node.params["bias"] = Param(biases.data[level].copy(), biases.format)
    return static
