"""Bipolar values and the dense/conv layers that compute on them by XNOR-popcount.

A *bipolar* value holds ``+s`` or ``-s`` in every element, one power of two ``s``: what a 1-bit signed
quantizer makes (QONNX's ``BipolarQuant``, or its 1-bit signed ``Quant``; Brevitas' binary activations,
BNN-PYNQ's ``QuantIdentity(bit_width=1)``), stored in its 2-bit format with ``s`` the LSB, and what ops
that only select among their inputs' elements (reshape, transpose, concat, max pool: the ``selects``
trait) pass on. A layer whose weights are binary (``+-s_w``, one magnitude: :mod:`fpgac.ir.sign_weights`)
and whose input is bipolar needs neither a multiplier nor an adder per product: each product is
``+-s * s_w``, positive where the two signs agree, so a sum over ``N`` taps is ``s * s_w * (2 * popcount(
XNOR(w bits, x bits)) - N)``, exact. The Vitis kernels compute it so (``dense_xnor``, ``conv_xnor_pixel``
in ``fpgac_kernels.h``), the estimate costs it so; the simulator's exact integer sum of the ``+-1``
products is the same number, so it needs no path of its own. This module is the one place that decides.
"""

from __future__ import annotations

from fpgac.ir.graph import Node, Value
from fpgac.ir.levels import is_levelled
from fpgac.ir.ops import OPS
from fpgac.ir.quant import fixed_plan
from fpgac.ir.sign_weights import single_magnitude
from fpgac.ir.types import Fixed


def is_bipolar(value: Value) -> bool:
    """Whether every element of ``value`` is ``+s`` or ``-s`` with ``s`` the LSB of its 2-bit signed
    format: it comes from a 1-bit signed quantizer in that format through ops that only select."""
    fmt = value.type.format
    if not (isinstance(fmt, Fixed) and fmt.signed and fmt.width == 2):
        return False
    node = value.producer
    if node is None:
        return False
    if node.op == "quant":
        return _bipolar_quant(node, fmt)
    return OPS[node.op].selects and all(v.type.format == fmt and is_bipolar(v) for v in node.inputs)


def _bipolar_quant(node: Node, fmt: Fixed) -> bool:
    """Whether the quant ``node`` is a 1-bit signed quantizer of one scale whose 2-bit output format
    ``fmt`` is on that scale's grid (another grid would move its values off ``+-1`` mantissas)."""
    if not (node.attrs["bits"] == 1 and node.attrs["signed"]):
        return False
    try:
        plan = fixed_plan(
            node.attrs, node.params["scale"].data, node.params["zero_point"].data, node.output.shape
        )
    except ValueError:  # no fixed-point form: the quantize pass refuses it
        return False
    return len(plan.groups) == 1 and plan.groups[0].fmt.frac_bits == fmt.frac_bits


def is_xnor_layer(node: Node) -> bool:
    """Whether the dense or conv ``node`` has binary weights of one magnitude (no zeros) and a bipolar
    input: its sums are XNOR-popcounts (a rank-levelled layer keeps its own kernel)."""
    if node.op not in ("dense", "conv") or "weight" not in node.params or is_levelled(node):
        return False
    signs = single_magnitude(node.params["weight"])
    return signs is not None and not signs.ternary and is_bipolar(node.inputs[0])
