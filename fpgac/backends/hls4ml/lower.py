"""Lowering a quantized graph to hls4ml's semantics, so that ``fpgac sim`` computes what hls4ml computes.

The split: this module rewrites (a clone of) the quantized IR into a graph whose every node is either an
op whose fpgac kernel already equals hls4ml's (dense, conv, relu, relu6 clips, leaky ReLU, add, concat,
max pooling, reshapes) or one of the ``hls4ml_*`` ops (tables, softmax, mean) that
:mod:`fpgac.interp.hls4ml_kernels` runs bit-exactly. :mod:`fpgac.backends.hls4ml.emitter` then maps this
lowered graph one node to one hls4ml layer, and the build folder stores the lowered graph, so ``fpgac
sim DIR`` needs nothing hls4ml-specific beyond those kernels.

Layouts are explicit, never guessed. hls4ml's io_parallel tensors are channels-last, so every
``(C, H, W)`` value gets the layout ``(1, 2, 0)``. A flatten of such a value would read its elements in
HWC order, so the lowering inserts an explicit ``transpose`` to logical ``(H, W, C)`` before the
reshape (free in hls4ml: the memory order already is HWC) and permutes the columns of the dense layers
that read the flattened vector, so the lowered graph computes exactly the original model. This is the
step hls4ml's own ONNX path gets wrong for residual nets with GlobalAveragePool.

Tables are computed as hls4ml's ``init_*_table`` functions compute them in C++ — float arithmetic, the
C library's ``expf``/``tanhf`` (called through ctypes: glibc's ``tanhf`` is not correctly rounded, and
numpy's differs from it in about one entry in seven) — and stored in the table type the lowering
chooses and passes to hls4ml, so the table contents match bit for bit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

import numpy as np

from fpgac.errors import Refusal
from fpgac.ir import fixed
from fpgac.ir.graph import Graph, Node, Param
from fpgac.ir.levels import is_levelled
from fpgac.ir.types import Fixed, Overflow, Rounding, TensorType

CHANNELS_LAST = (1, 2, 0)
TABLE_SIZE = 1024
SOFTMAX_TABLE_BITS = 12  # 4096-entry exp and reciprocal tables
SELU_CONSTANTS = {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805}
ELU_TABLE = Fixed(18, 1, True, Rounding.RND, Overflow.SAT)  # e^x - 1 in (-1, 0]
# Core ops the lowering maps onto hls4ml layers, and those it refuses, each with what hls4ml lacks. Every
# core op is in one of the two (tests/unit/test_op_coverage.py); the hls4ml_* ops are this lowering's output.
SUPPORTED = frozenset(
    {
        "dense", "conv", "relu", "leaky_relu", "clip", "max_pool", "avg_pool", "reduce", "reshape", "add",
        "sub", "mul", "affine", "prelu", "hard_sigmoid", "elu", "selu", "pad", "transpose", "concat",
        "sigmoid", "tanh", "softmax",
    }
)  # fmt: skip
UNMAPPED: dict[str, str] = {
    "div": "hls4ml has no elementwise division of two tensors (its Merge layers add, subtract, multiply, "
    "average, max, min, dot and concatenate)",
    "lrn": "hls4ml has no local response normalization layer",
    "patch_energy": "the OOD monitor's exact energies (sums of squares over patches) have no hls4ml layer; "
    "build it with --backend vitis",
    "ood_flag": "the OOD monitor's threshold (num < tau * den) has no hls4ml layer; "
    "build it with --backend vitis",
    "quant": "QONNX quantizers are not mapped to hls4ml's quantized activations yet (use the vitis backend)",
}


class Hls4mlError(Refusal):
    """A node that hls4ml cannot express (or not bit-exactly)."""


def _refuse(node: Node, why: str) -> Hls4mlError:
    return Hls4mlError(f"hls4ml backend: node {node.name!r} ({node.op}): {why}")


def lower(graph: Graph) -> Graph:
    """A copy of the quantized ``graph`` in hls4ml's semantics and layouts (see the module docstring)."""
    g = graph.clone()
    for node in g.nodes:
        _check(node)
    for value in [*g.inputs, *(n.output for n in g.nodes)]:
        if value.type.rank == 3:
            value.type = TensorType(value.shape, value.type.format, CHANNELS_LAST)
        elif value.type.rank != 1:
            what = f"node {value.producer.name!r} ({value.producer.op})" if value.producer else "input"
            raise Hls4mlError(
                f"hls4ml backend: {what}: value {value.name!r} of shape {value.shape} is neither 1-d nor "
                "(C, H, W)"
            )
    for node in list(g.nodes):
        if node.op == "max_pool" and (any(node.attrs["pads"]) or node.attrs["ceil_mode"]):
            _signed_pool_input(node)
        if node.op == "reshape":
            _lower_reshape(g, node)
        elif node.op in ("sigmoid", "tanh"):
            _lower_table(node)
        elif node.op in ("elu", "selu"):
            _lower_elu(node)
        elif node.op == "softmax":
            _lower_softmax(node)
        elif node.op == "reduce" and node.attrs["mode"] == "mean":
            node.op = "hls4ml_mean"
            node.params = {}
        elif node.op == "avg_pool":
            node.op = "hls4ml_avg_pool"
            node.params = {}
            # Without padding, counting it changes nothing, but hls4ml's count_pad would count the cells
            # of ceil-mode windows past the input, which ONNX does not.
            node.attrs["count_include_pad"] = node.attrs["count_include_pad"] and any(node.attrs["pads"])
    return g


@dataclass(frozen=True)
class Hls4mlLowering:
    """:func:`lower` as a pass, so the lowered graph goes through the pipeline's verifier like any other.

    The build runs it for ``--backend hls4ml``; it is not one of the ``--passes``: the backend choice
    decides it, and nothing after it but the hls4ml emitter reads hls4ml ops.
    """

    name: ClassVar[str] = "hls4ml_lowering"

    def run(self, graph: Graph) -> Graph:
        return lower(graph)


def _check(node: Node) -> None:
    if is_levelled(node):
        raise _refuse(
            node,
            "rank levels (lowrank levels=...) choose a rank at run time, but hls4ml fixes every layer's "
            "size at compile time; build with --backend vitis, or lowrank(macs=...) for one level",
        )
    if node.op in UNMAPPED:
        raise _refuse(node, UNMAPPED[node.op])
    if node.op not in SUPPORTED:
        raise _refuse(node, "hls4ml has no layer for this op")
    rank = node.inputs[0].type.rank
    a = node.attrs
    if node.op in ("conv", "max_pool", "avg_pool") and rank != 3:
        raise _refuse(node, "2-d windows (C, H, W) only: hls4ml's Conv1D and Pooling1D are not mapped yet")
    if node.op == "avg_pool":
        _check_avg_pool(node)
    if node.op in ("sub", "mul") and len({v.shape for v in node.inputs}) > 1:
        raise _refuse(node, f"hls4ml's Merge layers {node.op} values of one shape only (no broadcasting)")
    if node.op == "affine":
        _check_affine(node)
    if node.op == "pad":
        _check_pad(node)
    if node.op == "hard_sigmoid":
        _check_hard_sigmoid(node)
    if node.op == "selu" and not all(math.isclose(a[k], v, rel_tol=1e-6) for k, v in SELU_CONSTANTS.items()):
        raise _refuse(node, f"hls4ml's selu has the standard constants {SELU_CONSTANTS} only")
    if node.op in ("conv", "max_pool") and set(a["dilations"]) != {1}:
        raise _refuse(node, "hls4ml has no dilated convolution or pooling")
    if node.op == "conv":
        groups, (out_ch, in_per_group, *_) = a["groups"], node.params["weight"].shape
        if groups != 1 and not (groups == node.inputs[0].shape[0] == out_ch and in_per_group == 1):
            raise _refuse(
                node, "grouped convolutions other than depthwise (groups = channels) are not supported"
            )
    if node.op == "clip" and (a["min"] != 0.0 or a["max"] not in (1.0, 6.0)):
        raise _refuse(node, "only clips to [0, 6] and [0, 1] (relu6, relu1) exist in hls4ml")
    if node.op == "reduce" and (rank != 3 or sorted(a["axes"]) != [1, 2]):
        raise _refuse(node, "only global pooling over the spatial axes of (C, H, W) is supported")
    if node.op == "softmax" and rank != 1:
        raise _refuse(node, "softmax is supported on 1-d values only")
    if node.op == "add" and len(node.inputs) != 2:
        raise _refuse(node, "hls4ml merges two inputs at a time")
    if node.op in ("add", "concat") and len({v.shape for v in node.inputs}) > 1 and node.op == "add":
        raise _refuse(node, "hls4ml adds values of one shape only (no broadcasting)")
    if node.op == "concat" and len(node.inputs) != 2:
        raise _refuse(node, "hls4ml concatenates two inputs at a time")


def _check_avg_pool(node: Node) -> None:
    """hls4ml divides each window's sum by its cells inside the input, or by the kernel's size with
    ``count_pad``; ONNX's count is the same except for windows of padding only (hls4ml would divide by
    zero) and, counting padding, ceil-mode windows that run past the end padding (ONNX does not count
    those cells)."""
    a = node.attrs
    (kh, kw), pads = a["kernel"], a["pads"]
    if any(p >= k for p, k in zip(pads, (kh, kw, kh, kw), strict=True)):
        raise _refuse(node, "a window of padding only: hls4ml's average would divide by zero")
    *_, bottom, right = pool_pads(node)
    if a["count_include_pad"] and any(pads) and (bottom, right) != (pads[2], pads[3]):
        raise _refuse(
            node, "ceil-mode windows past the padding: hls4ml's count_pad would count cells ONNX does not"
        )


def pool_pads(node: Node) -> tuple[int, int, int, int]:
    """Pooling pads as hls4ml needs them: it pools floor-mode windows over the padded input, so ceil mode
    becomes extra end padding (never counted by an average without count_pad, never winning a max)."""
    a, (_, h, w) = node.attrs, node.inputs[0].shape
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    out_h, out_w = node.output.shape[1:]
    top, left, bottom, right = a["pads"]
    bottom = max(bottom, (out_h - 1) * sh + kh - h - top)
    right = max(right, (out_w - 1) * sw + kw - w - left)
    return top, left, bottom, right


def _check_affine(node: Node) -> None:
    """hls4ml removes a BatchNormalization of scale 1 and shift 0 (its RemoveNopBatchNormalization pass)
    and with it the cast to the output type; such an affine is refused rather than silently changed."""
    scale, shift = node.params["scale"].data, node.params["shift"].data
    if np.all(scale == 1) and np.all(shift == 0):
        raise _refuse(node, "hls4ml removes a BatchNormalization of scale 1 and shift 0, and its cast")


def _check_hard_sigmoid(node: Node) -> None:
    """hls4ml clamps ``auto t = slope * x + shift`` by assigning ``1`` to ``t``'s exact type: right only
    where that type holds 1 (else the clamp would wrap or round)."""
    fx, (fa, fb) = node.inputs[0].type.format, (node.params[k].format for k in ("alpha", "beta"))
    assert isinstance(fx, Fixed) and isinstance(fa, Fixed) and isinstance(fb, Fixed)  # quantized by now
    t = fixed.add_format(fixed.mul_format(fa, fx), fb)
    if t.frac_bits < 0 or t.int_bits < (2 if t.signed else 1):
        raise _refuse(
            node, f"hls4ml's hard_sigmoid clamps to 1 in the type of slope * x + shift, {t}, which has no 1"
        )


def _check_pad(node: Node) -> None:
    """hls4ml's ZeroPadding2D pads the spatial axes of (C, H, W) with zeros and keeps its input's type."""
    a, x = node.attrs, node.inputs[0]
    if x.type.rank != 3 or a["pads"][0] or a["pads"][3]:
        raise _refuse(node, "hls4ml pads the spatial axes of (C, H, W) values only (ZeroPadding2D)")
    if a["mode"] != "constant" or a["value"] != 0.0:
        raise _refuse(node, f"hls4ml pads with zeros only, not {a['mode']} padding with {a['value']}")
    if x.type.format != node.output.type.format:
        raise _refuse(node, "hls4ml's ZeroPadding2D keeps its input's type; the output's differs")


def _signed_pool_input(node: Node) -> None:
    """hls4ml pads max pooling with ``T x = 0; x[x.width - 1] = 1`` (``pad_val``): the most negative value
    of a signed type, but half the range of an unsigned one, where the padding would win. Non-negative
    values (ReLU and clip outputs) are moved into the signed format one bit wider, which holds the same
    values with the same saturation bound, so the model computes the same numbers and padding never wins.
    """
    value = node.inputs[0]
    fmt = value.type.format
    if not isinstance(fmt, Fixed) or fmt.signed:
        return
    if value.producer is None or value.producer.op not in ("relu", "clip"):
        raise _refuse(node, "hls4ml's padding of max pooling wins over unsigned inputs; pad a signed value")
    signed = Fixed(fmt.width + 1, fmt.int_bits + 1, True, fmt.rounding, fmt.overflow)
    value.type = TensorType(value.shape, signed, value.type.layout)


def _lower_reshape(g: Graph, node: Node) -> None:
    src = node.inputs[0]
    if src.type.rank == 3:
        c, h, w = src.shape
        t = g.add(
            "transpose",
            [src],
            [TensorType((h, w, c), src.type.format)],
            name=f"{node.name}_to_hwc",
            attrs={"perm": list(CHANNELS_LAST)},
            index=g.index_of(node),
        )
        node.set_input(0, t.output)
        order = np.arange(c * h * w).reshape(c, h, w).transpose(CHANNELS_LAST).ravel()
        if h * w > 1:
            _permute_readers(node, order)
    elif node.output.type.rank == 3 and node.output.shape[1:] != (1, 1):
        raise _refuse(node, "a reshape into (C, H, W) would need a channels-last relayout")


def _permute_readers(node: Node, order: np.ndarray) -> None:
    """Dense layers reading the flattened HWC vector get their input columns in the same order."""
    value = node.output
    graph = node.graph
    assert graph is not None
    if node.output.type.rank != 1 or value in graph.outputs:
        raise _refuse(node, "a flattened channels-last tensor may only feed dense layers")
    for reader in value.consumers:
        if reader.op != "dense":
            raise _refuse(
                node, f"a flattened channels-last tensor may only feed dense layers, not {reader.op}"
            )
        weight = reader.params["weight"]
        reader.params["weight"] = Param(weight.data[:, order].copy(), weight.format)


# -- tables ------------------------------------------------------------------------------------------


@cache
def _libm() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    for fn in ("expf", "tanhf"):
        getattr(lib, fn).restype, getattr(lib, fn).argtypes = ctypes.c_float, [ctypes.c_float]
    return lib


def _cfloat(fn: str, x: np.ndarray) -> np.ndarray:
    """``std::exp``/``std::tanh`` on floats as the C library computes them (numpy if there is no libm)."""
    lib = _libm()
    x = np.asarray(x, dtype=np.float32)
    if lib is None:
        return getattr(np, fn[:-1])(x.astype(np.float64)).astype(np.float32)
    f = getattr(lib, fn)
    return np.array([f(float(v)) for v in x.ravel()], dtype=np.float32).reshape(x.shape)


def _quantized(values: np.ndarray, fmt: Fixed) -> Param:
    return Param(fixed.to_float(fixed.quantize(np.asarray(values, np.float64), fmt), fmt), fmt)


def sigmoid_table(size: int, fmt: Fixed) -> Param:
    """``init_sigmoid_table``: ``in_val = 16 (i - N/2) / N`` (float), ``1.0 / (1 + expf(-in_val))``."""
    in_val = (2 * 8.0 * (np.arange(size) - size / 2.0) / size).astype(np.float32)
    e = _cfloat("expf", -in_val)
    return _quantized((1.0 / (np.float32(1) + e).astype(np.float64)).astype(np.float32), fmt)


def tanh_table(size: int, fmt: Fixed) -> Param:
    """``init_tanh_table``: ``in_val = 8 (i - N/2) / N`` (float), ``tanhf(in_val)``."""
    in_val = (2 * 4.0 * (np.arange(size) - size / 2.0) / size).astype(np.float32)
    return _quantized(_cfloat("tanhf", in_val), fmt)


_TABLES: dict[str, Callable[[int, Fixed], Param]] = {"sigmoid": sigmoid_table, "tanh": tanh_table}


def _lower_table(node: Node) -> None:
    out = node.output.type.format
    assert isinstance(out, Fixed)
    node.params = {"table": _TABLES[node.op](TABLE_SIZE, out)}  # table_t = res_T: the final cast is exact
    node.attrs = {}
    node.op = f"hls4ml_{node.op}"


def elu_table(size: int, fmt: Fixed, selu: bool) -> Param:
    """``init_elu_table`` / ``init_selu_table``: ``in_val = -8 i / N`` (float); ``elu_fcn_float`` returns
    the float of ``double(expf(x)) - 1``, ``selu_fcn_float`` the float of ``1.0507.. * (1.6732.. * (expf(x)
    - 1.))`` (double arithmetic, the constants as C++ double literals)."""
    in_val = (-8.0 * np.arange(size) / np.float32(size)).astype(np.float32)
    e = _cfloat("expf", in_val).astype(np.float64) - 1.0
    if selu:
        e = 1.0507009873554804934193349852946 * (1.6732632423543772848170429916717 * e)
    return _quantized(e.astype(np.float32), fmt)


def _lower_elu(node: Node) -> None:
    """hls4ml's ELU multiplies its table of e^x - 1 by alpha in ``param_t`` (chosen here: 18 bits); its SELU
    table is the output (``table_t`` = ``res_T``, so the final cast is exact)."""
    if node.op == "elu":
        alpha = float(node.attrs["alpha"])
        int_bits = max(math.floor(math.log2(abs(alpha))) + 2, 1) if alpha else 1
        node.params = {
            "table": elu_table(TABLE_SIZE, ELU_TABLE, selu=False),
            "alpha": _quantized(np.array(alpha), Fixed(18, int_bits, True, Rounding.RND, Overflow.SAT)),
        }
        node.attrs = {"alpha": alpha}
    else:
        out = node.output.type.format
        assert isinstance(out, Fixed)
        node.params = {"table": elu_table(TABLE_SIZE, out, selu=True)}
        node.attrs = {"alpha": node.attrs["alpha"], "gamma": node.attrs["gamma"]}
    node.op = f"hls4ml_{node.op}"


def _real_from_index(i: np.ndarray, fmt: Fixed, bits: int) -> np.ndarray:
    """``softmax_real_val_from_idx``: a value whose top ``bits`` bits are ``i`` and the rest zero."""
    return (i.astype(np.float64) * 2.0 ** (fmt.width - bits - fmt.frac_bits)).astype(np.float32)


def softmax_formats(n: int) -> dict[str, Fixed]:
    """The types fpgac gives hls4ml's softmax (its defaults, ``ap_fixed<18,8>`` everywhere, lose 8 bits)."""
    grow = max(math.ceil(math.log2(n)), 0)
    bits = SOFTMAX_TABLE_BITS
    rs = (Rounding.RND, Overflow.SAT)
    return {
        "inp_norm": Fixed(bits, 4, False, *rs),  # max - x in [0, 16): exp(-16) is below every table LSB
        "exp_table": Fixed(18, 1, False, *rs),
        "acc": Fixed(18 + grow, 1 + grow, False, *rs),  # exact sums of n entries
        "inv_inp": Fixed(bits, 1 + grow, False, *rs),
        "inv_table": Fixed(18, 1, False, *rs),
    }


def _lower_softmax(node: Node) -> None:
    n = node.inputs[0].shape[0]
    f = softmax_formats(n)
    bits = SOFTMAX_TABLE_BITS
    index = np.arange(1 << bits)
    exp = _cfloat("expf", -_real_from_index(index, f["inp_norm"], bits))
    x = _real_from_index(index, f["inv_inp"], bits)
    with np.errstate(divide="ignore"):
        inv = np.float32(1) / x
    inv[0] = fixed.to_float(np.array([f["inv_table"].max_mantissa]), f["inv_table"])[0]  # 1/0: unreachable
    node.params = {"exp_table": _quantized(exp, f["exp_table"]), "inv_table": _quantized(inv, f["inv_table"])}
    node.attrs = {"axis": 0, "acc": f["acc"], "inp_norm": f["inp_norm"], "inv_inp": f["inv_inp"]}
    node.op = "hls4ml_softmax"
