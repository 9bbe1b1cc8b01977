"""Load a Keras or QKeras model into the float IR, with QKeras's quantizers as formats on the IR.

Keras is channels-last; the IR's shapes are ONNX's, channels first. Every Keras tensor of rank 2 or more
(``(steps, C)``, ``(H, W, C)``) is held as the IR value ``(C, steps)`` / ``(C, H, W)``: the model input
is transposed once at the start (absorbed into the graph's boundary: its arrays stay channels-last,
:mod:`fpgac.ir.boundary`), and a ``Flatten``, ``Reshape`` or model output transposes back to Keras's
order first, so every element lands where Keras puts it (a ``Flatten`` into a ``Dense`` permutes the
dense weights instead; a model output's transpose is the boundary too). Weights are transposed to the
IR's layouts (dense ``(out, in)``, conv ``(out, in / groups, *kernel)``).

QKeras's quantizers become formats (:mod:`fpgac.frontend.keras_quantizers`): a weight quantizer is the
format of the param (``quantize`` keeps it), an activation quantizer the format of the value it
quantizes. Where the quantized value is the output of a layer that rounds once (dense, conv, add, ...),
that output takes the format itself, so the design rounds exactly where QKeras does, once; elsewhere a
``clip`` without bounds is the cast. ``quantized_relu`` is the signed format one bit wider, then a ReLU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.errors import FpgacError
from fpgac.frontend.context import FrontendError
from fpgac.frontend.keras_files import KerasFiles, LayerWeights, read_keras
from fpgac.frontend.keras_quantizers import (
    Quantizer,
    activation_format,
    is_quantizer,
    parse_quantizer,
    quantize_weight,
    tanh_format,
)
from fpgac.frontend.layouts import (
    absorb_flatten_transposes,
    absorb_input_transposes,
    absorb_output_transposes,
)
from fpgac.ir import Graph, Param, TensorType, Value, verify
from fpgac.ir.boundary import array_shape
from fpgac.ir.opdef import ShapeError
from fpgac.ir.types import FLOAT32, Fixed, Overflow, Rounding

log = logging.getLogger(__name__)

# Ops whose fixed-point kernel computes an exact result and rounds it once into the output format:
# a quantizer right after them is their output format.
_ROUNDS_ONCE = frozenset({"dense", "conv", "affine", "add", "sub", "relu", "clip"})
_MOVES = frozenset({"transpose", "reshape"})  # move values without arithmetic: formats pass through
_IDENTITY = frozenset(
    {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
     "ActivityRegularization", "AlphaDropout"}
)  # fmt: skip


def load_keras(path: str | Path, weights_path: str | Path | None = None) -> Graph:
    """Read a Keras/QKeras model (``.h5``, ``.keras``, or ``.json`` with ``weights_path``) into a
    verified float IR graph whose quantized params and values carry QKeras's formats.

    Raises:
        FrontendError: for any file or layer that cannot be read or lowered, naming the layer.
    """
    path = Path(path)
    label = path.name or str(path)
    files = read_keras(path, Path(weights_path) if weights_path else None, label)
    lowering = _Lowering(files, label)
    try:
        graph = lowering.run()
        verify(graph)
    except FrontendError:
        raise
    except FpgacError as exc:
        raise FrontendError(f"{label}: {exc}") from None
    except Exception as exc:  # a config that is not what Keras writes: still one line, naming the layer
        log.debug("unexpected error loading %s", path, exc_info=True)
        where = f" {lowering.where}:" if lowering.where else ""
        raise FrontendError(
            f"{label}:{where} cannot read the Keras config: {type(exc).__name__}: {exc}"
        ) from None
    return graph


def _channels_first(rank: int) -> list[int]:
    """The perm taking a channels-last tensor of ``rank`` per-sample axes to channels first."""
    return [rank - 1, *range(rank - 1)]


def _channels_last(rank: int) -> list[int]:
    return [*range(1, rank), 0]


class _Lowering:
    def __init__(self, files: KerasFiles, label: str) -> None:
        self.files = files
        self.label = label
        self.keras3 = files.keras3
        config = files.config["config"]
        self.graph = Graph(str(config.get("name", Path(label).stem)) if isinstance(config, dict) else "keras")
        self.env: dict[str, Value] = {}  # Keras tensor ("layer:node:index") -> IR value (channels first)
        self.readers: dict[str, int] = {}  # Keras tensor -> how many layers read it
        self.outputs: set[str] = set()
        self.where = ""

    # -- the walk ------------------------------------------------------------------------------
    def run(self) -> Graph:
        layers = self._layers()
        for _, inbound in layers:
            for key in inbound:
                self.readers[key] = self.readers.get(key, 0) + 1
        out_keys = self._output_keys(layers)
        self.outputs = set(out_keys)
        for layer, inbound in layers:
            self._layer(layer, inbound)
        outputs = []
        for key in out_keys:
            value = self.env[key]
            if len(value.shape) >= 2:
                value = self._add("transpose", [value], {"perm": _channels_last(len(value.shape))},
                                  name=f"{key.split(':')[0]}/to_channels_last")  # fmt: skip
            outputs.append(value)
        self.graph.set_outputs(outputs)
        absorb_input_transposes(self.graph)
        absorb_output_transposes(self.graph)
        absorb_flatten_transposes(self.graph)
        self.graph.metadata = {
            "source": self.label,
            "producer": f"keras {self.files.config.get('keras_version', '3' if self.keras3 else '2')}",
            "batch": None,
            "inputs": {v.name: ["N", *array_shape(self.graph, v)] for v in self.graph.inputs},
            "outputs": {key.split(":")[0]: ["N", *v.shape] for key, v in zip(out_keys, outputs, strict=True)},
        }
        return self.graph

    def _layers(self) -> list[tuple[dict[str, Any], list[str]]]:
        """Every layer with the Keras tensors it reads, in order (a Sequential model is a chain)."""
        model = self.files.config
        config = model["config"]
        layers = config if isinstance(config, list) else config.get("layers")
        if not isinstance(layers, list) or not layers:
            raise FrontendError(f"{self.label}: the model config has no layers")
        if model["class_name"] == "Sequential":
            chain: list[tuple[dict[str, Any], list[str]]] = []
            previous: list[str] = []
            first = layers[0]
            if first.get("class_name") != "InputLayer":
                shape = first.get("config", {}).get("batch_input_shape") or first.get("config", {}).get(
                    "batch_shape"
                )
                if shape is None:
                    shape = config.get("build_input_shape") if isinstance(config, dict) else None
                if shape is None:
                    raise FrontendError(f"{self.label}: the Sequential model declares no input shape")
                chain.append(
                    ({"class_name": "InputLayer", "config": {"name": "input", "batch_shape": shape}}, [])
                )
                previous = ["input:0:0"]
            for layer in layers:
                name = self._name(layer)
                chain.append((layer, previous))
                previous = [f"{name}:0:0"]
            return chain
        return [(layer, self._inbound(layer)) for layer in layers]

    @staticmethod
    def _name(layer: dict[str, Any]) -> str:
        return str(layer.get("name") or layer.get("config", {}).get("name"))

    def _inbound(self, layer: dict[str, Any]) -> list[str]:
        nodes = layer.get("inbound_nodes", [])
        if not nodes:
            return []
        if len(nodes) > 1:
            raise FrontendError(
                f"{self.label}: layer {self._name(layer)!r} is called more than once (shared)"
            )
        node = nodes[0]
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            found: list[str] = []
            _keras3_tensors(node.get("args", []), found)
            return found
        return [f"{entry[0]}:{entry[1]}:{entry[2]}" for entry in node]

    def _output_keys(self, layers: list[tuple[dict[str, Any], list[str]]]) -> list[str]:
        config = self.files.config["config"]
        if self.files.config["class_name"] == "Sequential" or not isinstance(config, dict):
            return [f"{self._name(layers[-1][0])}:0:0"]
        outs = config.get("output_layers", [])
        if outs and not isinstance(outs[0], list):
            outs = [outs]  # Keras 3 writes a single output as one [name, node, index]
        return [f"{o[0]}:{o[1]}:{o[2]}" for o in outs]

    # -- emitting ------------------------------------------------------------------------------
    def error(self, message: str) -> FrontendError:
        return FrontendError(f"{self.label}: {self.where}: {message}")

    def _add(
        self,
        op: str,
        inputs: list[Value],
        attrs: dict[str, Any] | None = None,
        params: dict[str, Param] | None = None,
        *,
        name: str,
        fmt: Fixed | None = None,
    ) -> Value:
        """One IR node; its output is float unless ``fmt`` declares a quantizer's format."""
        try:
            node = self.graph.add(op, inputs, name=name, attrs=attrs or {}, params=params or {},
                                  output_names=[name])  # fmt: skip
        except ShapeError as exc:
            raise self.error(str(exc)) from None
        node.output.type = node.output.type.with_format(fmt or FLOAT32)
        return node.output

    def _quantized(self, value: Value, fmt: Fixed, key: str, name: str) -> Value:
        """``value`` in ``fmt``: the producer's own output format where it rounds once and nobody else
        reads it, else a cast (a ``clip`` without bounds)."""
        sole = self.readers.get(key, 0) <= 1 and key not in self.outputs
        if sole and _can_declare(value):
            _declare(value, fmt)
            return value
        return self._add("clip", [value], {"min": None, "max": None}, name=name, fmt=fmt)

    # -- layers --------------------------------------------------------------------------------
    def _layer(self, layer: dict[str, Any], inbound: list[str]) -> None:
        kind = str(layer.get("class_name"))
        config = layer.get("config", {})
        name = self._name(layer)
        self.where = f"layer {name!r} ({kind})"
        key = f"{name}:0:0"
        if kind == "InputLayer":
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            if not shape or any(d is None or d <= 0 for d in shape[1:]):
                raise self.error(f"input shape {shape} must be fixed but for the batch")
            dims = tuple(int(d) for d in shape[1:])
            value = self.graph.add_input(name, TensorType(dims))
            if len(dims) >= 2:
                value = self._add("transpose", [value], {"perm": _channels_first(len(dims))},
                                  name=f"{name}/to_channels_first")  # fmt: skip
            self.env[key] = value
            return
        missing = [k for k in inbound if k not in self.env]
        if missing or not inbound:
            raise self.error(f"reads {missing or 'nothing'}, which no earlier layer makes")
        xs = [self.env[k] for k in inbound]
        convert = _CONVERTERS.get(kind)
        if kind in _IDENTITY:
            self.env[key] = xs[0]
            return
        if convert is None:
            raise FrontendError(
                f"{self.label}: {self.where} is not supported; the README's 'Keras and QKeras models' "
                "lists the layers fpgac reads"
            )
        try:
            self.env[key] = convert(self, xs, inbound, config, name)
        except FpgacError as exc:
            if isinstance(exc, FrontendError):
                raise
            raise self.error(str(exc)) from None

    def weights(self, name: str, roles: list[str]) -> dict[str, np.ndarray]:
        """The layer's weights by role (``kernel``, ``bias``, ...): by name where the file names them,
        else in the order the layer creates them (``roles``)."""
        stored: LayerWeights = self.files.weights.get(name, [])
        if len(stored) != len(roles):
            raise self.error(f"has {len(stored)} weight arrays in the file, expected {len(roles)} ({roles})")
        if all(n is not None for n, _ in stored):
            by_name = {n: a for n, a in stored}
            if set(by_name) == set(roles):
                return {r: by_name[r] for r in roles}
        return {r: a for r, (_, a) in zip(roles, stored, strict=True)}

    def weight_param(
        self, q: Quantizer | None, data: np.ndarray, what: str
    ) -> tuple[np.ndarray, Fixed | None]:
        """A weight (Keras layout) as QKeras computes with it, and its format (None: float)."""
        if q is None:
            return data.astype(np.float32), None
        values, fmt = quantize_weight(q, data)
        if fmt is None:
            log.warning("%s: %s %s has a scale that is not a power of two: its values are quantized at the "
                        "build's precision, not as a format", self.where, what, q)  # fmt: skip
        return values, fmt

    def layer_activation(self, y: Value, config: dict[str, Any], name: str) -> Value:
        """The ``activation`` of a Dense/Conv layer: its pre-activation is the layer's alone."""
        return self.activation(y, config.get("activation"), f"{name}/linear", name)

    def linear_name(self, config: dict[str, Any], name: str) -> str:
        """The name of a Dense/Conv layer's own node: the layer's, or ``<layer>/linear`` when an
        activation follows inside the layer (that node then carries the layer's name)."""
        return name if config.get("activation") in (None, "linear") else f"{name}/linear"

    def activation(self, x: Value, spec: Any, key: str, name: str) -> Value:
        """A layer's ``activation`` (a Keras name or a QKeras quantizer) applied to ``x``."""
        if spec is None or spec == "linear":
            return x
        if is_quantizer(spec):
            q = parse_quantizer(spec)
            assert q is not None
            return self.quantizer(x, q, key, name)
        if isinstance(spec, dict):
            spec = spec.get("config", {}).get("name", spec.get("class_name"))
        return _keras_activation(self, x, str(spec), name)

    def quantizer(self, x: Value, q: Quantizer, key: str, name: str) -> Value:
        fmt = activation_format(q)
        if q.name == "quantized_relu":
            wide = Fixed(fmt.width + 1, fmt.int_bits + 1, True, Rounding.RND_CONV, Overflow.SAT)
            signed = self._quantized(x, wide, key, f"{name}/quant")
            return self._add("relu", [signed], name=name, fmt=fmt)
        if q.name == "quantized_sigmoid":
            # round(2**b (x / 2 + 1 / 2)) = round(2**(b-1) x) + 2**(b-1) (an even integer: ties still go
            # to even), and the clip to [0 (or 2**-b), 1 - 2**-b] is x's saturation at b bits: so the
            # quantizer is x in quantized_tanh's ap_fixed<b, 1>, then the exact affine x / 2 + 1 / 2.
            if fmt.width < 2:
                raise self.error(f"{q}: needs at least 2 bits")
            tanh = tanh_format(q)
            half = self.constant(0.5, x)
            t = self._quantized(x, tanh, key, f"{name}/quant")
            return self._add("affine", [t], params={"scale": half, "shift": half}, name=name, fmt=fmt)
        return self._quantized(x, fmt, key, name)

    @staticmethod
    def constant(v: float, x: Value) -> Param:
        return Param(np.full((1,) * len(x.shape), v, dtype=np.float32))

    def channel_axis(self, axis: int, rank: int) -> int:
        """A Keras axis (counting the batch as 0, or negative) as the IR's (channels-first) axis."""
        k = axis % (rank + 1) if axis < 0 else axis
        if k == 0:
            raise self.error("an axis over the batch is not supported")
        k -= 1
        if rank >= 2:
            return 0 if k == rank - 1 else k + 1
        return k


def _can_declare(value: Value) -> bool:
    """Whether ``value`` can take a format as its producer's output: a graph input, the output of an op
    that rounds once, or a move (the input's transpose to channels first) of such a value read only by it.
    """
    if isinstance(value.type.format, Fixed):
        return False
    producer = value.producer
    if producer is None or producer.op in _ROUNDS_ONCE:
        return True
    source = producer.inputs[0] if producer.op in _MOVES else None
    return source is not None and len(source.uses) == 1 and _can_declare(source)


def _declare(value: Value, fmt: Fixed) -> None:
    value.type = value.type.with_format(fmt)
    producer = value.producer
    if producer is not None and producer.op in _MOVES:
        _declare(producer.inputs[0], fmt)


def _keras3_tensors(args: Any, found: list[str]) -> None:
    if isinstance(args, dict):
        if args.get("class_name") == "__keras_tensor__":
            name, node, index = args["config"]["keras_history"]
            found.append(f"{name}:{node}:{index}")
        return
    if isinstance(args, list):
        for a in args:
            _keras3_tensors(a, found)


Converter = Callable[[_Lowering, list[Value], list[str], dict[str, Any], str], Value]


def _param(values: np.ndarray, fmt: Fixed | None) -> Param:
    if fmt is None:
        return Param(np.ascontiguousarray(values, dtype=np.float32))
    dtype = np.float32 if fmt.width <= 24 else np.float64
    return Param(np.ascontiguousarray(values, dtype=dtype), fmt)


def _quantizers(config: dict[str, Any], *keys: str) -> list[Quantizer | None]:
    return [parse_quantizer(config.get(k)) for k in keys]


def _dense(low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str) -> Value:
    (x,) = xs
    if len(x.shape) != 1:
        raise low.error(
            f"a Dense layer on a rank-{len(x.shape)} input (per sample) is not supported; flatten first"
        )
    use_bias = bool(config.get("use_bias", True))
    w = low.weights(name, ["kernel", "bias"] if use_bias else ["kernel"])
    kq, bq = _quantizers(config, "kernel_quantizer", "bias_quantizer")
    kernel, kfmt = low.weight_param(kq, w["kernel"], "kernel")
    params = {"weight": _param(kernel.T, kfmt)}
    if use_bias:
        bias, bfmt = low.weight_param(bq, w["bias"], "bias")
        params["bias"] = _param(bias, bfmt)
    y = low._add("dense", [x], params=params, name=low.linear_name(config, name))
    return low.layer_activation(y, config, name)


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: the extra row or column goes at the end."""
    span = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _window(
    low: _Lowering, x: Value, config: dict[str, Any], kernel: list[int], default_strides: int | list[int] = 1
) -> dict[str, Any]:
    """Strides, pads and dilations; strides default to 1 (convolutions) or the window (pooling)."""
    spatial = list(x.shape[1:])
    n = len(spatial)
    strides = _ints(config.get("strides") or default_strides, n)
    dilations = _ints(config.get("dilation_rate", 1), n)
    padding = str(config.get("padding", "valid")).lower()
    if config.get("data_format", "channels_last") not in (None, "channels_last"):
        raise low.error("data_format channels_first is not supported (Keras's default is channels_last)")
    begins, ends = [0] * n, [0] * n
    if padding == "same":
        for i in range(n):
            begins[i], ends[i] = _same_pads(spatial[i], kernel[i], strides[i], dilations[i])
    elif padding == "causal":
        begins[0] = (kernel[0] - 1) * dilations[0]
    elif padding != "valid":
        raise low.error(f"padding {padding!r} is not supported")
    return {"strides": strides, "pads": begins + ends, "dilations": dilations}


def _ints(value: Any, n: int) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    return [int(v) for v in value]


def _conv(low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str) -> Value:
    (x,) = xs
    depthwise = "depthwise_kernel_size" in config or "depth_multiplier" in config
    kernel_key = "depthwise_kernel" if depthwise else "kernel"
    if len(x.shape) < 2:
        raise low.error(f"input {list(x.shape)} has no spatial axes")
    n = len(x.shape) - 1
    use_bias = bool(config.get("use_bias", True))
    w = low.weights(name, [kernel_key, "bias"] if use_bias else [kernel_key])
    k = w[kernel_key]
    kernel = list(k.shape[:n])
    quant_key = "depthwise_quantizer" if depthwise else "kernel_quantizer"
    kq, bq = _quantizers(config, quant_key, "bias_quantizer")
    values, kfmt = low.weight_param(kq, k, "kernel")
    channels = x.shape[0]
    attrs = _window(low, x, config, kernel)
    if depthwise:  # (k..., C, mult) -> (C * mult, 1, k...): output channel c * mult + m
        mult = values.shape[-1]
        weight = np.moveaxis(values, (n, n + 1), (0, 1)).reshape(channels * mult, 1, *kernel)
        attrs["groups"] = channels
    else:  # (k..., C_in / groups, C_out) -> (C_out, C_in / groups, k...)
        weight = np.moveaxis(values, (n, n + 1), (1, 0))
        attrs["groups"] = int(config.get("groups", 1))
    params = {"weight": _param(weight, kfmt)}
    if use_bias:
        bias, bfmt = low.weight_param(bq, w["bias"], "bias")
        params["bias"] = _param(bias, bfmt)
    y = low._add("conv", [x], attrs, params, name=low.linear_name(config, name))
    return low.layer_activation(y, config, name)


def _batch_norm(
    low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
) -> Value:
    (x,) = xs
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if not isinstance(axis, int) or low.channel_axis(axis, len(x.shape)) != 0:
        raise low.error(f"normalization over axis {axis} is not supported (only the channel axis)")
    roles = (["gamma"] if config.get("scale", True) else []) + (
        ["beta"] if config.get("center", True) else []
    )
    w = low.weights(name, [*roles, "moving_mean", "moving_variance"])
    q = dict(zip(("gamma", "beta", "moving_mean", "moving_variance"),
                 _quantizers(config, "gamma_quantizer", "beta_quantizer", "mean_quantizer",
                             "variance_quantizer"), strict=True))  # fmt: skip
    channels = x.shape[0]
    values = {}
    for role, default in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", None), ("moving_variance", None)):
        data = w.get(role, np.full(channels, default, np.float32) if default is not None else None)
        assert data is not None
        values[role] = low.weight_param(q[role], data, role)[0].astype(np.float64)
    var = values["moving_variance"] + float(config.get("epsilon", 1e-3))
    if not np.all(var > 0):
        raise low.error("variance + epsilon must be positive")
    scale = values["gamma"] / np.sqrt(var)
    shift = values["beta"] - values["moving_mean"] * scale
    shape = (channels,) + (1,) * (len(x.shape) - 1)
    params = {"scale": _param(scale.reshape(shape), None), "shift": _param(shift.reshape(shape), None)}
    return low._add("affine", [x], params=params, name=name)


def _relu_layer(
    low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
) -> Value:
    (x,) = xs
    if float(config.get("threshold", 0.0) or 0.0) != 0.0:
        raise low.error("a ReLU threshold is not supported")
    slope = float(config.get("negative_slope", 0.0) or 0.0)
    top = config.get("max_value")
    if slope:
        if top is not None:
            raise low.error("a leaky ReLU with max_value is not supported")
        return low._add("leaky_relu", [x], {"alpha": slope}, name=name)
    if top is not None:
        return low._add("clip", [x], {"min": 0.0, "max": float(top)}, name=name)
    return low._add("relu", [x], name=name)


def _leaky_relu(
    low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
) -> Value:
    slope = config.get("negative_slope", config.get("alpha", 0.3))
    return low._add("leaky_relu", xs, {"alpha": float(slope)}, name=name)


def _keras_activation(low: _Lowering, x: Value, kind: str, name: str) -> Value:
    rank = len(x.shape)
    if kind in ("relu", "sigmoid", "tanh"):
        return low._add(kind, [x], name=name)
    if kind == "relu6":
        return low._add("clip", [x], {"min": 0.0, "max": 6.0}, name=name)
    if kind == "softmax":
        return low._add("softmax", [x], {"axis": 0 if rank >= 2 else rank - 1}, name=name)
    if kind == "elu":
        return low._add("elu", [x], {"alpha": 1.0}, name=name)
    if kind == "selu":
        return low._add("selu", [x], {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805}, name=name)
    if kind == "hard_sigmoid":  # Keras 2: clip(0.2 x + 0.5, 0, 1); Keras 3: relu6(x + 3) / 6
        alpha = 1.0 / 6.0 if low.keras3 else 0.2
        return low._add("hard_sigmoid", [x], {"alpha": alpha, "beta": 0.5}, name=name)
    raise low.error(f"activation {kind!r} is not supported")


def _activation(
    low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
) -> Value:
    return low.activation(xs[0], config.get("activation"), inbound[0], name)


def _softmax_layer(
    low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
) -> Value:
    (x,) = xs
    axis = config.get("axis", -1)
    return low._add("softmax", [x], {"axis": low.channel_axis(int(axis), len(x.shape))}, name=name)


def _flatten(low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str) -> Value:
    (x,) = xs
    if len(x.shape) >= 2:
        x = low._add(
            "transpose", [x], {"perm": _channels_last(len(x.shape))}, name=f"{name}/to_channels_last"
        )
    return low._add("reshape", [x], {"shape": [math.prod(x.shape)]}, name=name)


def _reshape(low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str) -> Value:
    (x,) = xs
    target = [int(d) for d in config.get("target_shape", [])]
    if target.count(-1) == 1:
        target[target.index(-1)] = math.prod(x.shape) // max(math.prod(d for d in target if d != -1), 1)
    if len(x.shape) >= 2:
        x = low._add(
            "transpose", [x], {"perm": _channels_last(len(x.shape))}, name=f"{name}/to_channels_last"
        )
    y = low._add("reshape", [x], {"shape": target}, name=name if len(target) < 2 else f"{name}/reshape")
    if len(target) >= 2:
        y = low._add("transpose", [y], {"perm": _channels_first(len(target))}, name=name)
    return y


def _pool(mode: str) -> Converter:
    def convert(
        low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
    ) -> Value:
        (x,) = xs
        n = len(x.shape) - 1
        if n < 1:
            raise low.error(f"input {list(x.shape)} has no spatial axes")
        kernel = _ints(config.get("pool_size", 2), n)
        window = _window(low, x, config, kernel, kernel)
        attrs: dict[str, Any] = {"strides": window["strides"], "pads": window["pads"], "kernel": kernel,
                                 "ceil_mode": False}  # fmt: skip
        if mode == "max":
            attrs["dilations"] = [1] * n
            return low._add("max_pool", [x], attrs, name=name)
        attrs["count_include_pad"] = False  # TensorFlow averages over the cells inside the input
        return low._add("avg_pool", [x], attrs, name=name)

    return convert


def _global_pool(mode: str) -> Converter:
    def convert(
        low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
    ) -> Value:
        (x,) = xs
        if len(x.shape) < 2:
            raise low.error(f"input {list(x.shape)} has no spatial axes")
        attrs = {
            "mode": mode,
            "axes": list(range(1, len(x.shape))),
            "keepdims": bool(config.get("keepdims", False)),
        }
        return low._add("reduce", [x], attrs, name=name)

    return convert


def _merge(op: str) -> Converter:
    def convert(
        low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
    ) -> Value:
        if op in ("sub", "mul") and len(xs) != 2:
            raise low.error(f"takes two inputs, got {len(xs)}")
        return low._add(op, xs, name=name)

    return convert


def _concatenate(
    low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
) -> Value:
    axis = low.channel_axis(int(config.get("axis", -1)), len(xs[0].shape))
    return low._add("concat", xs, {"axis": axis}, name=name)


def _zero_padding(
    low: _Lowering, xs: list[Value], inbound: list[str], config: dict[str, Any], name: str
) -> Value:
    (x,) = xs
    n = len(x.shape) - 1
    padding = config.get("padding", 1)
    if isinstance(padding, int):
        pairs = [(padding, padding)] * n
    elif (
        n == 1
        and isinstance(padding, list)
        and len(padding) == 2
        and all(isinstance(p, int) for p in padding)
    ):
        pairs = [(padding[0], padding[1])]
    elif isinstance(padding, list) and all(isinstance(p, int) for p in padding):
        pairs = [(p, p) for p in padding]
    else:
        pairs = [(int(p[0]), int(p[1])) for p in padding]
    pads = [0] + [b for b, _ in pairs] + [0] + [e for _, e in pairs]
    return low._add("pad", [x], {"pads": pads, "mode": "constant", "value": 0.0}, name=name)


_CONVERTERS: dict[str, Converter] = {
    "Dense": _dense,
    "QDense": _dense,
    "Conv1D": _conv,
    "Conv2D": _conv,
    "QConv1D": _conv,
    "QConv2D": _conv,
    "DepthwiseConv2D": _conv,
    "QDepthwiseConv2D": _conv,
    "BatchNormalization": _batch_norm,
    "QBatchNormalization": _batch_norm,
    "Activation": _activation,
    "QActivation": _activation,  # a quantizer or a Keras activation name: low.activation reads both
    "ReLU": _relu_layer,
    "LeakyReLU": _leaky_relu,
    "Softmax": _softmax_layer,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "MaxPooling1D": _pool("max"),
    "MaxPooling2D": _pool("max"),
    "MaxPool1D": _pool("max"),
    "MaxPool2D": _pool("max"),
    "AveragePooling1D": _pool("avg"),
    "AveragePooling2D": _pool("avg"),
    "AvgPool1D": _pool("avg"),
    "AvgPool2D": _pool("avg"),
    "GlobalAveragePooling1D": _global_pool("mean"),
    "GlobalAveragePooling2D": _global_pool("mean"),
    "GlobalMaxPooling1D": _global_pool("max"),
    "GlobalMaxPooling2D": _global_pool("max"),
    "Add": _merge("add"),
    "Subtract": _merge("sub"),
    "Multiply": _merge("mul"),
    "Concatenate": _concatenate,
    "ZeroPadding1D": _zero_padding,
    "ZeroPadding2D": _zero_padding,
}
SUPPORTED_LAYERS = sorted([*_CONVERTERS, *_IDENTITY, "InputLayer"])
