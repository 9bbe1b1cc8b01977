"""An IR graph as a torch ``nn.Module``: the float meaning, or the fixed-point one with straight-through
gradients, so that a graph can be fine-tuned (the training bridge of issue #18).

torch is an optional extra: nothing in fpgac imports this module at start-up; whoever trains imports it.

Two modes:

* ``"float"``: float32, the same per-op semantics as :mod:`fpgac.interp.float_kernels` (the float
  interpreter), equal to it within float32 summation order. Every param is an ``nn.Parameter``.
* ``"fixed"`` (a quantized graph): float64, every value held as its exact real value
  ``mantissa * 2**-frac`` and cast into its :class:`~fpgac.ir.types.Fixed` format at exactly the points
  where :mod:`fpgac.interp.fixed_kernels` casts (accumulators, outputs, table lookups). float64 is exact
  while every intermediate stays below ``2**52`` units of its grid, which the module checks as it runs
  (dense/conv from a static bound on the accumulator); a node outside that range raises rather than
  approximate, so the forward pass equals ``fpgac sim`` (:func:`~fpgac.interp.simulator.run_fixed`) bit
  for bit. Casts pass gradients straight through inside the format's range and none where it saturates
  (the clipped straight-through estimator); table lookups (sigmoid, tanh, elu, softmax's exp)
  take the gradient of the float function they tabulate. Params are quantized to their formats on every
  forward pass (the float ``nn.Parameter`` is the latent weight); tables and reciprocals are buffers.

Rank levels (:mod:`fpgac.ir.levels`) stay nested: the module computes level :attr:`GraphModule.level`
(0, the largest, by default) as :func:`~fpgac.ir.levels.at_level` defines it, the factors' components past
the level's rank masked to zero and the level's row of ``level_bias`` as the bias. Every level reads the
same shared factors, so training any level trains a prefix of them; a layer's ``bias`` is not trained on
its own, it is written back as ``level_bias``'s row 0, which it must equal.

Ops neither mode covers (``lrn``, the ``hls4ml_*`` ops; ``div`` in fixed mode, which has no fixed-point
kernel; ``pad`` other than constant) are refused when the module is built, naming the node and op.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fpgac.errors import FpgacError
from fpgac.interp.float_kernels import divisor_1d
from fpgac.ir.boundary import array_shape, logical_axes, output_axes
from fpgac.ir.fixed import kept_range
from fpgac.ir.graph import Graph, Node, Param
from fpgac.ir.levels import LEVEL_BIAS, check_level, node_rank
from fpgac.ir.shapes import window_out
from fpgac.ir.types import Fixed, Overflow, Rounding

Mode = Literal["float", "fixed"]

# Params that are constants of the fixed-point design (tables built by the quantize pass), never trained.
_CONSTANT_PARAMS = {"table", "recip"}
# float64 is exact for integers below 2**53; the rounding formulas below need |v| < 2**51.
_EXACT = 2.0**51


class TorchBridgeError(FpgacError):
    """A graph (or one of its nodes) that the torch module cannot represent exactly."""


# -- fixed-point casts on exact float64 values -------------------------------------------------------------


def _straight(surrogate: Tensor, exact: Tensor) -> Tensor:
    """Forward: ``exact`` (computed without gradients). Backward: the gradient goes to ``surrogate``.

    ``surrogate - surrogate.detach()`` is exactly zero for finite values, so the sum is ``exact`` bit for bit.
    """
    if not (torch.is_grad_enabled() and surrogate.requires_grad):
        return exact.detach()
    return (surrogate - surrogate.detach()) + exact.detach()


_ROUNDERS: dict[Rounding, Callable[[Tensor], Tensor]] = {
    Rounding.TRN: torch.floor,
    Rounding.TRN_ZERO: torch.trunc,
    Rounding.RND: lambda v: torch.floor(v + 0.5),
    Rounding.RND_MIN_INF: lambda v: torch.ceil(v - 0.5),
    Rounding.RND_ZERO: lambda v: torch.sign(v) * torch.ceil(torch.abs(v) - 0.5),
    Rounding.RND_INF: lambda v: torch.sign(v) * torch.floor(torch.abs(v) + 0.5),
    Rounding.RND_CONV: torch.round,  # half to even
}
"""Each mode's rounding to an integer, as :mod:`fpgac.ir.fixed` rounds float64 (exact for |v| < 2**51)."""


def _kept_values(fmt: Fixed) -> tuple[float, float]:
    """The real values a saturating format keeps as they are (:func:`~fpgac.ir.fixed.kept_range`)."""
    lo, hi = kept_range(fmt)
    return math.ldexp(float(lo), -fmt.frac_bits), math.ldexp(float(hi), -fmt.frac_bits)


def _check_exact(t: Tensor, frac: int, where: str) -> None:
    """Raise unless every element of ``t`` (values on the grid ``2**-frac``) is below ``2**51`` units."""
    if t.numel() == 0:
        return
    biggest = float(t.detach().abs().max())
    if not math.isfinite(biggest) or math.ldexp(biggest, frac) >= _EXACT:
        raise TorchBridgeError(
            f"{where}: a value of {biggest:g} on a grid of 2**-{frac} leaves float64's exact range; "
            "the torch module cannot match the simulator there"
        )


def quantize_values(x: Tensor, fmt: Fixed, where: str) -> Tensor:
    """``fmt_t y = x;`` on the exact float64 values ``x``: round by ``fmt``'s mode, then overflow.

    Returns the real values of the result (float64, exact); no gradient (see :func:`fake_quant`).
    """
    with torch.no_grad():
        v = torch.ldexp(x.detach().to(torch.float64), torch.tensor(float(fmt.frac_bits), dtype=torch.float64))
        if fmt.overflow is not Overflow.WRAP:
            # Anything beyond the range saturates (or zeroes) whatever its size: clamping first changes no
            # result and keeps every value exact.
            v = torch.clamp(v, float(fmt.min_mantissa - 2), float(fmt.max_mantissa + 2))
        _check_exact(v, 0, where)
        q = _ROUNDERS[fmt.rounding](v)
        if fmt.overflow is Overflow.WRAP:
            modulus = float(1 << fmt.width)
            if fmt.signed:
                half = float(1 << (fmt.width - 1))
                q = torch.remainder(q + half, modulus) - half
            else:
                q = torch.remainder(q, modulus)
        else:
            lo, hi = kept_range(fmt)
            if fmt.overflow is Overflow.SAT_ZERO:
                q = torch.where((q < lo) | (q > hi), torch.zeros_like(q), q)
            else:
                q = torch.clamp(q, float(lo), float(hi))
        return torch.ldexp(q, torch.tensor(float(-fmt.frac_bits), dtype=torch.float64))


def _saturated(x: Tensor, fmt: Fixed) -> Tensor:
    """The gradient's view of the cast: the rounding is the identity, the saturation is a real clamp.

    A value beyond a saturating format's range does not change the output, so it gets no gradient (the
    clipped straight-through estimator): passing one made QAT push saturated logits and weights ever
    further out, where nothing changes (digits CNN at 4 bits: see bench/finetune.py).
    """
    if fmt.overflow is Overflow.WRAP:
        return x
    lo, hi = _kept_values(fmt)
    if fmt.overflow is Overflow.SAT_ZERO:
        return torch.where((x >= lo) & (x <= hi), x, torch.zeros_like(x))
    return torch.clamp(x, lo, hi)


def fake_quant(x: Tensor, src: Fixed | None, dst: Fixed, where: str) -> Tensor:
    """``dst_t y = x;`` with a straight-through gradient inside ``dst``'s range (none where it
    saturates); a same-format cast is a bit copy, as in C++."""
    if src == dst:
        return x
    return _straight(_saturated(x, dst), quantize_values(x, dst, where))


def _max_value(fmt: Fixed) -> float:
    return math.ldexp(float(max(-fmt.min_mantissa, fmt.max_mantissa)), -fmt.frac_bits)


# -- shared helpers ----------------------------------------------------------------------------------------


def _aligned(xs: Sequence[Tensor]) -> list[Tensor]:
    """Unit axes after the batch, so per-sample shapes broadcast at their trailing axes."""
    rank = max(x.dim() for x in xs)
    return [x.reshape(x.shape[0], *([1] * (rank - x.dim())), *x.shape[1:]) for x in xs]


def _torch_pads(begins: Sequence[int], ends: Sequence[int]) -> list[int]:
    """``F.pad`` widths (last axis first) for per-axis begin/end pads of the trailing axes."""
    widths: list[int] = []
    for b, e in zip(reversed(begins), reversed(ends), strict=True):
        widths += [b, e]
    return widths


def _window_pad(
    x: Tensor, attrs: dict[str, Any], dilations: Sequence[int], fill: float
) -> tuple[Tensor, list[int]]:
    """``x`` padded as :func:`fpgac.interp.float_kernels.windows` pads it, and the output size."""
    kernel, strides, pads = attrs["kernel"], attrs["strides"], attrs["pads"]
    nd = len(kernel)
    out, begins, ends = [], [], []
    for i in range(nd):
        size = x.shape[2 + i]
        o = window_out(
            size, kernel[i], strides[i], pads[i], pads[nd + i], dilations[i], attrs.get("ceil_mode", False)
        )
        span = dilations[i] * (kernel[i] - 1) + 1
        need = (o - 1) * strides[i] + span
        have = size + pads[i] + pads[nd + i]
        out.append(o)
        begins.append(pads[i])
        ends.append(pads[nd + i] + max(0, need - have))
    if any(begins) or any(ends):
        x = F.pad(x, _torch_pads(begins, ends), value=fill)
    return x, out


def _crop(y: Tensor, out: Sequence[int]) -> Tensor:
    return y[(slice(None), slice(None), *(slice(0, o) for o in out))]


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _conv(x: Tensor, w: Tensor, b: Tensor | None, attrs: dict[str, Any]) -> Tensor:
    nd = w.dim() - 2
    pads = attrs["pads"]
    if any(pads):
        x = F.pad(x, _torch_pads(pads[:nd], pads[nd:]))
    fn = _CONV[nd]
    y: Tensor = fn(x, w, b, tuple(attrs["strides"]), 0, tuple(attrs["dilations"]), attrs["groups"])
    return y


def _max_pool(x: Tensor, attrs: dict[str, Any]) -> Tensor:
    nd = len(attrs["kernel"])
    xp, out = _window_pad(x, attrs, attrs["dilations"], -math.inf)
    y: Tensor = _MAX_POOL[nd](
        xp, tuple(attrs["kernel"]), tuple(attrs["strides"]), 0, tuple(attrs["dilations"])
    )
    return _crop(y, out)


def _window_sums(x: Tensor, attrs: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """Average pooling's window sums (a depthwise convolution with ones: exact in float64) and divisors."""
    kernel = attrs["kernel"]
    nd = len(kernel)
    xp, out = _window_pad(x, attrs, [1] * nd, 0.0)
    channels = x.shape[1]
    ones = torch.ones((channels, 1, *kernel), dtype=x.dtype)
    total = _crop(_CONV[nd](xp, ones, None, tuple(attrs["strides"]), 0, 1, channels), out)
    counts = np.ones((), dtype=np.int64)
    pads = attrs["pads"]
    for i in range(nd):
        c = divisor_1d(
            x.shape[2 + i],
            kernel[i],
            attrs["strides"][i],
            pads[i],
            pads[nd + i],
            out[i],
            attrs["count_include_pad"],
        )
        shape = [1] * nd
        shape[i] = out[i]
        counts = counts * c.astype(np.int64).reshape(shape)
    return total, torch.from_numpy(np.broadcast_to(counts, tuple(out)).copy())


def _table_index(x: Tensor, attrs: dict[str, Any], size: int) -> Tensor:
    """``clamp(floor(x / 2**table_shift) + table_offset, 0, size - 1)`` (fixed_kernels.table_index)."""
    scaled = torch.floor(torch.ldexp(x.detach(), torch.tensor(float(-attrs["table_shift"]), dtype=x.dtype)))
    idx = torch.clamp(scaled + attrs["table_offset"], 0, size - 1)
    return idx.to(torch.int64)


# -- the module -------------------------------------------------------------------------------------------

_FLOAT_OPS = {
    "dense", "conv", "max_pool", "avg_pool", "reduce", "affine", "add", "sub", "mul", "div", "relu",
    "leaky_relu", "prelu", "clip", "sigmoid", "hard_sigmoid", "tanh", "elu", "selu", "softmax", "reshape",
    "transpose", "concat", "pad",
}  # fmt: skip
_FIXED_OPS = _FLOAT_OPS - {"div"}


class GraphModule(nn.Module):
    """``graph`` as a torch module; see the module docstring for the two modes.

    ``forward(*inputs)`` takes one ``(batch, *shape)`` tensor per graph input (any real dtype), in the
    callers' layout of the input as ``run_float`` and ``run_fixed`` take it (:mod:`fpgac.ir.boundary`:
    NHWC for a tf2onnx or Keras image model), and returns the graph outputs as a list, in the callers'
    layout of each likewise: float32 in float mode, float64 real values in fixed mode.
    """

    def __init__(self, graph: Graph, mode: Mode = "float") -> None:
        super().__init__()
        if mode not in ("float", "fixed"):
            raise TorchBridgeError(f"unknown mode {mode!r}; expected 'float' or 'fixed'")
        self.graph = graph
        self.mode: Mode = mode
        self.dtype = torch.float32 if mode == "float" else torch.float64
        self._level = 0
        self.weights = nn.ParameterDict()
        self.slots: dict[tuple[int, str], str] = {}
        supported = _FLOAT_OPS if mode == "float" else _FIXED_OPS
        for i, node in enumerate(graph.nodes):
            where = f"node {node.name!r} ({node.op})"
            if node.op not in supported:
                raise TorchBridgeError(f"{where}: the torch module has no {mode} implementation of this op")
            if node.op == "pad" and node.attrs["mode"] != "constant":
                raise TorchBridgeError(
                    f"{where}: only constant padding is implemented, not {node.attrs['mode']!r}"
                )
            if mode == "fixed":
                self._check_fixed(node, where)
            for key, param in node.params.items():
                if key == "bias" and LEVEL_BIAS in node.params:
                    continue  # level_bias[level] at every level (row 0 is the bias)
                slot = f"n{i}_{key}"
                self.slots[(i, key)] = slot
                data = torch.tensor(np.asarray(param.data, dtype=np.float64), dtype=self.dtype)
                enc = param.encoding
                if mode == "fixed" and key in _CONSTANT_PARAMS:
                    self.register_buffer(slot, quantize_values(data, _fixed(param, where, key), where))
                elif enc is not None and enc.codebook is not None and enc.indices is not None:
                    # Shared weights train their codebook: gradients sum per centroid (Deep Compression).
                    self.weights[slot] = nn.Parameter(
                        torch.tensor(np.asarray(enc.codebook), dtype=self.dtype)
                    )
                    indices = torch.from_numpy(
                        np.asarray(enc.indices, dtype=np.int64).reshape(param.data.shape)
                    )
                    self.register_buffer(f"{slot}_indices", indices)
                    if enc.sparse:  # index 0 is the pruned weights' zero, and stays zero
                        self.register_buffer(f"{slot}_mask", (indices != 0).to(self.dtype))
                else:
                    self.weights[slot] = nn.Parameter(data)
                    if enc is not None and enc.sparse:  # pruned weights stay zero
                        self.register_buffer(f"{slot}_mask", (data != 0).to(self.dtype))

    @property
    def level(self) -> int:
        """The rank level the forward pass computes (:mod:`fpgac.ir.levels`; 0, the largest)."""
        return self._level

    @level.setter
    def level(self, level: int) -> None:
        check_level(self.graph, level)
        self._level = level

    @staticmethod
    def _check_fixed(node: Node, where: str) -> None:
        formats = [v.type.format for v in (*node.inputs, node.output)]
        formats += [p.format for p in node.params.values()]
        if "acc" in node.attrs:
            formats.append(node.attrs["acc"])
        for fmt in formats:
            if not isinstance(fmt, Fixed):
                raise TorchBridgeError(f"{where}: {fmt} is not fixed point; quantize the graph first")
            if fmt.width > 52 or abs(fmt.frac_bits) > 900:
                raise TorchBridgeError(f"{where}: {fmt} is beyond what float64 holds exactly")
        acc = node.attrs.get("acc")
        if isinstance(acc, Fixed) and acc.overflow is not Overflow.WRAP:
            raise TorchBridgeError(f"{where}: accumulator {acc} must WRAP")

    def param(self, index: int, node: Node, key: str) -> Tensor:
        """The param at :attr:`level`: the float Parameter, or (fixed mode) its fake-quantized value."""
        if key == "bias" and LEVEL_BIAS in node.params:
            return self.param(index, node, LEVEL_BIAS)[self.level]
        slot = self.slots[(index, key)]
        if slot not in self.weights:
            buffer = self.get_buffer(slot)
            return buffer
        w: Tensor = self.weights[slot]
        indices, mask = self._buffers.get(f"{slot}_indices"), self._buffers.get(f"{slot}_mask")
        if indices is not None:
            w = w[indices]
            if node.params[key].data.dtype == np.float32:  # the graph holds codebook[indices] as float32
                w = w.to(torch.float32).to(self.dtype)
        if mask is not None:
            w = w * mask
        rank = node_rank(node, self.level) if key == "weight" else None
        axis = 0 if "ranks_out" in node.attrs else 1  # components: a first factor's rows, a second's columns
        if rank is not None and rank < w.shape[axis]:  # the components past the level's rank are zero
            shape = [1] * w.dim()
            shape[axis] = w.shape[axis]
            used = torch.arange(w.shape[axis], device=w.device).reshape(shape) < rank
            w = torch.where(used, w, torch.zeros((), dtype=w.dtype, device=w.device))
        if self.mode == "fixed":
            where = f"node {node.name!r} ({node.op}) param {key!r}"
            return fake_quant(w, None, _fixed(node.params[key], where, key), where)
        return w

    def clip_to_formats(self) -> None:
        """Fixed mode: clamp every latent weight into its saturating format's range (float mode: no-op).

        Beyond the range a weight saturates and gets no gradient (see :func:`_saturated`); clamped after
        each step, it stays where one step against the gradient brings it back (BinaryConnect's clipping).
        """
        if self.mode != "fixed":
            return
        with torch.no_grad():
            for (i, key), slot in self.slots.items():
                if slot in self.weights:
                    node = self.graph.nodes[i]
                    fmt = _fixed(node.params[key], f"node {node.name!r} ({node.op})", key)
                    if fmt.overflow not in (Overflow.SAT, Overflow.SAT_SYM):
                        continue  # clamping would change what a wrapped or zeroed weight quantizes to
                    lo, hi = _kept_values(fmt)
                    self.weights[slot].clamp_(lo, hi)

    def to_graph(self) -> Graph:
        """A clone of the graph with the module's current (trained) params written back."""
        clone = self.graph.clone()
        for (i, key), slot in self.slots.items():
            if slot not in self.weights:
                continue
            param = clone.nodes[i].params[key]
            data = self.weights[slot].detach().cpu().numpy().astype(np.float64)
            enc = param.encoding
            if enc is not None and enc.codebook is not None and enc.indices is not None:
                if enc.sparse:
                    data[0] = 0.0
                param.encoding = enc.with_codebook(data)
                data = data[np.asarray(enc.indices, dtype=np.int64)]
            elif enc is not None and enc.sparse:
                data = np.where(param.data != 0, data, 0.0)
            param.data = data.astype(param.data.dtype, copy=True).reshape(param.data.shape)
            if key == LEVEL_BIAS:
                bias = clone.nodes[i].params["bias"]
                bias.data = param.data[0].astype(bias.data.dtype, copy=True)
        return clone

    def forward(self, *inputs: Tensor) -> list[Tensor]:
        graph = self.graph
        if len(inputs) != len(graph.inputs):
            raise TorchBridgeError(f"the graph takes {len(graph.inputs)} input(s), got {len(inputs)}")
        env: dict[int, Tensor] = {}
        for value, x in zip(graph.inputs, inputs, strict=True):
            expected = array_shape(graph, value)
            if tuple(x.shape[1:]) != expected:
                raise TorchBridgeError(
                    f"input {value.name!r} has shape {tuple(x.shape)}, the graph takes {expected}"
                )
            axes = logical_axes(graph, value)
            if axes is not None:
                x = x.permute(*axes)
            if self.mode == "float":
                env[id(value)] = x.to(torch.float32)
            else:
                # The testbench's ``input_t v = x;`` from float32 data.
                fmt = _value_format(value.type.format, f"input {value.name!r}")
                x64 = x.to(torch.float32).to(torch.float64)
                env[id(value)] = fake_quant(x64, None, fmt, f"input {value.name!r}")
        for i, node in enumerate(graph.nodes):
            args = [env[id(v)] for v in node.inputs]
            where = f"node {node.name!r} ({node.op})"
            if self.mode == "float":
                env[id(node.output)] = self._float(i, node, args)
            else:
                env[id(node.output)] = self._fixed(i, node, args, where)
        outputs = []
        for index, value in enumerate(graph.outputs):
            order = output_axes(graph, index)
            outputs.append(env[id(value)] if order is None else env[id(value)].permute(*order))
        return outputs

    # -- float mode ----------------------------------------------------------------------------------------

    def _float(self, i: int, node: Node, xs: list[Tensor]) -> Tensor:
        op, a = node.op, node.attrs

        def p(key: str) -> Tensor:
            return self.param(i, node, key)

        def has(key: str) -> bool:
            return key in node.params

        x = xs[0]
        if op == "dense":
            return F.linear(x, p("weight"), p("bias") if has("bias") else None)
        if op == "conv":
            return _conv(x, p("weight"), p("bias") if has("bias") else None, a)
        if op == "max_pool":
            return _max_pool(x, a)
        if op == "avg_pool":
            total, counts = _window_sums(x, a)
            return total / counts.to(torch.float32)
        if op == "reduce":
            axes = tuple(ax + 1 for ax in a["axes"])
            if a["mode"] == "mean":
                return torch.mean(x, dim=axes, keepdim=a["keepdims"])
            return torch.amax(x, dim=axes, keepdim=a["keepdims"])
        if op == "affine":
            return x * p("scale") + p("shift")
        if op == "add":
            first, *rest = _aligned(xs)
            for y in rest:
                first = first + y
            return first
        if op in ("sub", "mul", "div"):
            lhs, rhs = _aligned(xs)
            return lhs - rhs if op == "sub" else lhs * rhs if op == "mul" else lhs / rhs
        if op == "relu":
            return torch.relu(x)
        if op == "leaky_relu":
            return torch.where(x < 0, x * a["alpha"], x)
        if op == "prelu":
            return torch.where(x < 0, x * p("slope"), x)
        if op == "clip":
            return torch.clamp(x, a["min"], a["max"])
        if op == "sigmoid":
            return torch.sigmoid(x)
        if op == "hard_sigmoid":
            return torch.clamp(x * a["alpha"] + a["beta"], 0.0, 1.0)
        if op == "tanh":
            return torch.tanh(x)
        if op in ("elu", "selu"):
            y = torch.where(x > 0, x, a["alpha"] * torch.expm1(torch.clamp(x, max=0.0)))
            return y * a["gamma"] if op == "selu" else y
        if op == "softmax":
            return torch.softmax(x, dim=a["axis"] + 1)
        return _move(node, xs, x, float(a.get("value", 0.0)))

    # -- fixed mode ----------------------------------------------------------------------------------------

    def _fixed(self, i: int, node: Node, xs: list[Tensor], where: str) -> Tensor:
        op, a = node.op, node.attrs
        fmts = [_value_format(v.type.format, where) for v in node.inputs]
        out = _value_format(node.output.type.format, where)
        x, fx = xs[0], fmts[0]

        def p(key: str) -> Tensor:
            return self.param(i, node, key)

        def pfmt(key: str) -> Fixed:
            return _fixed(node.params[key], where, key)

        def finish(y: Tensor, src: Fixed | None) -> Tensor:
            return fake_quant(y, src, out, where)

        if op in ("dense", "conv"):
            acc = _acc(node, where)
            w, fw = p("weight"), pfmt("weight")
            if fx.frac_bits + fw.frac_bits > acc.frac_bits:
                raise TorchBridgeError(f"{where}: accumulator drops fraction bits")
            bias = p("bias") if "bias" in node.params else None
            if bias is not None and pfmt("bias").frac_bits > acc.frac_bits:
                raise TorchBridgeError(f"{where}: accumulator drops the bias's fraction bits")
            with torch.no_grad():  # every partial sum is at most this, in the accumulator's units
                sums = w.detach().abs().reshape(w.shape[0], -1).sum(dim=1)
                bound = _max_value(fx) * float(sums.max()) + (
                    0.0 if bias is None else float(bias.detach().abs().max())
                )
                _check_exact(torch.tensor([bound], dtype=torch.float64), acc.frac_bits, where)
            y = F.linear(x, w, bias) if op == "dense" else _conv(x, w, bias, a)
            return finish(fake_quant(y, None, acc, where), acc)
        if op == "max_pool":
            return finish(_max_pool(x, a), fx)
        if op == "avg_pool":
            total, counts = _window_sums(x, a)
            return self._recip_times(i, node, total, fx, counts, finish, where)
        if op == "reduce":
            axes = tuple(ax + 1 for ax in a["axes"])
            if a["mode"] == "max":
                return finish(torch.amax(x, dim=axes, keepdim=a["keepdims"]), fx)
            count = math.prod(x.shape[ax] for ax in axes)
            _check_exact(torch.tensor([_max_value(fx) * count], dtype=torch.float64), fx.frac_bits, where)
            total = torch.sum(x, dim=axes, keepdim=a["keepdims"])
            return self._recip_times(i, node, total, fx, torch.zeros((), dtype=torch.int64), finish, where)
        if op == "affine":
            y = x * p("scale")
            _check_exact(y, fx.frac_bits + pfmt("scale").frac_bits, where)
            y = y + p("shift")
            _check_exact(y, max(fx.frac_bits + pfmt("scale").frac_bits, pfmt("shift").frac_bits), where)
            return finish(y, None)
        if op in ("add", "sub"):
            first, *rest = _aligned(xs)
            frac = fx.frac_bits
            for y, f in zip(rest, fmts[1:], strict=True):
                frac = max(frac, f.frac_bits)
                first = first + y if op == "add" else first - y
                _check_exact(first, frac, where)
            return finish(first, fx if len(xs) == 1 else None)
        if op == "mul":
            lhs, rhs = _aligned(xs)
            y = lhs * rhs
            _check_exact(y, fmts[0].frac_bits + fmts[1].frac_bits, where)
            return finish(y, None)
        if op == "relu":
            return finish(torch.relu(x), fx)
        if op in ("leaky_relu", "prelu"):
            key = "alpha" if op == "leaky_relu" else "slope"
            product = x * p(key)
            _check_exact(product, fx.frac_bits + pfmt(key).frac_bits, where)
            return torch.where(x < 0, finish(product, None), finish(x, fx))
        if op == "clip":
            y = x
            nearest = Fixed(out.width, out.int_bits, out.signed, out.rounding, Overflow.SAT)
            lo = a["min"]
            hi = a["max"]
            if lo is not None:
                y = torch.clamp(
                    y,
                    min=float(
                        quantize_values(torch.tensor([float(lo)], dtype=torch.float64), nearest, where)[0]
                    ),
                )
            if hi is not None:
                y = torch.clamp(
                    y,
                    max=float(
                        quantize_values(torch.tensor([float(hi)], dtype=torch.float64), nearest, where)[0]
                    ),
                )
            return finish(y, None)
        if op == "hard_sigmoid":
            fa, fb = pfmt("alpha"), pfmt("beta")
            frac = max(fx.frac_bits + fa.frac_bits, fb.frac_bits)
            if frac < 0:
                raise TorchBridgeError(f"{where}: a grid coarser than 1 is not implemented")
            t = x * p("alpha") + p("beta")
            _check_exact(t, frac, where)
            return finish(torch.clamp(t, 0.0, 1.0), None)
        if op in ("sigmoid", "tanh"):
            surrogate = torch.sigmoid(x) if op == "sigmoid" else torch.tanh(x)
            return finish(_straight(surrogate, self._lookup(i, node, x)), pfmt("table"))
        if op in ("elu", "selu"):
            if "gamma" in node.params:
                pos_in = x * p("gamma")
                _check_exact(pos_in, fx.frac_bits + pfmt("gamma").frac_bits, where)
                pos = finish(pos_in, None)
            else:
                pos = finish(x, fx)
            scale = a.get("gamma", 1.0) if op == "selu" else 1.0
            surrogate = scale * a["alpha"] * torch.expm1(torch.clamp(x, max=0.0))
            neg = finish(_straight(surrogate, self._lookup(i, node, x)), pfmt("table"))
            return torch.where(x < 0, neg, pos)
        if op == "softmax":
            return self._softmax(i, node, x, fx, out, where)
        if op == "concat":
            return torch.cat([finish(y, f) for y, f in zip(xs, fmts, strict=True)], dim=a["axis"] + 1)
        if op == "pad":
            value = float(
                quantize_values(torch.tensor([float(a["value"])], dtype=torch.float64), out, where)[0]
            )
            y = finish(x, fx)
            return _move(node, [y], y, value)
        return finish(_move(node, xs, x, 0.0), fx)  # reshape, transpose

    def _lookup(self, i: int, node: Node, x: Tensor) -> Tensor:
        table = self.param(i, node, "table")
        return table[_table_index(x, node.attrs, table.shape[0])]

    def _recip_times(
        self,
        i: int,
        node: Node,
        total: Tensor,
        fx: Fixed,
        index: Tensor,
        finish: Callable[[Tensor, Fixed | None], Tensor],
        where: str,
    ) -> Tensor:
        """``out_t y = acc_t(sum) * recip[index]`` (fixed_kernels._recip_times)."""
        acc = _acc(node, where)
        _check_exact(total, fx.frac_bits, where)
        acc_sum = fake_quant(total, None, acc, where)
        fr = _fixed(node.params["recip"], where, "recip")
        recip = self.param(i, node, "recip")[index]
        y = acc_sum * recip
        _check_exact(y, acc.frac_bits + fr.frac_bits, where)
        return finish(y, None)

    def _softmax(self, i: int, node: Node, x: Tensor, fx: Fixed, out: Fixed, where: str) -> Tensor:
        """Table exp of ``x - max``, an exact sum, ``floor(e * 2**F / s)`` by integer division."""
        axis = node.attrs["axis"] + 1
        acc = _acc(node, where)
        table_fmt = _fixed(node.params["table"], where, "table")
        if acc.frac_bits != table_fmt.frac_bits or table_fmt.signed:
            raise TorchBridgeError(f"{where}: sum format {acc} does not match table {table_fmt}")
        frac = out.frac_bits
        with torch.no_grad():
            d = x.detach() - torch.amax(x.detach(), dim=axis, keepdim=True)
            e = self._lookup(i, node, d)
            _check_exact(e * x.shape[axis], acc.frac_bits, where)
            s = quantize_values(e.sum(dim=axis, keepdim=True), acc, where)
            e_m = torch.ldexp(e, torch.tensor(float(acc.frac_bits), dtype=e.dtype)).to(torch.int64)
            s_m = torch.ldexp(s, torch.tensor(float(acc.frac_bits), dtype=s.dtype)).to(torch.int64)
            if table_fmt.width + frac > 62:
                raise TorchBridgeError(f"{where}: the quotient's {table_fmt.width + frac} bits exceed int64")
            p_m = torch.div(e_m << frac, s_m, rounding_mode="floor")
            p = torch.ldexp(p_m.to(torch.float64), torch.tensor(float(-frac), dtype=torch.float64))
        exact = fake_quant(p, Fixed(frac + 2, 2, False), out, where)
        return _straight(torch.softmax(x, dim=axis), exact)


def _move(node: Node, xs: list[Tensor], x: Tensor, value: float) -> Tensor:
    """reshape, transpose, concat and constant pad: the same in both modes (before any cast)."""
    op, a = node.op, node.attrs
    if op == "reshape":
        return x.reshape(x.shape[0], *a["shape"])
    if op == "transpose":
        return x.permute(0, *(p + 1 for p in a["perm"]))
    if op == "concat":
        return torch.cat(list(xs), dim=a["axis"] + 1)
    if op == "pad":
        pads = a["pads"]
        rank = x.dim() - 1
        return F.pad(x, _torch_pads(pads[:rank], pads[rank:]), value=value)
    raise TorchBridgeError(f"node {node.name!r} ({op}): the torch module has no implementation of this op")


def _value_format(fmt: object, where: str) -> Fixed:
    if not isinstance(fmt, Fixed):
        raise TorchBridgeError(f"{where}: {fmt} is not fixed point; quantize the graph first")
    return fmt


def _fixed(param: Param, where: str, key: str) -> Fixed:
    return _value_format(param.format, f"{where} param {key!r}")


def _acc(node: Node, where: str) -> Fixed:
    acc = node.attrs.get("acc")
    if not isinstance(acc, Fixed):
        raise TorchBridgeError(f"{where}: quantized node has no accumulator format")
    return acc
