"""What an op's definition declares: its inputs, typed attributes, params and traits.

The traits are the op knowledge that passes, analyses and backends ask for instead of keeping their own
lists of op names: which kind of computation it is (the stream backend, unit pruning), whether it is
monotone (interval ranges), what its fixed-point kernel adds (quantize, estimate), and whether it has a
fixed-point meaning at all. The table of definitions is :mod:`fpgac.ir.ops` (and
:mod:`fpgac.ir.hls4ml_ops` for the ops only the hls4ml lowering makes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fpgac.errors import FpgacError
from fpgac.ir.types import Fixed, Float, TensorType

Shape = tuple[int, ...]
ShapeRule = Callable[[list[Shape], dict[str, Any], dict[str, Any]], Shape]


class ShapeError(FpgacError, ValueError):
    """Inputs, attributes or params of a node do not fit together."""


class Kind(StrEnum):
    """How each output element depends on the inputs."""

    ELEMENTWISE = "elementwise"  # element i from element i of each (broadcast) input and param
    WINDOW = "window"  # a sliding window over the spatial axes of (C, *spatial)
    MATMUL = "matmul"  # every output feature from every input feature along the last axis
    REDUCTION = "reduction"  # from a whole axis, or a band of one (reduce, softmax, lrn)
    LAYOUT = "layout"  # moves values without arithmetic (reshape, transpose, concat, pad)


class Monotone(StrEnum):
    """How interval bounds pass through the op (analysis/ranges.py)."""

    NO = "no"  # needs its own rule
    INCREASING = "increasing"  # non-decreasing in every input: [f(lo), f(hi)] bounds it
    PIECEWISE = "piecewise"  # monotone on each side of zero: evaluate at lo, hi and the kink


class Dialect(StrEnum):
    """Who makes nodes of the op."""

    CORE = "core"  # the frontend and the passes; every backend sees them
    HLS4ML = "hls4ml"  # only the hls4ml lowering: hls4ml's own arithmetic, simulated, never emitted as C++


# Attribute kinds: how values are checked and printed.
_KINDS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "optional_float": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "ints": lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
    "format": lambda v: isinstance(v, (Fixed, Float)),
}


@dataclass(frozen=True)
class OpDef:
    """One op: what its nodes carry, how their output shape follows, and the traits others ask for.

    ``optional_attrs`` may be absent (a dense or conv layer's rank levels, :mod:`fpgac.ir.levels`).
    ``weights`` are the trained tensors of the float op (``bias`` among ``optional_weights``); on an
    elementwise op they broadcast against the input, so a pass removing channels slices them. ``tables``
    are params every node carries that are computed, not trained (the hls4ml ops' lookup tables).
    ``fixed_attrs``/``fixed_params`` are what the quantize pass adds for the fixed-point kernel
    (accumulator formats, tables, constants in hardware formats); a fixed param named like an attribute
    is that attribute's constant, quantized. ``float_only`` says why an op has no fixed-point kernel.
    """

    name: str
    kind: Kind
    infer: ShapeRule
    min_inputs: int = 1
    max_inputs: int | None = 1
    attrs: dict[str, str] = field(default_factory=dict)
    optional_attrs: dict[str, str] = field(default_factory=dict)
    weights: tuple[str, ...] = ()
    optional_weights: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    fixed_attrs: dict[str, str] = field(default_factory=dict)
    fixed_params: tuple[str, ...] = ()
    monotone: Monotone = Monotone.NO
    logical_order: bool = False  # reads elements in row-major order of the logical shape (reshape)
    selects: bool = False  # every output element is one of its inputs' elements (moves, max): no new values
    float_only: str = ""
    dialect: Dialect = Dialect.CORE
    doc: str = ""

    @property
    def quantized_attrs(self) -> tuple[str, ...]:
        """Attributes whose constants the fixed-point kernel reads quantized, as params of the same name."""
        return tuple(k for k in self.fixed_params if k in self.attrs)

    @property
    def aligned_inputs(self) -> bool:
        """Whether it combines several inputs position by position (they must share one layout)."""
        return self.max_inputs != 1

    def check(self, in_types: list[TensorType], attrs: dict[str, Any], params: dict[str, Any]) -> None:
        n = len(in_types)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            raise ShapeError(f"{self.name} takes {self.min_inputs}..{self.max_inputs} inputs, got {n}")
        for key, kind in self.attrs.items():
            if key not in attrs:
                raise ShapeError(f"{self.name} needs attribute {key!r}")
            if not _KINDS[kind](attrs[key]):
                raise ShapeError(f"{self.name} attribute {key!r} must be {kind}, got {attrs[key]!r}")
        for key, kind in {**self.optional_attrs, **self.fixed_attrs}.items():
            if key in attrs and not _KINDS[kind](attrs[key]):
                raise ShapeError(f"{self.name} attribute {key!r} must be {kind}, got {attrs[key]!r}")
        extra = set(attrs) - set(self.attrs) - set(self.optional_attrs) - set(self.fixed_attrs)
        if extra:
            raise ShapeError(f"{self.name} has unknown attributes {sorted(extra)}")
        for key in (*self.weights, *self.tables):
            if key not in params:
                raise ShapeError(f"{self.name} needs param {key!r}")
        extra = set(params) - {*self.weights, *self.optional_weights, *self.tables, *self.fixed_params}
        if extra:
            raise ShapeError(f"{self.name} has unknown params {sorted(extra)}")
