"""QKeras quantizers: their exact values on weights, and the fixed-point formats they declare.

A transcription of ``qkeras/quantizers.py`` of QKeras 0.9.0 (inference path, ``qnoise_factor`` 1, no
stochastic rounding) in numpy, float32 where QKeras computes in float32. ``tf.round`` rounds half to even,
so a quantizer's format rounds ``RND_CONV``; clipping is saturation (``SAT_SYM`` where ``symmetric`` clips to
``-max``). hls4ml's mapping drops ``keep_negative`` and ``symmetric``; these formats keep both:

* ``quantized_bits(b, i, symmetric, keep_negative)``: ``k * 2**(i - u)`` with ``u = b - keep_negative``,
  ``k`` in ``[keep_negative * (-2**u + symmetric), 2**u - 1]``: ``ap_fixed<b, i + 1>`` (or
  ``ap_ufixed<b, i>``), saturating symmetrically when ``symmetric``. One signed bit (``u = 0``) is a sign:
  ``x >= 0 ? +1 : -1``. ``alpha``: 1 or None is no scale; ``"auto_po2"`` a power-of-two scale per output
  channel (the kernel's last axis), found by QKeras's five refinement steps, transcribed here.
* ``quantized_relu(b, i)``: ``ap_ufixed<b, i>`` of ``relu(x)``.
* ``quantized_tanh(b, symmetric)`` / ``quantized_sigmoid(b, symmetric)`` (QKeras's default hard
  sigmoid): ``clip(x, -1, 1)`` into ``ap_fixed<b, 1>`` (saturating to ``-1 + 2**(1-b)`` when
  ``symmetric``); ``clip(x / 2 + 1 / 2, 0, 1)`` into ``ap_ufixed<b, 0>`` (from ``2**-b`` when
  ``symmetric``), which is the tanh's format followed by ``x / 2 + 1 / 2`` (exact). QKeras before 0.9
  had no ``symmetric`` and always clipped symmetrically.
* ``binary`` (``{-1, +1}``, or ``{0, 1}`` with ``use_01``) and ``ternary`` (``{-1, 0, +1}`` beyond a
  threshold) times ``alpha`` (1, or per channel ``auto_po2``): weights only.

Quantizers come as Keras 2 JSON dicts (``{"class_name": ..., "config": {...}}``) or as the strings
QKeras also accepts (``"quantized_relu(4, 0)"``); both are parsed without evaluating any code.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpgac.errors import FpgacError
from fpgac.ir.types import Fixed, Overflow, Rounding

_EPS = np.float32(1e-7)  # K.epsilon()


class QuantizerError(FpgacError):
    """A quantizer that fpgac cannot read or implement exactly."""


@dataclass(frozen=True)
class Quantizer:
    """One QKeras quantizer: its class name and its keyword arguments (positional ones named)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any) -> Any:
        value = self.args.get(key, default)
        return default if value is None and default is not None else value

    def __str__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.args.items())})"


# Positional parameters of each quantizer, in QKeras's order.
_POSITIONAL: dict[str, tuple[str, ...]] = {
    "quantized_bits": ("bits", "integer", "symmetric", "keep_negative", "alpha", "use_stochastic_rounding"),
    "quantized_relu": ("bits", "integer", "use_sigmoid", "negative_slope", "use_stochastic_rounding"),
    "quantized_tanh": ("bits", "use_stochastic_rounding", "symmetric", "use_real_tanh"),
    "quantized_sigmoid": ("bits", "symmetric", "use_real_sigmoid", "use_stochastic_rounding"),
    "binary": ("use_01", "alpha", "use_stochastic_rounding"),
    "ternary": ("alpha", "threshold", "use_stochastic_rounding", "number_of_unrolls"),
}
QUANTIZERS = tuple(_POSITIONAL)


def parse_quantizer(spec: Any) -> Quantizer | None:
    """A quantizer from a layer config entry: a dict, a string, or None (no quantizer)."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, dict):
        name = spec.get("class_name")
        config = spec.get("config", {})
        if not isinstance(name, str) or not isinstance(config, dict):
            raise QuantizerError(f"cannot read quantizer {spec!r}")
        return _checked(name, dict(config))
    if isinstance(spec, str):
        return _from_string(spec)
    raise QuantizerError(f"cannot read quantizer {spec!r}")


def is_quantizer(spec: Any) -> bool:
    """Whether an ``activation`` entry names a QKeras quantizer (not a Keras activation)."""
    if isinstance(spec, dict):
        return spec.get("class_name") in _POSITIONAL
    return isinstance(spec, str) and spec.split("(")[0].strip() in _POSITIONAL


def _from_string(text: str) -> Quantizer:
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise QuantizerError(f"cannot read quantizer {text!r}") from None
    if isinstance(call, ast.Name):
        return _checked(call.id, {})
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise QuantizerError(f"cannot read quantizer {text!r}")
    name = call.func.id
    if name not in _POSITIONAL:
        return _checked(name, {})
    positional = _POSITIONAL[name]
    if len(call.args) > len(positional):
        raise QuantizerError(f"quantizer {text!r} has too many arguments")
    try:
        args = {positional[i]: ast.literal_eval(a) for i, a in enumerate(call.args)}
        args.update({kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg})
    except ValueError:
        raise QuantizerError(f"quantizer {text!r}: arguments must be literals") from None
    return _checked(name, args)


def _checked(name: str, args: dict[str, Any]) -> Quantizer:
    if name not in _POSITIONAL:
        raise QuantizerError(f"quantizer {name!r} is not supported (supported: {', '.join(QUANTIZERS)})")
    if args.get("use_stochastic_rounding"):
        raise QuantizerError(f"{name}: stochastic rounding has no fixed-point equivalent in inference")
    return Quantizer(name, args)


# -- formats ---------------------------------------------------------------------------------------
def bits_format(q: Quantizer) -> Fixed:
    """The format of ``quantized_bits`` without a scale (alpha 1 or None)."""
    bits, integer = int(q.get("bits", 8)), int(q.get("integer", 0))
    keep_negative = bool(q.get("keep_negative", True))
    symmetric = bool(q.get("symmetric", 0)) or isinstance(q.args.get("alpha"), str)
    unsigned = bits - int(keep_negative)
    if unsigned <= 0:
        return Fixed(2, 2, True, Rounding.RND_CONV, Overflow.SAT)  # the sign: -1 or +1
    overflow = Overflow.SAT_SYM if symmetric and keep_negative else Overflow.SAT
    return Fixed(bits, integer + int(keep_negative), keep_negative, Rounding.RND_CONV, overflow)


def activation_format(q: Quantizer) -> Fixed:
    """The format a quantizer used as an activation puts on its output; refuses what is not a format."""
    if q.name == "quantized_bits":
        alpha = q.args.get("alpha")
        if alpha not in (None, 1, 1.0):
            raise QuantizerError(f"{q}: a scaled activation quantizer (alpha={alpha!r}) is not a format")
        if int(q.get("bits", 8)) - int(bool(q.get("keep_negative", True))) <= 0:
            raise QuantizerError(f"{q}: a 1-bit sign activation is not supported yet")
        return bits_format(q)
    if q.name == "quantized_relu":
        if q.get("use_sigmoid", 0) or q.get("negative_slope", 0.0):
            raise QuantizerError(f"{q}: use_sigmoid and negative_slope are not supported")
        if not q.get("is_quantized_clip", True) and q.args.get("relu_upper_bound") is not None:
            raise QuantizerError(f"{q}: relu_upper_bound is not supported")
        return Fixed(int(q.get("bits", 8)), int(q.get("integer", 0)), False, Rounding.RND_CONV, Overflow.SAT)
    if q.name == "quantized_tanh":
        if q.get("use_real_tanh", False):
            raise QuantizerError(f"{q}: use_real_tanh is not supported (the default hard tanh is)")
        return tanh_format(q)
    if q.name == "quantized_sigmoid":
        if q.get("use_real_sigmoid", False):
            raise QuantizerError(f"{q}: use_real_sigmoid is not supported (the default hard sigmoid is)")
        return Fixed(int(q.get("bits", 8)), 0, False, Rounding.RND_CONV, Overflow.SAT)
    raise QuantizerError(f"{q} is supported on weights only, not as an activation")


def tanh_format(q: Quantizer) -> Fixed:
    """``quantized_tanh``'s format; ``quantized_sigmoid(b)`` is this format's value ``v`` as ``v/2 + 1/2``."""
    overflow = Overflow.SAT_SYM if q.get("symmetric", False) else Overflow.SAT
    return Fixed(int(q.get("bits", 8)), 1, True, Rounding.RND_CONV, overflow)


# -- weights ---------------------------------------------------------------------------------------
def quantize_weight(q: Quantizer, w: np.ndarray) -> tuple[np.ndarray, Fixed | None]:
    """QKeras's quantized values of a Keras weight (its own layout: channels on the last axis) and
    the format that holds them exactly (None where the scale is not a power of two: a warning case).
    """
    x = np.asarray(w, dtype=np.float32)
    if q.name == "quantized_bits":
        return _bits_weight(q, x)
    if q.name in ("binary", "ternary"):
        return _sign_weight(q, x)
    if q.name == "quantized_relu":
        fmt = activation_format(q)
        return _on_grid(np.maximum(x, 0), fmt), fmt
    if q.name in ("quantized_tanh", "quantized_sigmoid"):
        fmt = activation_format(q)
        values = _on_grid(x, tanh_format(q))
        return (values if q.name == "quantized_tanh" else values * 0.5 + 0.5), fmt
    raise QuantizerError(f"{q} is not supported on weights")


def _on_grid(x: np.ndarray, fmt: Fixed) -> np.ndarray:
    """Round half to even onto the format's grid and saturate (symmetrically for SAT_SYM)."""
    k = np.rint(x.astype(np.float64) * 2.0**fmt.frac_bits)
    low = fmt.min_mantissa + (fmt.overflow is Overflow.SAT_SYM and fmt.signed)
    return np.clip(k, low, fmt.max_mantissa) * fmt.lsb


def _channel_axes(x: np.ndarray) -> tuple[int, ...]:
    """QKeras's per-channel reduction axes (channels_last): all but the last, or axis 0 of a vector."""
    return tuple(range(x.ndim - 1)) if x.ndim > 1 else (0,)


def _po2(scale: np.ndarray) -> np.ndarray:
    return np.power(np.float32(2.0), np.rint(np.log(scale + _EPS) / np.float32(np.log(2.0))))


def _auto_po2_scale(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``_get_scale("auto_po2", x, q)``: the least-squares scale of ``q`` onto ``x``, rounded to 2**n."""
    axes = _channel_axes(x)
    qx = np.mean(x * q, axis=axes, keepdims=True, dtype=np.float32)
    qq = np.mean(q * q, axis=axes, keepdims=True, dtype=np.float32)
    return _po2(np.asarray(qx / (qq + _EPS)))


def _bits_weight(q: Quantizer, x: np.ndarray) -> tuple[np.ndarray, Fixed | None]:
    fmt = bits_format(q)
    alpha = q.args.get("alpha")
    bits, integer = int(q.get("bits", 8)), int(q.get("integer", 0))
    keep_negative = bool(q.get("keep_negative", True))
    if isinstance(alpha, str):
        if alpha not in ("auto", "auto_po2"):
            raise QuantizerError(f"{q}: alpha={alpha!r} is not supported")
        return _bits_auto_po2(x, bits, integer, po2_start=alpha == "auto_po2")
    values = np.where(x >= 0, 1.0, -1.0) if bits - int(keep_negative) <= 0 else _on_grid(x, fmt)
    if alpha in (None, 1, 1.0):
        return values, fmt
    return values * np.float64(np.float32(alpha)), _scaled(fmt, float(alpha))


def _bits_auto_po2(
    x: np.ndarray, bits: int, integer: int, po2_start: bool
) -> tuple[np.ndarray, Fixed | None]:
    """quantized_bits with ``alpha="auto_po2"``: QKeras 0.9's refinement loop, transcribed step for
    step; ``"auto"`` gives float scales per channel, which no format holds (None)."""
    m_i = np.float32(2.0**integer)
    x = x / m_i
    axes = _channel_axes(x)
    levels = np.float32((2 ** (bits - 1) - 1) * 2)  # symmetric: alpha "auto*" forces it
    top = levels / 2
    scale = np.max(np.abs(x), axis=axes, keepdims=True) * 2 / levels
    if not po2_start:  # "auto": one step with the float scale; no format holds the result
        v = np.floor(np.abs(x) / scale + np.float32(0.5))
        z = np.sign(x) * np.where(v < top, v, top)
        return z.astype(np.float64) * (np.float64(m_i) * scale.astype(np.float64)), None
    scale = _po2(scale)
    z = np.zeros_like(x)
    for _ in range(5):
        v = np.floor(np.abs(x) / scale + np.float32(0.5))
        z = np.sign(x) * np.where(v < top, v, top)
        scale = _auto_po2_scale(x, z)
    values = z.astype(np.float64) * (np.float64(m_i) * scale.astype(np.float64))
    exponents = np.log2(np.float64(m_i) * scale.astype(np.float64))
    # Per channel ap_fixed<bits, e + bits>; one format holds them all: the finest LSB, the widest range.
    low, high = int(exponents.min()), int(exponents.max())
    fmt = Fixed(bits + high - low, high + bits, True, Rounding.RND_CONV, Overflow.SAT_SYM)
    return values, fmt


def _sign_weight(q: Quantizer, x: np.ndarray) -> tuple[np.ndarray, Fixed | None]:
    alpha = q.args.get("alpha")
    if isinstance(alpha, str) and alpha != "auto_po2":
        raise QuantizerError(f"{q}: alpha={alpha!r} gives scales that are not powers of two")
    if q.name == "binary":
        k = np.where(x >= 0, np.float32(1), np.float32(-1))
        if q.get("use_01", False):
            k = (k + 1) / 2
        scale: Any = _auto_po2_scale(x, k) if alpha == "auto_po2" else None
    else:
        k, scale = _ternary(q, x)
    base = Fixed(2, 2, True, Rounding.RND_CONV, Overflow.SAT)  # holds -1, 0 and +1
    if scale is None:
        if alpha in (None, 1, 1.0):
            return k.astype(np.float64), base
        return k.astype(np.float64) * float(np.float32(alpha)), _scaled(base, float(alpha))
    values = k.astype(np.float64) * scale.astype(np.float64)
    exponents = np.log2(scale.astype(np.float64))
    low, high = int(exponents.min()), int(exponents.max())
    return values, Fixed(2 + high - low, base.int_bits + high, True, Rounding.RND_CONV, Overflow.SAT)


def _ternary(q: Quantizer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``ternary``: ``{-1, 0, +1}`` beyond a threshold; with ``auto_po2`` QKeras refines scale and
    threshold together (``number_of_unrolls`` times)."""
    alpha = q.args.get("alpha")
    if not isinstance(alpha, str):
        threshold = q.args.get("threshold")
        threshold = np.float32(0.33 if threshold is None else threshold)
        return (np.abs(x) >= threshold).astype(np.float32) * np.sign(x), None
    axes = None if x.ndim == 1 else tuple(range(x.ndim - 1))
    scale = _po2(2 * np.max(np.abs(x), axis=axes, keepdims=True) / np.float32(3.0))
    k = np.zeros_like(x)
    for _ in range(int(q.get("number_of_unrolls", 5))):
        threshold = scale / 2
        v = scale * np.rint(x / scale)
        k = (np.abs(v) >= threshold).astype(np.float32) * np.sign(x)
        scale = _auto_po2_scale(x, k)
    return k, scale


def _scaled(fmt: Fixed, alpha: float) -> Fixed | None:
    """``fmt`` times a constant ``alpha``: a format again when ``alpha`` is a power of two."""
    if alpha <= 0 or not math.log2(alpha).is_integer():
        return None
    shift = int(math.log2(alpha))
    return Fixed(fmt.width, fmt.int_bits + shift, fmt.signed, fmt.rounding, fmt.overflow)
