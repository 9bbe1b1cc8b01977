"""The weight image of a build with off-chip weights: ``hls/weights.bin``, the bytes external memory holds.

Each off-chip layer's weight is one block of raw words (the mantissas, as the on-chip headers' arrays hold
them), little-endian, of the layer's C integer type (``int8_t`` for weights of up to 8 bits, ...), in the
order the off-chip kernels read them (``fpgac_offchip.h``: row-major ``[OUT][...]``, one row per output).
Blocks follow each other in graph order, each starting on a multiple of :data:`ALIGN` bytes, so each
layer's port address is aligned to a 512-bit AXI beat and bursts never start mid-word. Offsets are
recorded in ``hls/fpgac.json`` (``weights``) and compiled into the testbench, which loads the file into the
buffer it passes to the m_axi ports: the host program of a real board does the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpgac.backends.vitis.ccode import ExternalArray

WEIGHTS_FILE = "weights.bin"
ALIGN = 64  # bytes: one 512-bit AXI beat
# Little-endian numpy dtype of each C integer type ccode.c_int_type chooses.
DTYPES = {
    f"{sign}int{bits}_t": np.dtype(f"<{'i' if not sign else 'u'}{bits // 8}")
    for sign in ("", "u")
    for bits in (8, 16, 32, 64)
}


@dataclass(frozen=True)
class Block:
    """Where one port's words lie in the image."""

    name: str  # the m_axi port (the C name of the layer's weight)
    ctype: str
    offset: int  # bytes from the start of the image, a multiple of ALIGN
    count: int  # words

    @property
    def size(self) -> int:
        """Bytes of the words (without the padding up to the next block)."""
        return self.count * DTYPES[self.ctype].itemsize

    @property
    def end(self) -> int:
        """Where the next block starts: after the words, padded to ALIGN."""
        return self.offset + -(-self.size // ALIGN) * ALIGN

    def to_json(self) -> dict[str, Any]:
        return {"port": self.name, "ctype": self.ctype, "offset": self.offset, "count": self.count}


def layout(arrays: Sequence[ExternalArray]) -> list[Block]:
    """The blocks of ``arrays`` in order, each aligned to :data:`ALIGN` bytes."""
    blocks: list[Block] = []
    for array in arrays:
        blocks.append(Block(array.name, array.ctype, blocks[-1].end if blocks else 0, int(array.words.size)))
    return blocks


def pack(arrays: Sequence[ExternalArray]) -> bytes:
    """The image: every array's words at its block's offset, zero padding between blocks."""
    parts = []
    for array, block in zip(arrays, layout(arrays), strict=True):
        dtype = DTYPES[block.ctype]
        words = array.words.reshape(-1)
        # An object array (mantissas beyond int64) goes through Python ints; both convert exactly.
        raw = np.array(words.tolist(), dtype) if words.dtype == object else words.astype(dtype)
        data = raw.tobytes()
        parts.append(data + bytes(-len(data) % ALIGN))
    return b"".join(parts)
