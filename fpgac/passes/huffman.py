"""Canonical Huffman coding of each shared tensor's index stream (and, when sparse, its gap stream).

The codes depend only on indices and gaps, never on values, so they survive the quantization that follows.
They are attached to the tensor's :class:`~fpgac.ir.encoding.Encoding`; the Vitis backend stores the coded
bitstream and the decoder's tables in ROM, and ``report.json`` counts the coded bits plus the tables.
The pass's entry in ``report.json``'s ``compression`` gives each stream's plain and coded size per layer;
``gaps=false`` leaves the gap stream at its fixed width.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from fpgac.errors import FpgacError
from fpgac.ir.encoding import alphabet, streams
from fpgac.ir.graph import Graph, Param
from fpgac.ir.huffman import HuffmanCode
from fpgac.passes.compression import compressible, record


class HuffmanPassError(FpgacError):
    """A tensor the huffman pass cannot code."""


@dataclass(frozen=True)
class Huffman:
    """Huffman-code the index (and gap) streams of every shared dense/conv weight."""

    name: ClassVar[str] = "huffman"
    gaps: bool = True

    def run(self, graph: Graph) -> Graph:
        facts = {}
        for node in compressible(graph):
            weight = node.params["weight"]
            enc = weight.encoding
            if enc is None or not enc.shared:
                raise HuffmanPassError(
                    f"huffman failed on node {node.name!r}: it codes codebook indices; run share first"
                )
            codes = {
                name: HuffmanCode.from_stream(stream, alphabet(weight, name))
                for name, stream in streams(weight).items()
                if name == "index" or self.gaps
            }
            weight.encoding = replace(enc, huffman=codes)
            facts[node.name] = {
                name: {
                    "symbols": int(stream.size),
                    "plain_bits": int(stream.size) * _field_bits(weight, name),
                    "coded_bits": codes[name].encoded_bits(stream),
                    "max_length": codes[name].max_length,
                }
                for name, stream in streams(weight).items()
                if name in codes
            }
        record(graph, self.name, {"gaps": self.gaps}, facts)
        return graph


def _field_bits(weight: Param, stream: str) -> int:
    """Width of one symbol of ``stream`` stored plain (packed)."""
    enc = weight.encoding
    assert enc is not None
    return int(enc.gap_bits or 0) if stream == "gap" else enc.index_bits
