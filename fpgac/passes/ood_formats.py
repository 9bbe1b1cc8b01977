"""Fixed-point formats of the OOD monitor's nodes: exact energies and a threshold in a stated format.

Used by the quantize pass (its rules for ``patch_energy`` and ``ood_flag``) and by the ood pass, which
inserts its nodes into an already quantized graph and formats them itself. Nothing here depends on
calibration ranges: the energies are exact for every input the input format can hold, so the monitor's
``num`` and ``den`` are the integers ``sum ||V_k^T h_p||^2`` and ``sum ||h_p||^2`` of the stored values.
"""

from __future__ import annotations

import math

import numpy as np

from fpgac.errors import FpgacError
from fpgac.ir import fixed
from fpgac.ir.graph import Node, Param
from fpgac.ir.shapes import patch_grid
from fpgac.ir.types import Fixed, Overflow, Rounding

# The threshold tau in [0, 2), truncated (so a stored tau never exceeds the chosen one): 17 fraction bits
# resolve scores far finer than the calibration quantile they come from.
TAU_FORMAT = Fixed(18, 1, False, Rounding.TRN, Overflow.SAT)
FLAG_FORMAT = Fixed(1, 1, False, Rounding.TRN, Overflow.WRAP)
MAX_WIDTH = 1024  # ap_fixed's widest type (AP_INT_MAX_W)


def _max_mantissa(fmt: Fixed) -> int:
    return max(-fmt.min_mantissa, fmt.max_mantissa)


class EnergyWidthError(FpgacError):
    """An exact energy wider than ``ap_fixed`` can hold."""


def _exact(bound: int, frac: int, signed: bool, node: Node) -> Fixed:
    """The narrowest format on the grid ``2**-frac`` holding every integer mantissa up to ``bound``."""
    width = max(int(bound).bit_length(), 1) + int(signed)
    if width > MAX_WIDTH:
        raise EnergyWidthError(
            f"node {node.name!r} ({node.op}): exact energy needs {width} bits, ap_fixed holds {MAX_WIDTH}; "
            "monitor a smaller layer or quantize to fewer bits"
        )
    return Fixed(width, width - frac, signed, Rounding.TRN, Overflow.WRAP)


def energy_format(node: Node, fx: Fixed) -> Fixed:
    """The exact output format of a patch_energy node reading ``fx``, whose basis (if any) is already
    quantized; sets the projection accumulator ``acc`` (exact, as dense/conv's)."""
    grid, taps = patch_grid(node.inputs[0].shape, node.attrs)
    patches = math.prod(grid)
    x_max = _max_mantissa(fx)
    basis = node.params.get("basis")
    if basis is None:
        return _exact(patches * taps * x_max**2, 2 * fx.frac_bits, False, node)
    fb = basis.format
    assert isinstance(fb, Fixed)  # the caller quantized it
    mantissas = fixed.quantize(basis.data, fb).reshape(basis.data.shape).astype(object)
    proj_max = max((int(r) for r in np.abs(mantissas).sum(axis=1)), default=0) * x_max
    acc = _exact(proj_max, fx.frac_bits + fb.frac_bits, True, node)
    node.attrs["acc"] = acc
    return _exact(patches * basis.data.shape[0] * proj_max**2, 2 * acc.frac_bits, False, node)


def flag_format(node: Node) -> Fixed:
    """Store tau in :data:`TAU_FORMAT`; the flag is one unsigned bit."""
    tau = float(node.attrs["tau"])
    stored = fixed.to_float(fixed.quantize(np.array([tau]), TAU_FORMAT), TAU_FORMAT).reshape(())
    node.params["tau"] = Param(stored, TAU_FORMAT)
    return FLAG_FORMAT
