"""Load an ONNX file into the float IR.

The driver reads and validates the file, finds the data inputs, then walks the
nodes in order: a node on constants only is folded (``folding.py``), any
other node is lowered by its converter (``converters.py``), and verifies the
result. The graph comes back as converted: the clean-ups (dead nodes, identity
reshapes, affines folded into their producers) are passes, run by the build's
pipeline where they are listed (``fpgac.passes.pipeline.CLEANUPS``).

Every failure, whatever bytes the file holds, is a :class:`FrontendError` whose
one-line message names the file, and the node and op where there is one: the
CLI prints it as is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from fpgac.errors import FpgacError
from fpgac.frontend.batch_transposes import fold_batch_axis_batchnorms
from fpgac.frontend.constants import FoldError, tensor_to_numpy
from fpgac.frontend.context import FrontendError, NodeContext, Tensor
from fpgac.frontend.converters import CONVERTERS as _CORE_CONVERTERS
from fpgac.frontend.folding import FOLDERS as _CORE_FOLDERS
from fpgac.frontend.folding import fold
from fpgac.frontend.layouts import (
    absorb_flatten_transposes,
    absorb_input_transposes,
    absorb_output_transposes,
    absorb_reduce_transposes,
    sink_transposes,
)
from fpgac.frontend.qonnx_ops import QONNX_CONVERTERS, QONNX_FOLDERS, pin_weight_grids
from fpgac.ir import Graph, TensorType, Value, verify
from fpgac.ir.boundary import array_shape

log = logging.getLogger(__name__)

MIN_OPSET, MAX_OPSET = 7, 25
UPGRADE_OPSET = 13  # what older models are converted to
SUPPORTED_OPS = sorted(_CORE_CONVERTERS)  # ONNX ops on activations; FOLDERS adds ops on constants only
# With the quantizers (QONNX's, QuantizeLinear/DequantizeLinear), which the README lists in their section.
CONVERTERS = {**_CORE_CONVERTERS, **QONNX_CONVERTERS}
FOLDERS = {**_CORE_FOLDERS, **QONNX_FOLDERS}
_DEFAULT_DOMAINS = ("", "ai.onnx")


def load_onnx(path: str | Path) -> Graph:
    """Read an ONNX model and lower it to a verified float IR graph, as converted (node for node, but
    for the channels-last transposes of tf2onnx and keras2onnx, moved down through elementwise ops and
    absorbed into the graph's boundary, each other, Flatten -> MatMul's weights and reductions:
    layouts.py).

    The clean-ups every model then gets (dead nodes, identity reshapes, affine folding) are passes, run
    by the build's pipeline (:data:`fpgac.passes.pipeline.CLEANUPS`; :func:`fpgac.build.load_model`).

    Raises:
        FrontendError: for any file that cannot be read or lowered.
    """
    path = Path(path)
    label = path.name or str(path)
    try:
        return _load(path, label)
    except FpgacError as exc:
        message = str(exc)
        if message != _one_line(message):  # names from the file may hold line breaks
            raise type(exc)(_one_line(message)) from None
        raise
    except (RecursionError, MemoryError) as exc:
        raise FrontendError(
            f"{label}: model is too large or too deeply nested ({type(exc).__name__})"
        ) from None
    except Exception as exc:  # the contract: only FpgacError leaves load_onnx
        log.debug("unexpected error loading %s", path, exc_info=True)
        raise FrontendError(
            f"{label}: cannot load model: {type(exc).__name__}: {_one_line(str(exc))}"
        ) from exc


@dataclass(frozen=True)
class Problem:
    """One node fpgac cannot lower: its name, its op, and why (``fpgac inspect --check``)."""

    node: str
    op: str
    why: str


def check_onnx(path: str | Path) -> list[Problem]:
    """Every node of the model at ``path`` that fpgac cannot lower, all at once.

    Lowering goes on past a failing node: the nodes that read its outputs are skipped (their problem is
    that one), so each independent problem is listed once. A file that cannot be read at all is raised.
    """
    path = Path(path)
    label = path.name or str(path)
    problems: list[Problem] = []
    try:
        _load(path, label, problems)
    except FpgacError as exc:
        if not problems:
            problems.append(Problem("", "", _one_line(str(exc))))
    except Exception as exc:  # as in load_onnx: whatever the bytes, a line to print
        if not problems:
            why = f"cannot load model: {type(exc).__name__}: {_one_line(str(exc))}"
            problems.append(Problem("", "", why))
    return problems


def _load(path: Path, label: str, problems: list[Problem] | None = None) -> Graph:
    model = _read(path, label)
    opset = _opset(model, label)
    if opset < MIN_OPSET:
        model, opset = _upgrade(model, label, opset), UPGRADE_OPSET
    model = _infer_shapes(model, label)  # first: it completes output types the checker requires
    fold_batch_axis_batchnorms(model.graph)  # tf2onnx's BatchNormalization over a batch axis of 1
    invalid = _check(model, label)
    # A checker failure is fatal, but lowering names the node at fault more precisely
    # (an undefined input, an integer input), so its error, if any, is the one raised.
    graph = _Lowering(model, label, opset, problems).run()
    if problems:
        raise FrontendError(f"{label}: {len(problems)} nodes cannot be lowered")
    if invalid is not None:
        raise invalid
    try:
        verify(graph)
    except FpgacError as exc:
        raise FrontendError(f"{label}: lowering produced an invalid graph: {exc}") from None
    return graph


def _one_line(text: str, limit: int = 2000) -> str:
    return " ".join(text.split())[:limit]


# -- reading and validation ------------------------------------------------------------------------
def _read(path: Path, label: str) -> onnx.ModelProto:
    if not path.exists():
        raise FrontendError(f"{label}: no such file ({path})")
    if path.is_dir():
        raise FrontendError(f"{label}: is a directory, not an .onnx file")
    if path.suffix.lower() != ".onnx":
        raise FrontendError(f"{label}: not an ONNX model (expected a file ending in .onnx)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FrontendError(f"{label}: cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise FrontendError(f"{label}: file is empty")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError, TypeError) as exc:
        raise FrontendError(
            f"{label}: not a valid ONNX protobuf ({_one_line(str(exc)) or 'decode error'})"
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise FrontendError(f"{label}: not a valid ONNX model (no graph or no nodes)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        _load_external(model, path, label)
    return model


def _load_external(model: onnx.ModelProto, path: Path, label: str) -> None:
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # onnx raises OSError, ValueError, ... on bad references
        raise FrontendError(f"{label}: cannot load external weights: {_one_line(str(exc))}") from None


def _opset(model: onnx.ModelProto, label: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS]
    if not versions:
        if model.opset_import:
            raise FrontendError(f"{label}: model imports no opset of the default ONNX domain")
        return MIN_OPSET  # IR version 2 models had no opset_import; opset 1 semantics ~ old defaults
    opset = int(versions[0])
    if opset > MAX_OPSET:
        raise FrontendError(f"{label}: opset {opset} is not supported (supported: {MIN_OPSET}..{MAX_OPSET})")
    if not 9 <= opset <= 21:
        log.warning("%s: opset %d is outside the tested range 9..21", label, opset)
    return opset


def _upgrade(model: onnx.ModelProto, label: str, opset: int) -> onnx.ModelProto:
    """Models older than opset 7 (old exports, the onnx package's own node tests) are converted with
    onnx's version converter, so their ops are lowered with one set of semantics."""
    from onnx import version_converter

    # The converter is C++: give it only models the checker accepts (after shape inference, which
    # completes the output types the checker requires).
    model = _infer_shapes(model, label)
    invalid = _check(model, label)
    if invalid is not None:
        raise invalid
    try:
        upgraded = version_converter.convert_version(model, UPGRADE_OPSET)
    except Exception as exc:  # the converter raises bare RuntimeErrors and ValueErrors
        raise FrontendError(
            f"{label}: opset {opset} is too old and could not be upgraded to opset {UPGRADE_OPSET}: "
            f"{_one_line(str(exc))}"
        ) from None
    # The converter moves attributes (Pad's pads) into initializers, which IR v3 would need listed as inputs.
    upgraded.ir_version = max(upgraded.ir_version, 7)
    log.warning("%s: upgraded from opset %d to opset %d", label, opset, UPGRADE_OPSET)
    return upgraded


def _check(model: onnx.ModelProto, label: str) -> FrontendError | None:
    """The ONNX checker's verdict, as an error to raise (or None)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        return FrontendError(f"{label}: invalid ONNX model: {_one_line(str(exc))}")
    except ValueError as exc:  # models over 2 GB cannot be checked in memory
        log.warning("%s: ONNX checker skipped: %s", label, _one_line(str(exc)))
    return None


def _infer_shapes(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    """Run ONNX shape inference; the lowering recomputes shapes, so failure only warns.

    Inference serializes the model and parses its result back: with the weights that held them three
    more times (1.6 GB for VGG-19, the peak of its build). It runs on a copy whose big initializers have
    their type and dims but no data (no shape depends on a weight's values), and the model takes the
    value and output types it infers.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(
            _without_weights(model), check_type=False, strict_mode=False
        )
    except Exception as exc:  # InferenceError, ValueError, RuntimeError
        log.warning("%s: ONNX shape inference failed, continuing without it: %s", label, _one_line(str(exc)))
        return model
    for name in ("value_info", "output"):
        field = getattr(model.graph, name)
        del field[:]
        field.extend(getattr(inferred.graph, name))
    return model


_WEIGHT_ELEMENTS = 4096  # initializers above this size reach shape inference without their data


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose initializers of more than ``_WEIGHT_ELEMENTS`` elements hold no data."""
    light = onnx.ModelProto()
    _copy_fields(model, light, skip="graph")
    _copy_fields(model.graph, light.graph, skip="initializer")
    for tensor in model.graph.initializer:
        if math.prod(tensor.dims) > _WEIGHT_ELEMENTS and tensor.data_location != onnx.TensorProto.EXTERNAL:
            light.graph.initializer.add(name=tensor.name, dims=tensor.dims, data_type=tensor.data_type)
        else:
            light.graph.initializer.append(tensor)
    return light


def _copy_fields(source: Any, target: Any, skip: str) -> None:
    """Copy every set field of protobuf message ``source`` into ``target`` but ``skip``."""
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if field.is_repeated:
            getattr(target, field.name).extend(value)
        elif field.message_type is not None:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)


# -- lowering --------------------------------------------------------------------------------------
class _Lowering:
    """The state of one lowering: ONNX tensor names mapped to activations or constants."""

    def __init__(
        self, model: onnx.ModelProto, label: str, opset: int, problems: list[Problem] | None = None
    ) -> None:
        self.problems = problems  # collect every failing node here instead of raising the first
        self.failed: set[str] = set()  # outputs of failed nodes, when collecting
        self.model = model
        self.label = label
        self.opset = opset
        self.onnx_graph = model.graph
        self.graph = Graph(model.graph.name or Path(label).stem)
        self.env: dict[str, Tensor] = {}
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.batch: int | None = None

    def run(self) -> Graph:
        self._check_ops()
        inputs = self._inputs()
        used = {name for node in self.onnx_graph.node for name in node.input}
        used |= {o.name for o in self.onnx_graph.output}
        for index, node in enumerate(self.onnx_graph.node):
            if self.problems is None:
                self._node(index, node, used)
            else:
                self._node_collecting(index, node, used)
        if self.problems:
            return self.graph
        self.graph.set_outputs(self._outputs())
        sink_transposes(self.graph)  # keras2onnx's NHWC BatchNormalization between transposes
        absorb_input_transposes(self.graph)  # tf2onnx's NHWC input's transpose to channels first
        absorb_flatten_transposes(self.graph)  # tf2onnx's NHWC transpose before Flatten -> MatMul
        absorb_reduce_transposes(self.graph)  # and before global pooling
        absorb_output_transposes(self.graph)  # a feature map's transpose back to NHWC as an output
        if any(self._where(i, n)[1] in QONNX_FOLDERS for i, n in enumerate(self.onnx_graph.node)):
            pin_weight_grids(self.graph, self.label)
        self.graph.metadata = {
            "source": self.label,
            "opset": self.opset,
            "producer": self.model.producer_name,
            "batch": self.batch,
            "inputs": {v.name: ["N", *array_shape(self.graph, v)] for v in inputs},
            "outputs": {o.name: ["N", *self.env[o.name].shape] for o in self.onnx_graph.output},
        }
        return self.graph

    # -- graph inputs and outputs ------------------------------------------------------------------
    def _inputs(self) -> list[Value]:
        produced = {name for node in self.onnx_graph.node for name in node.output}
        data = [
            i for i in self.onnx_graph.input if i.name not in self.initializers and i.name not in produced
        ]
        if not data:
            raise FrontendError(f"{self.label}: model has no data input (every input has an initializer)")
        batches: set[int | None] = set()
        values = []
        for info in data:
            shape, batch = self._input_shape(info)
            batches.add(batch)
            value = self.graph.add_input(info.name, TensorType(shape))
            self.env[info.name] = value
            values.append(value)
        self.batch = batches.pop() if len(batches) == 1 else None
        return values

    def _input_shape(self, info: onnx.ValueInfoProto) -> tuple[tuple[int, ...], int | None]:
        where = f"{self.label}: input {info.name!r}"
        if info.type.WhichOneof("value") != "tensor_type":
            raise FrontendError(f"{where} is not a tensor")
        tensor = info.type.tensor_type
        if tensor.elem_type != onnx.TensorProto.FLOAT:
            name = (
                onnx.TensorProto.DataType.Name(tensor.elem_type)
                if tensor.elem_type in onnx.TensorProto.DataType.values()
                else tensor.elem_type
            )
            raise FrontendError(f"{where} has element type {name}; only float32 inputs are supported")
        if not tensor.HasField("shape"):
            raise FrontendError(f"{where} has no shape")
        dims = list(tensor.shape.dim)
        if not dims:
            raise FrontendError(f"{where} is a scalar; inputs need a batch axis first")
        for index, dim in enumerate(dims[1:], start=1):
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                label = dim.dim_param or "unknown"
                raise FrontendError(
                    f"{where} has dynamic dim {index} ({label!r}); only the batch dim (0) may be dynamic"
                )
        batch = dims[0].dim_value if dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None
        return tuple(int(d.dim_value) for d in dims[1:]), batch

    def _outputs(self) -> list[Value]:
        values = []
        for info in self.onnx_graph.output:
            value = self.env.get(info.name)
            if value is None:
                raise FrontendError(f"{self.label}: output {info.name!r} is not produced by any node")
            if not isinstance(value, Value):
                raise FrontendError(
                    f"{self.label}: output {info.name!r} is a constant; it does not depend on the input"
                )
            values.append(value)
        if not values:
            raise FrontendError(f"{self.label}: model has no outputs")
        return values

    # -- nodes -------------------------------------------------------------------------------------
    def _lookup(self, name: str) -> Tensor | None:
        if name in self.env:
            return self.env[name]
        if name in self.initializers:
            try:
                data = tensor_to_numpy(self.initializers[name], f"initializer {name!r}")
            except FoldError as exc:
                raise FrontendError(f"{self.label}: {exc}") from None
            self.env[name] = data
            return data
        return None

    def _where(self, index: int, node: onnx.NodeProto) -> tuple[str, str, str]:
        """The node's name, its op (domain-qualified outside the default domain) and an error prefix."""
        name = node.name or f"{node.op_type}_{index}"
        op = node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        return name, op, f"{self.label}: node {name!r} (op {op})"

    def _check_ops(self) -> None:
        """Refuse the first op fpgac cannot read before converting anything.

        Converting first would fail on whatever node breaks first, often an innocent one: a torch LSTM
        export fails on the Transpose before it (its perm moves the batch axis because the LSTM wants
        time first), which hides the LSTM that is the real limit.
        """
        for index, node in enumerate(self.onnx_graph.node):
            name, op, where = self._where(index, node)
            if op not in CONVERTERS and op not in FOLDERS and self.problems is not None:
                self.problems.append(Problem(name, op, "no converter for this op"))
                self.failed.update(node.output)
            elif op not in CONVERTERS and op not in FOLDERS:
                raise FrontendError(
                    f"{where} is not supported; the README's 'Supported ONNX ops' lists the "
                    f"{len(SUPPORTED_OPS)} that fpgac reads"
                )

    def _node_collecting(self, index: int, node: onnx.NodeProto, used: set[str]) -> None:
        """:meth:`_node`, recording a failure as a :class:`Problem` and skipping the nodes it feeds."""
        assert self.problems is not None
        if any(name in self.failed for name in [*node.input, *node.output[:1]]):
            self.failed.update(node.output)
            return
        name, op, where = self._where(index, node)
        try:
            self._node(index, node, used)
        except FrontendError as exc:
            message = _one_line(str(exc))
            why = message[len(where) :].lstrip(":; ") if message.startswith(where) else message
            self.problems.append(Problem(name, op, why))
            self.failed.update(node.output)

    def _node(self, index: int, node: onnx.NodeProto, used: set[str]) -> None:
        name, op, where = self._where(index, node)
        if not node.output or not node.output[0]:
            raise FrontendError(f"{where} has no output")
        inputs: list[Tensor | None] = []
        for input_name in node.input:
            value = self._lookup(input_name) if input_name else None
            if input_name and value is None:
                raise FrontendError(
                    f"{where}: input {input_name!r} is not defined "
                    "(no initializer, graph input or earlier node)"
                )
            inputs.append(value)
        ctx = NodeContext(
            label=self.label,
            graph=self.graph,
            opset=self.opset,
            batch=self.batch,
            name=name,
            op=op,
            inputs=inputs,
            input_names=list(node.input),
            attrs=self._attributes(node, where),
            outputs=[o or f"{name}_out{i}" for i, o in enumerate(node.output)],
        )
        outputs = self._evaluate(ctx, where)
        for i, output_name in enumerate(node.output):
            if not output_name:
                continue
            if i >= len(outputs):
                if output_name in used:
                    raise FrontendError(f"{where}: output {i} ({output_name!r}) is used but not supported")
                continue
            self.env[output_name] = outputs[i]

    def _evaluate(self, ctx: NodeContext, where: str) -> list[Tensor]:
        present = [v for v in ctx.inputs if v is not None]
        constants = [v for v in ctx.inputs if not isinstance(v, Value)]
        if ctx.op in FOLDERS and len(constants) == len(ctx.inputs):
            try:
                return list(fold(ctx.op, constants, ctx.attrs, ctx.opset, FOLDERS[ctx.op]))
            except FoldError as exc:
                raise FrontendError(f"{where}: {exc}") from None
        if ctx.op not in CONVERTERS:
            raise FrontendError(
                f"{where} is supported only on constants, but an input depends on the model input"
            )
        if present and not any(isinstance(v, Value) for v in present):
            raise FrontendError(f"{where}: all inputs are constant, and folding this op is not supported")
        try:
            return CONVERTERS[ctx.op](ctx)
        except FoldError as exc:
            raise ctx.error(str(exc)) from None

    @staticmethod
    def _attributes(node: onnx.NodeProto, where: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        for attr in node.attribute:
            try:
                value = onnx.helper.get_attribute_value(attr)
            except Exception as exc:  # onnx raises ValueError/TypeError on malformed attributes
                raise FrontendError(
                    f"{where}: cannot read attribute {attr.name!r}: {_one_line(str(exc))}"
                ) from None
            if value is None:
                continue  # an attribute without a type carries nothing
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            elif isinstance(value, list) and value and isinstance(value[0], bytes):
                value = [v.decode("utf-8", errors="replace") for v in value]
            attrs[attr.name] = value
        return attrs
