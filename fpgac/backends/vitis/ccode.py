"""The C-code primitives every layer emitter shares: a layer's code, its context, C literals and types.

Shared by :mod:`fpgac.backends.vitis.layers` (one emitter per op) and :mod:`fpgac.backends.vitis.weights`
(compressed weight storage), which both write into a :class:`LayerCode`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from fpgac.analysis.estimate import LineBuffer, line_buffer
from fpgac.boards import Board
from fpgac.errors import FpgacError
from fpgac.ir.graph import Node
from fpgac.ir.types import Fixed


class VitisError(FpgacError):
    """A quantized graph the Vitis backend cannot express."""


@dataclass(frozen=True)
class Array:
    """A constant array (weights, a table, an index ROM) written into the layer's weights header.

    ``values`` are the integers themselves (1-d; an object array of Python ints beyond 64 bits), not their
    literals: a big model has a hundred million of them, which as Python strings took ten times the
    memory of the model; :meth:`rows` formats them as the header is written.
    """

    ctype: str
    name: str
    values: np.ndarray
    comment: str

    def rows(self) -> Iterator[str]:
        """The initializer's lines (``    v, v, ..., v,`` ten literals each), many lines per chunk."""
        return literal_rows(self.values, self.ctype)


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
    # A channel-folded stream: each pixel's C channels arrive in ``groups`` beats of C / groups (``elem``
    # is then the lane, and ``c`` the channel, of the beat's element).
    groups: int = 1
    elem: str = "i"
    stream: bool = False  # io_stream: window ops use line buffers, array loops run one element a cycle
    offchip: bool = False  # the weight lives in external memory (fpgac_offchip.h), read through a port
    board: Board | None = None  # the target, where a layer's working memories depend on it
    uram_rows: bool = False  # an off-chip conv's line buffer in URAM (the fitting's choice)
    uram: bool = False  # the weight is preloaded from the weight image into UltraRAM (fpgac::preload)
    in_groups: int = 1  # io_stream: beats a pixel of its first input (a window layer stores them)
    lutram_rows: bool = False  # a window layer's line buffer in LUT RAM (the fitting's choice)

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
    """A C integer literal of ``value`` for an array of ``ctype`` (64-bit ones need a suffix; ``unsigned
    int`` words carry one to say so)."""
    if ctype == "unsigned int":
        return f"{value}u"
    if not ctype.endswith("64_t"):
        return str(value)
    if value == -(2**63):
        return "(-9223372036854775807LL - 1)"  # the literal 9223372036854775808 does not exist
    return f"{value}{'LL' if ctype.startswith('int') else 'ULL'}"


def c_int_array(values: np.ndarray | list[int], ctype: str) -> np.ndarray:
    """``values`` as a 1-d array for an :class:`Array` of ``ctype``, in its own width where numpy has it
    (a 16-bit weight array takes 2 bytes a value until it is written, not 8)."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype == object or not ctype.endswith("_t"):
        return flat
    return flat.astype(np.dtype(ctype.removesuffix("_t")))


# Literals per line of an initializer, and lines per chunk that literal_rows yields.
ROW_LITERALS = 10
_CHUNK_ROWS = 100_000
_SUFFIXED = ("unsigned int", "int64_t", "uint64_t")  # types whose literals int_literal suffixes
_TABLE_MIN, _TABLE_MAX = -(2**16), 2**16 - 1  # values the vectorized path formats from a table


def literal_rows(values: np.ndarray, ctype: str) -> Iterator[str]:
    """The lines of a C initializer of ``values``: four spaces, ten literals of ``ctype`` joined by ", "
    and a trailing comma each, yielded in chunks of up to ``_CHUNK_ROWS`` lines.

    Integers of up to 17 bits (weights at the usual precisions, most index maps) are formatted by numpy
    from a table of every literal; wider ones and suffixed literals one by one in Python.
    """
    values = np.asarray(values).reshape(-1)
    if values.size == 0:
        return
    table = (
        ctype not in _SUFFIXED
        and values.dtype != object
        and int(values.min()) >= _TABLE_MIN
        and int(values.max()) <= _TABLE_MAX
    )
    step = _CHUNK_ROWS * ROW_LITERALS
    for start in range(0, values.size, step):
        chunk = values[start : start + step]
        yield _table_rows(chunk) if table else _python_rows(chunk, ctype)


def _python_rows(values: np.ndarray, ctype: str) -> str:
    texts = [int_literal(v, ctype) for v in values.tolist()]
    return "".join(
        f"    {', '.join(texts[i : i + ROW_LITERALS])},\n" for i in range(0, len(texts), ROW_LITERALS)
    )


@functools.cache
def _literal_table() -> tuple[np.ndarray, np.ndarray]:
    """Every literal from ``_TABLE_MIN`` to ``_TABLE_MAX`` followed by ", ", right-aligned in 8 bytes (one
    uint64 each, so a lookup moves a whole literal), and the mask of its text's bytes (1 where it is, in
    the same layout); the last entry, index -1, is empty: no literal."""
    texts = [f"{v}, " for v in range(_TABLE_MIN, _TABLE_MAX + 1)] + [""]
    padded = "".join(t.rjust(8) for t in texts).encode("ascii")
    masks = b"".join(bytes(8 - len(t)) + b"\1" * len(t) for t in texts)
    return np.frombuffer(padded, np.uint64), np.frombuffer(masks, np.uint64)


# Four spaces of indent, right-aligned like a literal, and its mask.
_INDENT = np.frombuffer(b"        ", np.uint64)[0]
_INDENT_MASK = np.frombuffer(bytes(4) + b"\1" * 4, np.uint64)[0]


def _table_rows(values: np.ndarray) -> str:
    """:func:`_python_rows` vectorized: every line is an indent and ten 8-byte records, of which the
    right-aligned text is kept; the last literal's trailing space becomes the newline."""
    table, masks = _literal_table()
    rows = -(-values.size // ROW_LITERALS)
    flat = np.full(rows * ROW_LITERALS, -1, np.int64)  # -1: no literal (the last line's unused places)
    flat[: values.size] = values.astype(np.int64) - _TABLE_MIN
    index = flat.reshape(rows, ROW_LITERALS)
    records = np.empty((rows, ROW_LITERALS + 1), np.uint64)
    records[:, 0], records[:, 1:] = _INDENT, table[index]
    keep = np.empty((rows, ROW_LITERALS + 1), np.uint64)
    keep[:, 0], keep[:, 1:] = _INDENT_MASK, masks[index]
    data = records.view(np.uint8).reshape(rows, ROW_LITERALS + 1, 8)
    last = np.full(rows, ROW_LITERALS)  # the record of each line's last literal (the indent is record 0)
    last[-1] = values.size - (rows - 1) * ROW_LITERALS
    data[np.arange(rows), last, 7] = ord("\n")
    return data[keep.view(np.bool_).reshape(data.shape)].tobytes().decode("ascii")


def config(ctx: Ctx, values: dict[str, int], types: dict[str, str] | None = None) -> str:
    """The ``struct NAME_config`` a kernel template reads: constants (and REUSE) and its types."""
    lines = [f"struct {ctx.name}_config {{"]
    lines += [f"  static const int {k} = {int(v)};" for k, v in {**values, "REUSE": ctx.reuse}.items()]
    lines += [f"  typedef {t} {k};" for k, t in (types or {}).items()]
    return "\n".join(lines) + "\n};"


def window_stream(ctx: Ctx, code: LayerCode, compute: str, memory: str = "", reads: int = 0) -> None:
    """io_stream window layer: fpgac_stream.h's line-buffer kernel with this layer's per-pixel function.

    ``compute`` is the statement computing output pixel ``y`` from ``win``/``valid`` (and ``oh``, ``ow``).
    With ``memory`` (the layer's m_axi port: off-chip weights) it computes a whole output row ``oh`` from
    the line buffer ``rows`` into stream ``y`` instead (see ``window_row`` in fpgac_stream.h). ``reads``:
    conv_pixel's reads of each window cell a pixel (:func:`~fpgac.analysis.estimate.pixel_reads`), whose
    line buffer is split by its reuse factor and may be read in place; 0 for any other computation. The
    line buffer's banks and reads are the estimate's (:func:`~fpgac.analysis.estimate.line_buffer`); a
    1 x 1 conv that reads in place stores a pixel instead of a row (pointwise_stream).
    """
    if memory:
        code.config += (
            f"\nstruct {ctx.name}_pixel {{\n  template <class rows_t, class y_t, class m_t>\n"
            f"  static void row(rows_t rows, int oh, y_t& y, const m_t* {memory}) {{\n"
            f"    {compute}\n  }}\n}};"
        )
    else:
        code.config += (
            f"\nstruct {ctx.name}_pixel {{\n  template <class win_t, class out_t>\n"
            f"  static void compute(const win_t& win, const bool valid[], int oh, int ow, out_t y[]) {{\n"
            f"    (void)valid, (void)oh, (void)ow;\n    {compute}\n  }}\n}};"
        )
    lanes = ctx.node.inputs[0].shape[0] // ctx.in_groups
    line = line_buffer(ctx.node, lanes, ctx.reuse if reads else 1, reads, ctx.lutram_rows)
    kernel, streams = f"{ctx.name}_config, {ctx.name}_pixel", f"{ctx.ins[0]}, {ctx.out}"
    if line.pointwise:
        code.body += _line_memory(ctx, line, "px", f"[{line.channels}]")
        code.body += f"  fpgac::pointwise_stream<{kernel}>({streams}, px);"
        return
    code.body += _line_memory(ctx, line, "rows", f"[{line.rows}][{line.width}][{line.channels}]")
    code.body += "  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=rows complete dim=1)\n"
    in_place = "true" if line.in_place else "false"
    port = f", {memory}" if memory else ""
    code.body += f"  fpgac::window_stream<{kernel}, {in_place}>({streams}, rows{port});"


def _line_memory(ctx: Ctx, line: LineBuffer, name: str, dims: str) -> str:
    """The declaration of a window layer's line buffer (or pixel buffer) ``name``, split over its channels
    (its last dimension) into ``line.banks`` memories, in LUT RAM where the fitting put it."""
    split = f"variable={name} cyclic factor={line.banks} dim={dims.count('[')}"
    lines = [f"  static {ctx.in_types[0]} {name}{dims};", f"  FPGAC_PRAGMA(HLS ARRAY_PARTITION {split})"]
    if line.lutram and line.depth > 1:
        lines.append(f"  FPGAC_PRAGMA(HLS BIND_STORAGE variable={name} type=ram_2p impl=lutram)")
    return "\n".join(lines) + "\n"
