"""Numeric formats and tensor types of the IR.

Every value in the IR carries an immutable, hashable :class:`TensorType`. Shapes
are *per sample*: the batch dimension is implicit and never part of a shape,
because an FPGA design processes one sample after another and every op in the
IR maps one sample to one sample. The frontend rejects graphs that mix the
batch dimension into others (a ``Reshape`` to ``[-1]`` over a batch, say).

Layouts are explicit. Shapes are always in *logical* order (ONNX order: channels
first for convolutions); ``layout`` is the permutation of logical axes in which
the tensor is laid out in memory or in a stream. ``(1, 2, 0)`` on a ``(C, H, W)``
tensor means channels-last (HWC). The interpreter works on logical arrays and
ignores layouts; backends read them, and the verifier checks that ops whose
meaning depends on memory order (flattening reshapes, for one) see the layout
they expect.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum


class Rounding(StrEnum):
    """Quantization modes of ``ap_fixed`` (Vitis HLS user guide, UG1399)."""

    TRN = "TRN"
    TRN_ZERO = "TRN_ZERO"
    RND = "RND"
    RND_ZERO = "RND_ZERO"
    RND_MIN_INF = "RND_MIN_INF"
    RND_INF = "RND_INF"
    RND_CONV = "RND_CONV"


class Overflow(StrEnum):
    """Overflow modes of ``ap_fixed``."""

    WRAP = "WRAP"
    SAT = "SAT"
    SAT_ZERO = "SAT_ZERO"
    SAT_SYM = "SAT_SYM"


@dataclass(frozen=True)
class Float:
    """IEEE floating point of ``bits`` width (the float IR uses 32)."""

    bits: int = 32

    def __post_init__(self) -> None:
        if self.bits not in (16, 32, 64):
            raise ValueError(f"float width must be 16, 32 or 64, not {self.bits}")

    def __str__(self) -> str:
        return f"f{self.bits}"


@dataclass(frozen=True)
class Fixed:
    """Fixed point ``ap_fixed<width, int_bits, rounding, overflow>`` (or ``ap_ufixed``).

    ``int_bits`` counts the sign bit for signed formats, as in ``ap_fixed``, and may
    be negative or exceed ``width``. A value is ``mantissa * 2**-(width - int_bits)``.
    """

    width: int
    int_bits: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 1024:
            raise ValueError(f"fixed-point width must be in 1..1024, not {self.width}")
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))

    @property
    def frac_bits(self) -> int:
        return self.width - self.int_bits

    @property
    def min_mantissa(self) -> int:
        """Smallest stored integer: ``-2**(width-1)`` signed, 0 unsigned (an exact Python int)."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_mantissa(self) -> int:
        """Largest stored integer: ``2**(width-1) - 1`` signed, ``2**width - 1`` unsigned."""
        return (1 << (self.width - 1 if self.signed else self.width)) - 1

    @property
    def lsb(self) -> float:
        """Value of one mantissa step, ``2**-frac_bits`` (exact unless outside float64's exponent range)."""
        return math.ldexp(1.0, -self.frac_bits)

    def ap_type(self) -> str:
        """The C++ type that implements this format, e.g. ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``."""
        base = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{base}<{self.width},{self.int_bits},AP_{self.rounding.value},AP_{self.overflow.value}>"

    def __str__(self) -> str:
        kind = "fixed" if self.signed else "ufixed"
        return f"{kind}<{self.width},{self.int_bits},{self.rounding.value},{self.overflow.value}>"


Format = Float | Fixed

FLOAT32 = Float(32)

_FIXED_RE = re.compile(r"^(u?fixed)<(-?\d+),(-?\d+),([A-Z_]+),([A-Z_]+)>$")


def parse_format(text: str) -> Format:
    """Inverse of ``str(format)``."""
    if text in ("f16", "f32", "f64"):
        return Float(int(text[1:]))
    match = _FIXED_RE.match(text)
    if not match:
        raise ValueError(f"not a numeric format: {text!r}")
    kind, width, int_bits, rounding, overflow = match.groups()
    return Fixed(int(width), int(int_bits), kind == "fixed", Rounding(rounding), Overflow(overflow))


@dataclass(frozen=True)
class TensorType:
    """Shape (per sample), numeric format and memory layout of a value."""

    shape: tuple[int, ...]
    format: Format = FLOAT32
    layout: tuple[int, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"negative dimension in shape {shape}")
        object.__setattr__(self, "shape", shape)
        if self.layout is not None:
            layout = tuple(int(a) for a in self.layout)
            if sorted(layout) != list(range(len(shape))):
                raise ValueError(f"layout {layout} is not a permutation of the axes of {shape}")
            # The identity permutation is stored as None so equal types compare equal.
            object.__setattr__(self, "layout", None if layout == tuple(range(len(shape))) else layout)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        size = 1
        for d in self.shape:
            size *= d
        return size

    def with_format(self, fmt: Format) -> TensorType:
        return TensorType(self.shape, fmt, self.layout)

    def __str__(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        text = f"{self.format}[{dims}]"
        if self.layout is not None:
            text += "@" + ",".join(str(a) for a in self.layout)
        return text


_TYPE_RE = re.compile(r"^(?P<fmt>[^\[]+)\[(?P<dims>[\d,]*)\](?:@(?P<layout>[\d,]+))?$")


def parse_type(text: str) -> TensorType:
    """Inverse of ``str(tensor_type)``."""
    match = _TYPE_RE.match(text)
    if not match:
        raise ValueError(f"not a tensor type: {text!r}")
    dims = tuple(int(d) for d in match["dims"].split(",") if d)
    layout = tuple(int(a) for a in match["layout"].split(",")) if match["layout"] else None
    return TensorType(dims, parse_format(match["fmt"]), layout)
