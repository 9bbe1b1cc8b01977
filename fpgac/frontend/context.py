"""What a converter sees of the ONNX node it lowers, and the frontend's error type.

Converters in ``converters.py`` take one :class:`NodeContext` and return the node's
outputs. The context hides the two kinds of ONNX tensors the frontend tracks:

* activations: IR :class:`~fpgac.ir.Value` objects whose ONNX shape is
  ``(N, *value.shape)``: axis 0 of every activation is the batch and never
  reaches the IR;
* constants: numpy arrays (initializers and folded computations), possibly
  ``object`` arrays holding a symbolic batch size (see ``constants.py``).

Every error a converter raises goes through :meth:`NodeContext.error`, so each
message names the file, the node and the op on one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from fpgac.errors import FpgacError
from fpgac.frontend.constants import FoldError, is_symbolic
from fpgac.ir import Graph, Param, ShapeError, Value

Tensor = Value | np.ndarray


class FrontendError(FpgacError):
    """The model file cannot be read or lowered; the message names the file (and node)."""


class NodeContext:
    """One ONNX node being lowered: its inputs, attributes, and the graph to emit into."""

    def __init__(
        self,
        *,
        label: str,
        graph: Graph,
        opset: int,
        batch: int | None,
        name: str,
        op: str,
        inputs: list[Tensor | None],
        input_names: list[str],
        attrs: dict[str, Any],
        outputs: list[str],
    ) -> None:
        self.label = label
        self.graph = graph
        self.opset = opset
        self.batch = batch  # static batch size, or None when it is dynamic
        self.name = name
        self.op = op
        self.inputs = inputs
        self.input_names = input_names
        self.attrs = attrs
        self.outputs = outputs

    # -- errors -----------------------------------------------------------------------------
    def error(self, message: str) -> FrontendError:
        return FrontendError(f"{self.label}: node {self.name!r} (op {self.op}): {message}")

    # -- inputs -----------------------------------------------------------------------------
    def has(self, index: int) -> bool:
        return index < len(self.inputs) and self.inputs[index] is not None

    def act(self, index: int) -> Value:
        """Input ``index`` as an activation; a constant here is not supported."""
        if not self.has(index):
            raise self.error(f"input {index} is missing")
        value = self.inputs[index]
        if not isinstance(value, Value):
            raise self.error(
                f"input {self.input_names[index]!r} is a constant; this op is supported only on "
                "activations computed from the model input"
            )
        return value

    def const(self, index: int, what: str, default: np.ndarray | None = None) -> np.ndarray:
        """Input ``index`` as a numeric constant (initializer or folded)."""
        if not self.has(index):
            if default is not None:
                return default
            raise self.error(f"input {index} ({what}) is missing")
        value = self.inputs[index]
        if isinstance(value, Value):
            raise self.error(
                f"input {self.input_names[index]!r} ({what}) must be a constant, but it is computed "
                "from the model input"
            )
        assert value is not None
        if is_symbolic(value):
            raise self.error(f"input {self.input_names[index]!r} ({what}) depends on the run-time batch size")
        return value

    def const_raw(self, index: int, what: str) -> np.ndarray:
        """Like :meth:`const`, but symbolic batch entries are allowed (shape tensors)."""
        value = self.inputs[index] if self.has(index) else None
        if isinstance(value, np.ndarray):
            return value
        return self.const(index, what)

    def floats(self, index: int, what: str) -> np.ndarray:
        data = self.const(index, what)
        if data.dtype.kind not in "biuf":
            raise self.error(f"{what} must be numeric, not {data.dtype}")
        return data.astype(np.float32, copy=False)  # emit() copies params, so no copy here

    def ints_input(self, index: int, what: str) -> list[int]:
        data = self.const(index, what)
        if data.dtype.kind not in "iu" or data.ndim > 1:
            raise self.error(f"{what} must be a 1-d integer tensor, got {data.dtype} of shape {data.shape}")
        return [int(v) for v in data.reshape(-1)]

    # -- attributes -------------------------------------------------------------------------
    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def int_attr(self, key: str, default: int) -> int:
        value = self.attrs.get(key, default)
        if not isinstance(value, (int, np.integer)):
            raise self.error(f"attribute {key!r} must be an integer, not {value!r}")
        return int(value)

    def float_attr(self, key: str, default: float) -> float:
        value = self.attrs.get(key, default)
        if not isinstance(value, (int, float, np.integer, np.floating)):
            raise self.error(f"attribute {key!r} must be a number, not {value!r}")
        return float(value)

    def ints_attr(self, key: str, default: list[int] | None = None) -> list[int] | None:
        value = self.attrs.get(key, default)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, np.integer)) for v in value):
            raise self.error(f"attribute {key!r} must be a list of integers, not {value!r}")
        return [int(v) for v in value]

    def str_attr(self, key: str, default: str) -> str:
        value = self.attrs.get(key, default)
        if not isinstance(value, str):
            raise self.error(f"attribute {key!r} must be a string, not {value!r}")
        return value

    # -- axes -------------------------------------------------------------------------------
    def axis(self, axis: int, onnx_rank: int, what: str = "axis") -> int:
        """Map an ONNX axis of a rank-``onnx_rank`` activation to the IR (per-sample) axis."""
        if not -onnx_rank <= axis < onnx_rank:
            raise self.error(f"{what} {axis} is out of range for a rank-{onnx_rank} tensor")
        axis %= onnx_rank
        if axis == 0:
            raise self.error(f"{what} 0 is the batch axis; ops across the batch are not supported")
        return axis - 1

    # -- emitting ---------------------------------------------------------------------------
    def emit(
        self,
        op: str,
        inputs: Iterable[Value],
        attrs: Mapping[str, Any] | None = None,
        params: Mapping[str, np.ndarray] | None = None,
        *,
        suffix: str = "",
    ) -> Value:
        """Add one IR node. The node without ``suffix`` carries the ONNX node and output name."""
        name = f"{self.name}/{suffix}" if suffix else self.name
        out = f"{self.outputs[0]}/{suffix}" if suffix else self.outputs[0]
        # np.array, not ascontiguousarray: the latter turns 0-d params into shape (1,).
        ir_params = {k: Param(np.array(v, dtype=np.float32, order="C")) for k, v in (params or {}).items()}
        try:
            node = self.graph.add(
                op, list(inputs), name=name, attrs=dict(attrs or {}), params=ir_params, output_names=[out]
            )
        except (ShapeError, FoldError) as exc:
            raise self.error(str(exc)) from None
        return node.output
