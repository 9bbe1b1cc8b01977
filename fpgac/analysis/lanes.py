"""Channel folding of io-stream values: how many channels each stream beat carries (FINN's PE/SIMD).

In io stream a layer that works on whole pixels (an elementwise op, a residual add, a pool's output)
instantiates one unit per channel: ResNet-50's adds and ReLUs alone would take several times a zcu104's
LUTs, whatever the multipliers' reuse factors. Folding a value into ``G`` beats of ``L = C / G``
channels a pixel lets the layers at its ends run on L units, one beat a cycle, at ``pixels * G`` cycles
a frame (``fpgac_stream.h``). The fitting balances it as it balances reuse factors: at a target II each
value gets the most beats a pixel that still make the II, ``G`` the largest divisor of C with
``pixels * G <= II``.

Constraints (what the kernels take): graph inputs and outputs travel whole (the ports carry whole
pixels), so do the values a run-time rank-levelled layer reads or writes (its ranked kernels in
``fpgac_levels.h`` take whole pixels), and the inputs and output of an
elementwise (beat) layer are folded alike, and so are those of a scanning pool (it runs at
``gcd(L_in, L_out)`` lanes over its input's pixels: folded alike, its input's folding makes the II), so
folding is chosen per group of values a chain of beat layers and pools joins (a residual trunk is one
group), the least folding of the group's members.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

from fpgac.ir.graph import Graph, Node, Value
from fpgac.ir.levels import is_levelled
from fpgac.ir.opdef import Kind
from fpgac.ir.ops import OPS
from fpgac.ir.shapes import is_global_pool


def stream_mode(node: Node) -> str:
    """``window``, ``beat`` or ``buffered``: how the io-stream backend runs a layer (its kernels read and
    write whole pixels, one beat at a time, or gather the whole tensor)."""
    kind = OPS[node.op].kind
    if kind is Kind.WINDOW and len(node.inputs[0].shape) in (2, 3):
        return "window"
    if kind is Kind.ELEMENTWISE and all(v.shape == node.output.shape for v in node.inputs):
        return "beat"
    return "buffered"


def scans(node: Node) -> bool:
    """Whether an io-stream layer is a scanning pool (``fpgac_pool.h``, :mod:`fpgac.analysis.pool_scan`):
    a max or average pool on a window, not a global average pool (which keeps per-channel sums)."""
    if node.op not in ("max_pool", "avg_pool") or stream_mode(node) != "window":
        return False
    return not (node.op == "avg_pool" and is_global_pool(node.inputs[0].shape, node.attrs))


def pixels_channels(value: Value) -> tuple[int, int]:
    """(P, C): the pixels a value streams as and the channels each carries."""
    shape = value.shape
    channels = shape[0] if len(shape) >= 2 else max(math.prod(shape), 1)
    return value.type.size // channels, channels


def groups_at(graph: Graph, ii: int) -> dict[str, int]:
    """Beats a pixel (G) of every value folded at target ``ii``, by value name (values left whole are
    not named)."""
    whole = {id(v) for v in (*graph.inputs, *graph.outputs)}
    whole |= {id(v) for n in graph.nodes if is_levelled(n) for v in (*n.inputs, n.output)}
    parent: dict[int, int] = {}

    def root(key: int) -> int:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    values: dict[int, Value] = {id(v): v for v in graph.inputs}
    for node in graph.nodes:
        values[id(node.output)] = node.output
        if stream_mode(node) == "beat" or scans(node):
            for v in node.inputs:
                parent[root(id(v))] = root(id(node.output))
    best: dict[int, int] = {}
    for key, value in values.items():
        pixels, channels = pixels_channels(value)
        g = 1 if key in whole else _most_beats(pixels, channels, ii)
        r = root(key)
        best[r] = min(best.get(r, g), g)
    folded = {values[k].name: best[root(k)] for k in values}
    return {name: g for name, g in folded.items() if g > 1}


def _most_beats(pixels: int, channels: int, ii: int) -> int:
    """The largest divisor G of ``channels`` with ``pixels * G <= ii`` (at least 1)."""
    limit = ii // max(pixels, 1)
    return max((g for g in _divisors(channels) if g <= limit), default=1)


@functools.cache
def _divisors(n: int) -> tuple[int, ...]:
    return tuple(g for g in range(1, n + 1) if n % g == 0)


def lanes_of(graph: Graph, groups: Mapping[str, int]) -> dict[str, int]:
    """Channels a beat (L = C / G) of every folded value, as the Vitis emitter takes them."""
    by_name = {v.name: v for v in graph.inputs} | {n.output.name: n.output for n in graph.nodes}
    return {name: pixels_channels(by_name[name])[1] // g for name, g in groups.items()}


def most_folding(graph: Graph) -> int:
    """An II at which every foldable value is folded to one channel a beat."""
    return max((math.prod(pixels_channels(n.output)) for n in graph.nodes), default=1)
