"""The reuse factors hls4ml accepts, as the fitting needs them: the largest at or below a factor.

The fitting (:mod:`fpgac.analysis.fit`) gives each layer the largest reuse factor that keeps it within
the design's II. fpgac's Vitis kernels take any factor; hls4ml's Resource kernels of dense and conv
layers take only some (``FPGABackend._validate_reuse_factor``, and :func:`~.emitter.max_reuse`), and
compute wrong outputs with others. For hls4ml builds the fitting therefore rounds each factor *down* to
one hls4ml accepts (rounding up would slow the layer past the design's II), so the emitter has nothing
left to move. Every factor hls4ml accepts divides ``n_in * n_out``, so the candidates are its divisors.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from functools import cache

from fpgac.backends.hls4ml.emitter import _MULT_SIZE, Design, _layer, max_reuse, valid_reuse
from fpgac.ir.graph import Graph


def accepted_reuse(graph: Graph) -> Callable[[str, str, int], int]:
    """``(io, layer name, factor) ->`` the largest factor at most ``factor`` hls4ml accepts for the
    layer in that io style (the factor itself for layers hls4ml does not constrain). Only dense and 2-d
    conv layers are asked about: an op hls4ml lacks is for the lowering to refuse, with its one line."""
    nodes = {
        node.name: node
        for node in graph.nodes
        if node.op == "dense" or (node.op == "conv" and node.inputs[0].type.rank == 3)  # hls4ml's Conv2D
    }

    @cache
    def accepted(io: str, name: str) -> tuple[int, ...]:
        layer = _layer(nodes[name], Design())[0]
        if layer["class_name"] not in _MULT_SIZE:
            return ()
        n_in, n_out = _MULT_SIZE[layer["class_name"]](layer)
        top = max_reuse(layer, io)
        return tuple(r for r in _divisors(n_in * n_out) if r <= top and valid_reuse(layer, r, io) == r)

    def rule(io: str, name: str, factor: int) -> int:
        factors = accepted(io, name) if name in nodes and factor > 1 else ()
        return factors[max(bisect.bisect_right(factors, factor) - 1, 0)] if factors else factor

    return rule


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})
