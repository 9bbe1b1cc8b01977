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
``fpgac_levels.h`` take whole pixels), and the inputs and output of an elementwise (beat) layer or of a
concatenation over channels (a pixel layer: it copies each input's beats of a pixel in turn) or of a
channel shuffle (a permute layer) carry beats of the same lanes L, and so do those of a scanning pool (it
runs at ``gcd(L_in, L_out)`` lanes over its input's pixels: folded alike, its input's folding makes the
II). So folding is chosen per group of values that these layers join (a residual trunk, a DenseNet
block's concatenations, a chain of pools), as one L for the whole group: the fewest lanes that divide
every member's channels and still make the II for every member; a group with a member that must travel
whole, or with no such L, travels whole (a concatenation of whole pixels).
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
    """``window``, ``beat``, ``pixel``, ``permute`` or ``buffered``: how the io-stream backend runs a layer
    (its kernels read and write whole pixels, one beat at a time, a pixel's beats input after input, a
    pixel's channels reordered, or gather the whole tensor)."""
    kind = OPS[node.op].kind
    if kind is Kind.WINDOW and len(node.inputs[0].shape) in (2, 3):
        return "window"
    if kind is Kind.ELEMENTWISE and all(v.shape == node.output.shape for v in node.inputs):
        return "beat"
    if node.op == "concat" and node.attrs["axis"] == 0 and len(node.output.shape) >= 2:
        return "pixel"  # over channels: every input has the output's pixels
    if node.op == "reshape" and pixels_channels(node.inputs[0]) == pixels_channels(node.output):
        return "beat"  # the same pixels of the same channels: the stream is unchanged
    if node.op == "transpose" and _channel_axes(node.output) > 1:
        return "permute"  # a channel shuffle: each pixel's channels reordered
    return "buffered"


def scans(node: Node) -> bool:
    """Whether an io-stream layer is a scanning pool (``fpgac_pool.h``, :mod:`fpgac.analysis.pool_scan`):
    a max or average pool on a window, not a global average pool (which keeps per-channel sums)."""
    if node.op not in ("max_pool", "avg_pool") or stream_mode(node) != "window":
        return False
    return not (node.op == "avg_pool" and is_global_pool(node.inputs[0].shape, node.attrs))


def pixels_channels(value: Value) -> tuple[int, int]:
    """(P, C): the pixels a value streams as and the channels each carries (the product of its channel
    axes, :func:`_channel_axes`, in row-major order)."""
    shape = value.shape
    channels = math.prod(shape[: _channel_axes(value)]) if len(shape) >= 2 else max(math.prod(shape), 1)
    return value.type.size // channels, channels


def _channel_axes(value: Value) -> int:
    """How many leading axes of a value are channels: one, except for a channel split, where a reshape
    turns (C, *S) into (*A, *S) with the product of A equal to C (ShuffleNet's (g, C/g, H, W)), and a
    transpose of such a value that only permutes A. Such a value streams as the pixels of S, each
    carrying the C channels of A: a channel shuffle is then a reorder within each pixel."""
    node = value.producer
    if node is None or len(value.shape) < 3:
        return 1
    if node.op == "reshape":
        x = node.inputs[0].shape
        split = len(value.shape) - len(x) + 1
        if len(x) >= 2 and split > 1 and value.shape[split:] == x[1:]:
            return split
        return 1
    if node.op == "transpose":
        axes = _channel_axes(node.inputs[0])
        perm = list(node.attrs["perm"])
        return axes if axes > 1 and perm[axes:] == list(range(axes, len(perm))) else 1
    return 1


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
        if stream_mode(node) in ("beat", "pixel", "permute") or scans(node):
            for v in node.inputs:
                parent[root(id(v))] = root(id(node.output))
    members: dict[int, list[Value]] = {}
    for key, value in values.items():
        members.setdefault(root(key), []).append(value)
    folded: dict[str, int] = {}
    for group in members.values():
        lanes = None if any(id(v) in whole for v in group) else _fewest_lanes(group, ii)
        for v in group:
            channels = pixels_channels(v)[1]
            if lanes is not None and channels > lanes:
                folded[v.name] = channels // lanes
    return folded


def _fewest_lanes(group: list[Value], ii: int) -> int | None:
    """The smallest L dividing every member's channels C with ``pixels * C / L <= ii`` for each (the
    most beats that make the II), or None when no L does (the group travels whole)."""
    shapes = [pixels_channels(v) for v in group]
    common = math.gcd(*(c for _, c in shapes))
    return next((n for n in _divisors(common) if all(p * (c // n) <= ii for p, c in shapes)), None)


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
