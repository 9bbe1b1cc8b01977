"""Canonical Huffman codes over small alphabets (codebook indices, sparse gaps).

A canonical code is fully described by one code length per symbol: codes are handed out in order of
(length, symbol), each the previous code plus one, shifted left when the length grows (DEFLATE's rule).
So the IR stores only the lengths, the hardware stores only the number of codes of each length and the
symbols in canonical order, and the decoder needs no tree (zlib's ``puff`` walks those two tables).

Degenerate streams cost nothing: an empty stream has no codes; a stream of one distinct symbol gets a
code of length 0 (zero bits per symbol: the decoder knows the count and the only symbol). Lengths are
capped at :data:`MAX_LENGTH` so the decoder's code register has a fixed width; when a skewed stream would
need longer codes, frequencies are halved (rounding up) until it fits, which keeps Kraft equality.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fpgac.errors import FpgacError

MAX_LENGTH = 24
WORD_BITS = 32  # the coded bitstream is stored MSB-first in 32-bit words


class HuffmanError(FpgacError):
    """A stream that a code cannot encode, or a bitstream that does not decode."""


@dataclass(frozen=True)
class HuffmanCode:
    """A canonical prefix code over symbols ``0 .. len(lengths) - 1``; length 0 means unused.

    ``constant`` is set for the zero-bit code of a stream of one distinct symbol (all lengths 0).
    """

    lengths: tuple[int, ...]
    constant: int | None = None

    @classmethod
    def from_stream(cls, stream: Sequence[int] | np.ndarray, symbols: int) -> HuffmanCode:
        """The Huffman code of ``stream`` (symbol frequencies), made canonical."""
        stream = np.asarray(stream, dtype=np.int64).reshape(-1)
        if stream.size and (stream.min() < 0 or stream.max() >= symbols):
            raise HuffmanError(f"stream symbols must lie in 0..{symbols - 1}")
        return cls.from_frequencies(np.bincount(stream, minlength=symbols))

    @classmethod
    def from_frequencies(cls, frequencies: Sequence[int] | np.ndarray) -> HuffmanCode:
        """The canonical Huffman code of symbols with these counts (0: symbol unused)."""
        freq = np.asarray(frequencies, dtype=np.int64).reshape(-1)
        symbols = freq.size
        live = np.flatnonzero(freq)
        if live.size == 1:
            return cls((0,) * symbols, int(live[0]))
        while True:
            lengths = _huffman_lengths(freq)
            if max(lengths, default=0) <= MAX_LENGTH:
                return cls(tuple(lengths))
            freq = np.where(freq > 0, (freq + 1) // 2, 0)

    @property
    def used(self) -> list[int]:
        """The coded symbols in canonical order: by length, then by symbol."""
        if self.constant is not None:
            return [self.constant]
        return sorted((s for s, n in enumerate(self.lengths) if n), key=lambda s: (self.lengths[s], s))

    @property
    def max_length(self) -> int:
        return max(self.lengths, default=0)

    def counts(self) -> list[int]:
        """``counts[L]`` = number of codes of length L, for L = 0 .. max_length."""
        counts = [0] * (self.max_length + 1)
        for n in self.lengths:
            if n:
                counts[n] += 1
        return counts

    def codes(self) -> dict[int, tuple[int, int]]:
        """symbol -> (code, length) in canonical order."""
        result: dict[int, tuple[int, int]] = {}
        code, prev = 0, 0
        for symbol in self.used:
            length = self.lengths[symbol]
            code <<= length - prev
            result[symbol] = (code, length)
            code += 1
            prev = length
        return result

    def kraft_sum(self) -> float:
        return sum(2.0**-n for n in self.lengths if n)

    def encoded_bits(self, stream: np.ndarray) -> int:
        """Length of the coded bitstream of ``stream``."""
        stream = np.asarray(stream, dtype=np.int64).reshape(-1)
        if not stream.size:
            return 0
        return int(np.asarray(self.lengths, dtype=np.int64)[stream].sum())

    def encode(self, stream: Sequence[int] | np.ndarray) -> tuple[np.ndarray, int]:
        """(uint32 words, bit count): the codes of ``stream`` concatenated MSB-first."""
        stream = np.asarray(stream, dtype=np.int64).reshape(-1)
        codes = self.codes()
        bits: list[int] = []
        for symbol in stream.tolist():
            if symbol == self.constant:
                continue
            if symbol not in codes:
                raise HuffmanError(f"symbol {symbol} has no code")
            code, length = codes[symbol]
            bits.extend((code >> (length - 1 - k)) & 1 for k in range(length))
        return pack_bits(bits), len(bits)

    def decode(self, words: np.ndarray, nbits: int, count: int) -> np.ndarray:
        """Inverse of :meth:`encode`, the way the hardware does it (``puff``: counts + symbol table)."""
        counts, symbols = self.counts(), self.used
        out = np.zeros(count, dtype=np.int64)
        if self.constant is not None:
            out[:] = self.constant
            return out
        pos = 0
        for k in range(count):
            code = first = index = 0
            for length in range(1, len(counts)):
                if pos >= nbits:
                    raise HuffmanError("bitstream ends inside a code")
                code |= int(words[pos // WORD_BITS] >> (WORD_BITS - 1 - pos % WORD_BITS)) & 1
                pos += 1
                n = counts[length]
                if code - n < first:
                    out[k] = symbols[index + code - first]
                    break
                index += n
                first = (first + n) << 1
                code <<= 1
            else:
                raise HuffmanError("bitstream holds an invalid code")
        return out


def _huffman_lengths(freq: np.ndarray) -> list[int]:
    """Code lengths of a Huffman tree over the symbols with nonzero frequency (ties by symbol)."""
    lengths = [0] * len(freq)
    live = [int(s) for s in np.flatnonzero(freq)]
    if len(live) <= 1:
        return lengths  # empty stream: no codes (a constant stream is handled by the caller)
    heap: list[tuple[int, int, list[int]]] = [(int(freq[s]), s, [s]) for s in live]
    heapq.heapify(heap)
    order = len(freq)
    while len(heap) > 1:
        fa, _, a = heapq.heappop(heap)
        fb, _, b = heapq.heappop(heap)
        for s in a + b:
            lengths[s] += 1
        heapq.heappush(heap, (fa + fb, order, a + b))
        order += 1
    return lengths


def pack_bits(bits: Sequence[int]) -> np.ndarray:
    """Bits MSB-first into uint32 words (the last word zero-padded)."""
    if not len(bits):
        return np.zeros(0, dtype=np.uint32)
    arr = np.zeros(-(-len(bits) // WORD_BITS) * WORD_BITS, dtype=np.uint8)
    arr[: len(bits)] = bits
    return np.packbits(arr).view(">u4").astype(np.uint32)


def pack_fixed(values: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned ``values`` as ``bits``-bit fields, MSB-first, in uint32 words (plain packed storage)."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if not bits:
        return np.zeros(0, dtype=np.uint32)
    shifts = np.arange(bits - 1, -1, -1)
    return pack_bits(((values[:, None] >> shifts) & 1).reshape(-1).tolist())


def table_bits(code: HuffmanCode, symbol_bits: int) -> int:
    """Storage of the decoder's tables: a count per length (wide enough for every symbol) + the symbols."""
    used = len(code.used)
    if used <= 1:
        return symbol_bits * used  # a constant stream stores its symbol only
    count_bits = max(used, 1).bit_length()
    return code.max_length * count_bits + used * symbol_bits
