"""The C-code primitives every layer emitter shares: a layer's code, its context, C literals and types.

Shared by :mod:`fpgac.backends.vitis.layers` (one emitter per op) and :mod:`fpgac.backends.vitis.weights`
(compressed weight storage), which both write into a :class:`LayerCode`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fpgac.errors import FpgacError
from fpgac.ir.graph import Node
from fpgac.ir.types import Fixed


class VitisError(FpgacError):
    """A quantized graph the Vitis backend cannot express."""


@dataclass(frozen=True)
class Array:
    """A constant array (weights, a table, an index ROM) written into the layer's weights header."""

    ctype: str
    name: str
    values: list[str]
    comment: str


@dataclass(frozen=True, eq=False)
class ExternalArray:
    """A constant array in external memory (off-chip weights): the raw words the hardware reads through
    the m_axi port ``name``, packed into the weight image by :mod:`fpgac.backends.vitis.weight_image`."""

    ctype: str
    name: str
    words: np.ndarray  # the mantissas, flat, in the order the kernel reads them
    comment: str


@dataclass
class LayerCode:
    """What one layer contributes to the project."""

    typedefs: list[tuple[str, str]] = field(default_factory=list)
    arrays: list[Array] = field(default_factory=list)
    config: str = ""
    body: str = ""
    external: ExternalArray | None = None


@dataclass(frozen=True)
class Ctx:
    """A node and the C names around it."""

    node: Node
    name: str
    ins: list[str]
    in_types: list[str]
    in_fmts: list[Fixed]
    out: str
    out_type: str
    out_fmt: Fixed
    reuse: int = 1
    # io_stream: None for a whole-array layer; (P, C) for one working beat by beat on P beats of C
    # channels, where ins are the beats' data ("x0_px.data"), out is "y_px.data" and ``elem`` is "c".
    beats: tuple[int, int] | None = None
    elem: str = "i"
    stream: bool = False  # io_stream: window ops use line buffers, array loops run one element a cycle
    offchip: bool = False  # the weight lives in external memory (fpgac_offchip.h), read through a port

    @property
    def size(self) -> int:
        return self.node.output.type.size

    def x(self, k: int) -> str:
        """Input ``k`` at the current element (an elementwise op on same-shape inputs)."""
        return f"{self.ins[k]}[{self.elem}]"

    @property
    def y(self) -> str:
        """The output at the current element."""
        return f"{self.out}[{self.elem}]"

    def where(self) -> str:
        return f"node {self.node.name!r} ({self.node.op})"


def literal(value: float) -> str:
    """A C++ double literal that parses back to exactly ``value`` (Python's repr round-trips)."""
    value = float(value)
    if not math.isfinite(value):
        raise VitisError(f"constant {value} has no fixed-point value")
    text = repr(value)
    return text if any(c in text for c in ".e") else text + ".0"


def c_int_type(fmt: Fixed) -> str:
    """The smallest C integer type holding the raw bits (mantissa) of ``fmt``."""
    bits = next(b for b in (8, 16, 32, 64) if fmt.width <= b)
    return f"{'' if fmt.signed else 'u'}int{bits}_t"


def int_literal(value: int, ctype: str) -> str:
    """A C integer literal of ``value`` for an array of ``ctype`` (64-bit ones need a suffix)."""
    if not ctype.endswith("64_t"):
        return str(value)
    if value == -(2**63):
        return "(-9223372036854775807LL - 1)"  # the literal 9223372036854775808 does not exist
    return f"{value}{'LL' if ctype.startswith('int') else 'ULL'}"


def config(ctx: Ctx, values: dict[str, int], types: dict[str, str] | None = None) -> str:
    """The ``struct NAME_config`` a kernel template reads: constants (and REUSE) and its types."""
    lines = [f"struct {ctx.name}_config {{"]
    lines += [f"  static const int {k} = {int(v)};" for k, v in {**values, "REUSE": ctx.reuse}.items()]
    lines += [f"  typedef {t} {k};" for k, t in (types or {}).items()]
    return "\n".join(lines) + "\n};"


def window_stream(ctx: Ctx, code: LayerCode, compute: str, memory: str = "") -> None:
    """io_stream window layer: fpgac_stream.h's line-buffer kernel with this layer's per-pixel function.

    ``compute`` is the statement computing output pixel ``y`` from ``win``/``valid`` (and ``oh``, ``ow``).
    With ``memory`` (the layer's m_axi port: off-chip weights) it computes a whole output row ``oh`` from
    the line buffer ``rows`` into stream ``y`` instead (see ``window_row`` in fpgac_stream.h).
    """
    if memory:
        code.config += (
            f"\nstruct {ctx.name}_pixel {{\n  template <class rows_t, class y_t, class m_t>\n"
            f"  static void row(rows_t rows, int oh, y_t& y, const m_t* {memory}) {{\n"
            f"    {compute}\n  }}\n}};"
        )
        call = f"{ctx.ins[0]}, {ctx.out}, {memory}"
    else:
        code.config += (
            f"\nstruct {ctx.name}_pixel {{\n  template <class in_t, class out_t>\n"
            f"  static void compute(const in_t win[], const bool valid[], int oh, int ow, out_t y[]) {{\n"
            f"    (void)valid, (void)oh, (void)ow;\n    {compute}\n  }}\n}};"
        )
        call = f"{ctx.ins[0]}, {ctx.out}"
    code.body += f"  fpgac::window_stream<{ctx.name}_config, {ctx.name}_pixel>({call});"
