"""How a compressed weight tensor is stored: sparse layout, codebook + indices, Huffman tables.

The encoding is data attached to a :class:`~fpgac.ir.graph.Param`, never a replacement for it:
``Param.data`` always holds the decoded values, so every consumer that only computes (float and
bit-exact simulators, range analysis, cost) is unchanged, and the verifier checks that the encoding
decodes to exactly ``data``. Backends and the report read the encoding to know what is stored.

* **sparse** (``gap_bits``, set by ``prune``): the kept entries in row-major order of the tensor, each with
  its *relative index* (zeros skipped since the previous entry) in ``gap_bits`` bits; a gap too long for
  the field inserts *filler* entries that hold a zero (Deep Compression's format).
* **shared** (``codebook`` + ``indices``, set by ``share``): every weight is ``codebook[index]``. In a
  sparse tensor index 0 is reserved for the zero that pruned weights and fillers hold, so the sparsity
  pattern (``indices != 0``) survives quantization even if a centroid rounds to zero.
* **huffman** (set by ``huffman``): a canonical code per stream (``"index"``, and ``"gap"`` when sparse).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from fpgac.ir.huffman import HuffmanCode, table_bits
from fpgac.ir.types import Fixed

if TYPE_CHECKING:
    from fpgac.ir.graph import Param


@dataclass(frozen=True, eq=False)
class Encoding:
    """The storage of one weight tensor (see the module docstring); every part is optional."""

    gap_bits: int | None = None
    codebook: np.ndarray | None = None
    indices: np.ndarray | None = None
    huffman: Mapping[str, HuffmanCode] = field(default_factory=dict)

    @property
    def sparse(self) -> bool:
        return self.gap_bits is not None

    @property
    def shared(self) -> bool:
        return self.codebook is not None

    @property
    def index_bits(self) -> int:
        """Width of a plain (packed) codebook index."""
        assert self.codebook is not None
        return max(1, math.ceil(math.log2(max(len(self.codebook), 1))))

    def with_codebook(self, codebook: np.ndarray) -> Encoding:
        return replace(self, codebook=np.asarray(codebook, dtype=np.float64))

    def copy(self) -> Encoding:
        return replace(
            self,
            codebook=None if self.codebook is None else self.codebook.copy(),
            indices=None if self.indices is None else self.indices.copy(),
            huffman=dict(self.huffman),
        )

    def equals(self, other: Encoding | None) -> bool:
        if other is None:
            return False
        arrays = [(self.codebook, other.codebook), (self.indices, other.indices)]
        return (
            self.gap_bits == other.gap_bits
            and dict(self.huffman) == dict(other.huffman)
            and all(
                (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
                for a, b in arrays
            )
        )

    def summary(self) -> dict[str, object]:
        """The non-array part, for the IR text form."""
        out: dict[str, object] = {}
        if self.gap_bits is not None:
            out["gap_bits"] = self.gap_bits
        if self.codebook is not None:
            out["codebook"] = len(self.codebook)
        if self.huffman:
            out["huffman"] = sorted(self.huffman)
        return out


@dataclass(frozen=True)
class SparseLayout:
    """The stored entries of a sparse tensor: flat positions, relative indices, which are fillers."""

    positions: np.ndarray
    gaps: np.ndarray
    fillers: np.ndarray

    @property
    def entries(self) -> int:
        return int(self.positions.size)


def sparse_layout(kept: np.ndarray, gap_bits: int) -> SparseLayout:
    """Deep Compression's relative indexing of the kept entries of a flat mask.

    Entry ``j`` sits ``gaps[j]`` zeros after the previous entry; a run of zeros longer than the field
    holds (``2**gap_bits - 1``) is bridged by a filler entry with the largest gap, holding a zero.
    """
    limit = (1 << gap_bits) - 1
    positions: list[int] = []
    gaps: list[int] = []
    fillers: list[bool] = []
    prev = -1
    for pos in np.flatnonzero(np.asarray(kept).reshape(-1)).tolist():
        gap = pos - prev - 1
        while gap > limit:
            prev += limit + 1
            positions.append(prev)
            gaps.append(limit)
            fillers.append(True)
            gap -= limit + 1
        positions.append(pos)
        gaps.append(gap)
        fillers.append(False)
        prev = pos
    return SparseLayout(
        np.asarray(positions, dtype=np.int64), np.asarray(gaps, dtype=np.int64), np.asarray(fillers, bool)
    )


def kept_mask(param: Param) -> np.ndarray:
    """Flat mask of the weights a sparse tensor stores (index != 0 when shared, else value != 0)."""
    enc = param.encoding
    if enc is not None and enc.shared and enc.sparse:
        assert enc.indices is not None
        return enc.indices.reshape(-1) != 0
    return np.asarray(param.data).reshape(-1) != 0


def layout(param: Param) -> SparseLayout | None:
    enc = param.encoding
    if enc is None or enc.gap_bits is None:
        return None
    return sparse_layout(kept_mask(param), enc.gap_bits)


def streams(param: Param) -> dict[str, np.ndarray]:
    """The symbol streams a Huffman code is built over: codebook indices per stored entry, and gaps."""
    enc = param.encoding
    if enc is None or not enc.shared:
        return {}
    assert enc.indices is not None
    flat = enc.indices.reshape(-1).astype(np.int64)
    lay = layout(param)
    if lay is None:
        return {"index": flat}
    return {"index": flat[lay.positions], "gap": lay.gaps}


def alphabet(param: Param, stream: str) -> int:
    enc = param.encoding
    assert enc is not None
    if stream == "gap":
        assert enc.gap_bits is not None
        return 1 << enc.gap_bits
    assert enc.codebook is not None
    return len(enc.codebook)


def _width(param: Param) -> int:
    fmt = param.format
    return fmt.width if isinstance(fmt, Fixed) else fmt.bits


def storage_bits(param: Param) -> dict[str, int]:
    """Bits the hardware stores for ``param``, by part; ``total`` is their sum.

    dense: every value at the format's width. sparse: one value (or codebook index) per entry, fillers
    included, plus ``gap_bits`` per entry. shared: indices at ``index_bits`` each plus the codebook at the
    format's width. huffman: a coded stream's bitstream replaces its fixed-width fields, plus the
    decoder's tables (a count per code length and the symbols in canonical order).
    """
    enc = param.encoding
    width = _width(param)
    if enc is None:
        return {"values": int(param.data.size) * width, "total": int(param.data.size) * width}
    parts: dict[str, int] = {}
    lay = layout(param)
    entries = int(param.data.size) if lay is None else lay.entries
    if lay is not None:
        parts["fillers"] = int(lay.fillers.sum())  # a count, listed for the reader; not in the total
    if enc.shared:
        assert enc.codebook is not None
        parts["codebook"] = len(enc.codebook) * width
        parts["indices"] = entries * enc.index_bits
    else:
        parts["values"] = entries * width
    if lay is not None:
        parts["gaps"] = entries * int(enc.gap_bits or 0)
    for name, stream in streams(param).items():
        code = enc.huffman.get(name)
        if code is None:
            continue
        key = "indices" if name == "index" else "gaps"
        parts[key] = code.encoded_bits(stream)
        symbol_bits = max(1, (alphabet(param, name) - 1).bit_length())
        parts[f"{name}_table"] = table_bits(code, symbol_bits)
    parts["total"] = sum(v for k, v in parts.items() if k != "fillers")
    return parts


def encoding_problem(param: Param) -> str | None:
    """Why ``param.encoding`` does not describe ``param.data`` (None when it does)."""
    enc = param.encoding
    if enc is None:
        return None
    if enc.gap_bits is not None and not 1 <= enc.gap_bits <= 16:
        return f"gap_bits {enc.gap_bits} is out of range (1..16)"
    if enc.shared:
        assert enc.codebook is not None
        if enc.indices is None or enc.indices.shape != param.data.shape:
            return "codebook indices do not have the weight's shape"
        if enc.indices.dtype.kind not in "iu" or len(enc.codebook) == 0:
            return "codebook indices must be integers into a non-empty codebook"
        if enc.indices.size and (enc.indices.min() < 0 or enc.indices.max() >= len(enc.codebook)):
            return "a codebook index is out of range"
        decoded = enc.codebook[enc.indices.astype(np.int64)].astype(param.data.dtype)
        if not np.array_equal(decoded, param.data):
            return "codebook[indices] differs from the weight values"
        if enc.sparse and enc.codebook[0] != 0.0:
            return "a sparse shared tensor must keep codebook[0] = 0 for pruned weights"
    elif enc.huffman:
        return "Huffman codes need codebook indices (run share first)"
    for name, code in enc.huffman.items():
        stream = streams(param).get(name)
        if stream is None:
            return f"Huffman code for stream {name!r}, which this tensor does not have"
        size = alphabet(param, name)
        if len(code.lengths) != size:
            return f"Huffman code for stream {name!r} has {len(code.lengths)} symbols, not {size}"
        coded = set(code.used)
        missing = set(np.unique(stream).tolist()) - coded
        if missing:
            return f"Huffman code for stream {name!r} has no code for symbols {sorted(missing)[:5]}"
        if len(code.used) > 1 and code.kraft_sum() > 1.0:
            return f"Huffman code for stream {name!r} is not prefix-free (Kraft sum > 1)"
    return None
