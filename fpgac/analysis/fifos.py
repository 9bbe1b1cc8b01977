"""The stream FIFOs of an io-stream design: how deep each must be, and what it costs.

Layers of a dataflow region talk through ``hls::stream`` FIFOs (:mod:`fpgac.backends.vitis.stream`): one
from every layer to its consumer, ``SHALLOW_DEPTH`` (2) beats deep, and, for a value read by several
layers (a residual skip, DenseNet's concatenation inputs, Inception's branches), a fork that writes each
beat into one FIFO per use. A fork runs at the pace of its slowest output: when one of its FIFOs is full it
stops feeding the others. So where two uses of a value meet again (a join: a residual add, a
concatenation), the FIFO of the branch that arrives early must hold what the other branch swallows before
its first output reaches the join, else the join waits for the late branch, which waits for the fork,
which waits for the join: a deadlock.

The rule
========
Each layer lags its input by a fraction of a frame (:func:`lag`): a sliding window (conv, pool) emits
output row ``r`` once its input row ``last_row(r)`` has arrived (``fpgac_stream.h``), so it lags by the
largest ``(last_row(r) + 1) / H - r / OH`` (2 / H for a 3x3 window with one row of padding; a 1-d window,
which reads its whole row first, and a global pool lag a whole frame); a layer that gathers its whole
input (buffered: dense, softmax, transpose, ...) lags a frame; beat, pixel and permute layers one
pixel. A path's lag is the sum of its layers' (the longest path's, where paths fork and meet again).
For every layer ``J`` that two uses of a value reach, the FIFO of use ``i`` holds the longest lag of
another use's paths to ``J`` less the longest lag of its own (the early branch's surplus: its reader
takes the value at the pace the join allows it), in beats of the value (the lag times the value's
P x G beats a frame), plus one pixel's beats per use and ``SHALLOW_DEPTH`` (a concatenation reads its
inputs' beats of a pixel in turn), and never more than the whole tensor (which always suffices: the
rule the backend used before). Other FIFOs stay 2 deep.

C-simulation cannot check it: its FIFOs are unbounded and its processes run one after another. That the
chosen depths are free of deadlock is reasoned as above, not cosimulated.

The cost
========
A FIFO of ``depth`` beats of ``L x bits`` is a shift register in LUTs (SRL32: ``width x ceil(depth / 32)``
LUTs) when it holds under ``BRAM_MIN_BITS``, else block RAM by the 18-Kbit block's aspect ratios (as
:func:`~fpgac.analysis.estimate.memory_cost`). Each FIFO is charged to the layer that writes it (a graph
input's fork: to the input's first reader).

Spilling
========
A deep fork FIFO holds a good part of a frame (ResNet's skips, DenseNet's and Inception's concatenation
inputs): hundreds of block RAMs in all, while the bits it holds cross it once a frame. The fitting
(:mod:`fpgac.analysis.fit`) may *spill* it to external memory (``fpgac_spill.h``): the fork's beats are
written in bursts to a region of the value's size, and read back in bursts toward the reader once each
burst has landed, so the FIFO holds as much as it must (the region is a whole frame) for two burst-deep
FIFOs on chip and the value's bits twice a frame of memory traffic. A spill is named by its
:attr:`Fifo.key`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from fpgac.analysis.lanes import pixels_channels, stream_mode
from fpgac.ir.graph import Graph, Node, Value
from fpgac.ir.types import Fixed

SHALLOW_DEPTH = 2  # a FIFO between a layer and its only reader: one beat in flight, one being written
SRL_DEPTH = 32  # an SRLC32E shift register: 32 bits a LUT


@dataclass(frozen=True)
class Fifo:
    """One FIFO of the top function: the value it carries, the layer charged for it (its writer) and,
    for a fork's output to a layer (``reader`` and ``index``: the layer and its input), the frame
    fraction the rule says it holds (0: a layer's own output FIFO)."""

    value: Value
    writer: str
    reader: str = ""
    index: int = 0
    lag: Fraction = Fraction(0)
    uses: int = 1

    @property
    def key(self) -> str:
        """``value->reader[input]``: a fork output's name in decisions and reports (a spill's)."""
        return f"{self.value.name}->{self.reader}[{self.index}]"

    def depth(self, groups: int = 1) -> int:
        """Beats deep, the value folded into ``groups`` beats a pixel (see the module docstring)."""
        if not self.reader:
            return SHALLOW_DEPTH
        beats = pixels_channels(self.value)[0] * groups
        return min(beats, math.ceil(self.lag * beats) + groups * self.uses + SHALLOW_DEPTH)

    def width(self, groups: int = 1) -> int:
        """Bits of a beat: the L = C / G channels of the value's format."""
        fmt = self.value.type.format
        assert isinstance(fmt, Fixed)  # the estimate refuses float graphs first
        return pixels_channels(self.value)[1] // groups * fmt.width


def lag(node: Node) -> Fraction:
    """The fraction of a frame by which ``node``'s output trails its input (see the module docstring)."""
    mode = stream_mode(node)
    if mode == "window":
        return _window_lag(node)
    if mode in ("beat", "pixel", "permute"):
        return Fraction(1, max(pixels_channels(node.output)[0], 1))
    return Fraction(1)


def _window_lag(node: Node) -> Fraction:
    """The largest ``(last_row(r) + 1) / H - r / OH`` of a 2-d window (a 1-d window reads its one row)."""
    x, y = node.inputs[0].shape, node.output.shape
    if len(x) != 3:
        return Fraction(1)
    attrs = node.attrs
    kh = node.params["weight"].shape[2] if node.op == "conv" else attrs["kernel"][0]
    sh, ph = attrs["strides"][0], attrs["pads"][0]
    dh = (attrs.get("dilations") or [1])[0]
    h, oh = x[1], y[1]
    rows = (min(h - 1, max(0, r * sh - ph + (kh - 1) * dh)) + 1 for r in range(oh))
    return max(Fraction(last, h) - Fraction(r, oh) for r, last in enumerate(rows))


def stream_fifos(graph: Graph) -> tuple[Fifo, ...]:
    """Every FIFO a stream design declares between its layers, as
    :func:`fpgac.backends.vitis.stream.wire` declares them (ports are the top's, not counted)."""
    nodes = graph.nodes
    position = {id(n): i for i, n in enumerate(nodes)}
    lags = {id(n): lag(n) for n in nodes}
    ports: dict[int, int] = {}
    for v in graph.outputs:
        ports[id(v)] = ports.get(id(v), 0) + 1
    fifos: list[Fifo] = []
    for value in [*graph.inputs, *(n.output for n in nodes)]:
        reads = list(value.uses)
        writer = value.producer.name if value.producer is not None else None
        if writer is not None and reads:
            fifos.append(Fifo(value, writer))  # the layer's own output FIFO (to its reader or its fork)
        if len(reads) + ports.get(id(value), 0) < 2 or not reads:
            continue
        paths = [_longest_lags(nodes, position[id(n)], lags) for n, _ in reads]
        for i, (reader, k) in enumerate(reads):
            mine = paths[i]
            held = max(
                (lag_to - mine[key] for j, theirs in enumerate(paths) if j != i
                 for key, lag_to in theirs.items() if key in mine),
                default=Fraction(0),
            )  # fmt: skip
            held = max(held, Fraction(0))
            fifos.append(Fifo(value, writer or reads[0][0].name, reader.name, k, held, len(reads)))
    return tuple(fifos)


def _longest_lags(nodes: Sequence[Node], start: int, lags: Mapping[int, Fraction]) -> dict[int, Fraction]:
    """The longest lag from entering ``nodes[start]`` to entering each layer downstream of it (0 at the
    start; ``nodes`` in topological order), by node id."""
    best = {id(nodes[start]): Fraction(0)}
    for node in nodes[start:]:
        if id(node) not in best:
            continue
        after = best[id(node)] + lags[id(node)]
        for reader, _ in node.output.uses:
            if after > best.get(id(reader), Fraction(-1)):
                best[id(reader)] = after
    return best
