"""Canonical Huffman codes (fpgac/ir/huffman.py): round trips and the properties the hardware decoder needs.

The C++ decoder (``fpgac_compressed.h``) is the same algorithm as :meth:`HuffmanCode.decode` (counts per
length + symbols in canonical order); that it decodes the same bits is checked by the compressed csim tests.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fpgac.ir.huffman import MAX_LENGTH, HuffmanCode, pack_fixed, table_bits

streams = st.integers(1, 40).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n - 1), min_size=0, max_size=300))
)


def _bits(code: int, length: int) -> str:
    return format(code, f"0{length}b") if length else ""


@settings(max_examples=200, deadline=None)
@given(streams)
def test_round_trip(case: tuple[int, list[int]]) -> None:
    n, stream = case
    code = HuffmanCode.from_stream(stream, n)
    words, nbits = code.encode(stream)
    assert nbits == code.encoded_bits(np.asarray(stream))
    assert len(words) == -(-nbits // 32)
    assert code.decode(words, nbits, len(stream)).tolist() == stream


@settings(max_examples=200, deadline=None)
@given(streams)
def test_canonical_code_properties(case: tuple[int, list[int]]) -> None:
    n, stream = case
    code = HuffmanCode.from_stream(stream, n)
    freq = np.bincount(np.asarray(stream, dtype=np.int64), minlength=n)
    used = sorted(set(stream))
    assert sorted(code.used) == used  # every symbol of the stream has a code, no other does
    if len(used) < 2:
        assert code.max_length == 0 and code.encoded_bits(np.asarray(stream)) == 0
        return
    codes = code.codes()
    words = {s: _bits(c, n_) for s, (c, n_) in codes.items()}
    # prefix-free
    for a in words.values():
        for b in words.values():
            assert a is b or not b.startswith(a)
    # Kraft equality: a full tree, no wasted code space
    assert math.isclose(code.kraft_sum(), 1.0)
    # canonical: in (length, symbol) order, codes left-aligned to the longest length strictly increase
    order = code.used
    assert order == sorted(order, key=lambda s: (code.lengths[s], s))
    width = code.max_length
    aligned = [codes[s][0] << (width - codes[s][1]) for s in order]
    assert aligned == sorted(aligned) and len(set(aligned)) == len(aligned)
    # a more frequent symbol never gets a longer code
    for a in used:
        for b in used:
            if freq[a] > freq[b]:
                assert code.lengths[a] <= code.lengths[b]
    # Huffman is optimal: never worse than a fixed-length code, within 1 bit/symbol of the entropy
    total = code.encoded_bits(np.asarray(stream))
    assert total <= len(stream) * math.ceil(math.log2(len(used)))
    p = freq[freq > 0] / len(stream)
    assert total / len(stream) < -(p * np.log2(p)).sum() + 1 + 1e-9


def test_empty_stream() -> None:
    code = HuffmanCode.from_stream([], 8)
    assert code.used == [] and code.max_length == 0
    words, nbits = code.encode([])
    assert nbits == 0 and words.size == 0
    assert code.decode(words, 0, 0).size == 0
    assert table_bits(code, 3) == 0


def test_one_symbol_costs_no_bits() -> None:
    code = HuffmanCode.from_stream([5] * 1000, 8)
    assert code.constant == 5 and code.used == [5]
    words, nbits = code.encode([5] * 1000)
    assert nbits == 0
    assert code.decode(words, nbits, 1000).tolist() == [5] * 1000
    assert table_bits(code, 3) == 3  # the symbol itself


def test_lengths_are_limited() -> None:
    """Fibonacci frequencies make a Huffman tree as deep as there are symbols (39 here); the code is
    capped at MAX_LENGTH bits and stays complete."""
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    code = HuffmanCode.from_frequencies(fib)
    assert 0 < code.max_length <= MAX_LENGTH  # uncapped: 39 bits
    assert math.isclose(code.kraft_sum(), 1.0)
    stream = np.arange(40)[::-1]
    words, nbits = code.encode(stream)
    assert np.array_equal(code.decode(words, nbits, stream.size), stream)


def test_pack_fixed_is_msb_first() -> None:
    words = pack_fixed(np.array([1, 2, 3]), 3)  # 001 010 011 -> 0b001010011 << 23
    assert words.tolist() == [0b001010011 << 23]
