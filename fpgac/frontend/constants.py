"""Constants of the ONNX frontend: tensor decoding, size limits, and a symbolic batch size.

Exporters compute shapes at run time: TorchScript writes ``x.view(x.size(0), -1)``
as ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``, and weights in old models
come out of ``ConstantOfShape``. Everything that does not depend on the data is
folded in numpy (``folding.py``) before lowering sees it.

The one run-time quantity a shape computation may legally see is the batch size
(axis 0 of every activation). It is carried as :class:`BatchDim` entries inside
``object`` arrays, so ``Shape(x)[0]`` folds to ``[N]`` and ``Concat([N], [-1])``
to ``[N, -1]``; a ``Reshape`` then recognises ``N`` in position 0 as "keep the
batch". Arithmetic that would mix the batch into other numbers (``N + 1``,
``N * 4`` used as a non-batch dim) stays exact where it can (``N * 4`` is
``BatchDim(4)``) and fails loudly where it cannot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np
import onnx
from onnx import numpy_helper

# A folded constant above this many elements is refused: fuzzed or hostile models
# can ask ConstantOfShape for terabytes. VGG-19's largest weight is ~1.0e8.
MAX_CONST_ELEMENTS = 1 << 27


class FoldError(Exception):
    """A constant computation that cannot be folded; the caller adds file/node context."""


class BatchDim:
    """``coef`` times the (run-time) batch size N, as an entry of a shape tensor."""

    __slots__ = ("coef",)

    def __init__(self, coef: int = 1) -> None:
        self.coef = int(coef)

    def __repr__(self) -> str:
        return "N" if self.coef == 1 else f"{self.coef}*N"

    def __hash__(self) -> int:
        return hash(("BatchDim", self.coef))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BatchDim):
            return self.coef == other.coef
        if _is_int(other) and int(other) <= 0 < self.coef:
            return False  # N >= 1, so it never equals 0 or -1 (the special reshape entries)
        raise FoldError(f"cannot compare the batch size {self!r} with {other!r}")

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __mul__(self, other: object) -> BatchDim:
        if _is_int(other):
            return BatchDim(self.coef * int(other))
        raise FoldError(f"cannot multiply the batch size {self!r} by {other!r}")

    __rmul__ = __mul__

    def __add__(self, other: object) -> BatchDim:
        if _is_int(other) and int(other) == 0:
            return self
        raise FoldError(f"cannot add {other!r} to the batch size {self!r}")

    __radd__ = __add__

    def __sub__(self, other: object) -> BatchDim:
        return self.__add__(-other if _is_int(other) else other)

    def __floordiv__(self, other: object) -> BatchDim:
        if _is_int(other) and int(other) != 0 and self.coef % int(other) == 0:
            return BatchDim(self.coef // int(other))
        raise FoldError(f"cannot divide the batch size {self!r} by {other!r}")

    __truediv__ = __floordiv__

    def __int__(self) -> int:
        raise FoldError("the batch size is only known at run time")

    __index__ = __int__
    __float__ = __int__


def _is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_symbolic(array: np.ndarray) -> bool:
    """Whether ``array`` holds a :class:`BatchDim` entry."""
    return array.dtype == object and any(isinstance(v, BatchDim) for v in array.flat)


def simplify(array: Any) -> np.ndarray:
    """Turn object arrays back into int64 where no batch entry is left."""
    array = np.asarray(array)
    if array.dtype == object and not is_symbolic(array):
        try:
            return array.astype(np.int64)
        except (TypeError, ValueError, OverflowError):
            return array.astype(np.float64)
    return array


def checked_size(shape: Sequence[int], what: str) -> tuple[int, ...]:
    """Validate a shape a constant is about to be created with."""
    try:
        dims = tuple(int(d) for d in shape)
    except FoldError as exc:
        raise FoldError(f"{what} depends on the run-time batch size: {exc}") from None
    if any(d < 0 for d in dims):
        raise FoldError(f"{what} has a negative dimension: {list(dims)}")
    if math.prod(dims) > MAX_CONST_ELEMENTS:
        raise FoldError(f"{what} of shape {list(dims)} is too large to fold")
    return dims


def tensor_to_numpy(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """A TensorProto as a numpy array; every decoding failure becomes a FoldError."""
    if not isinstance(tensor, onnx.TensorProto):
        raise FoldError(f"{what} is not a tensor")
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise FoldError(f"{what}: external data was not loaded")
    checked_size(tensor.dims, what)
    try:
        array = numpy_helper.to_array(tensor)
    except Exception as exc:  # onnx raises many types on bad tensors
        raise FoldError(f"{what}: cannot decode tensor: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise FoldError(f"{what}: tensors of type {array.dtype} are not supported")
    return array


def ints(array: np.ndarray, what: str) -> list[int]:
    """A constant 0-d or 1-d integer tensor as a list of ints (no batch entries allowed)."""
    flat = np.asarray(array).reshape(-1)
    try:
        return [int(v) for v in flat]
    except FoldError as exc:
        raise FoldError(f"{what} depends on the run-time batch size: {exc}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise FoldError(f"{what} is not a list of integers: {exc}") from None
