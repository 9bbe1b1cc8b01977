"""Rank levels in the Vitis project: the ``rank_level`` port and the ranked factor layers.

A design with rank levels (:mod:`fpgac.ir.levels`) gets a scalar port ``rank_level`` (s_axilite) on its top
function, passed to every factor layer; each factor gets a ROM of its rank per level and its bias per level,
and runs ``fpgac_levels.h``'s kernels, whose component loop stops at the level's rank. The arithmetic is
the static layer's (exact accumulator, one cast), so level ``i`` computes what ``fpgac sim --rank-level i``
does. The component loop's schedule is :mod:`fpgac.analysis.rank_schedule`'s, which the estimate counts.
"""

from __future__ import annotations

import math

import numpy as np

from fpgac.analysis.rank_schedule import component_schedule, largest_rank
from fpgac.backends.vitis.ccode import Array, Ctx, LayerCode, VitisError, config
from fpgac.ir.graph import Node
from fpgac.ir.levels import LEVEL_BIAS

LEVELS_HEADER = "fpgac_levels.h"
LEVEL_PORT = "rank_level"
LEVEL_ARG = f"int {LEVEL_PORT}"


def ranked(ctx: Ctx, code: LayerCode, values: dict[str, int], types: dict[str, str]) -> None:
    """The body and config of a ranked dense or conv factor (``values``: the static layer's config); a
    layer with only a bias per level runs the same kernel with every output at every level."""
    node = ctx.node
    if node.params["weight"].encoding is not None or ctx.offchip:
        raise VitisError(f"{ctx.where()}: a layer with rank levels keeps dense weights on chip")
    out_side = "ranks_in" not in node.attrs
    weight = node.params["weight"].shape
    every_output = [weight[0]] * len(node.params[LEVEL_BIAS].data) if LEVEL_BIAS in node.params else []
    ranks = [int(r) for r in node.attrs.get("ranks_out" if out_side else "ranks_in", every_output)]
    rank = largest_rank(node)
    per_component = math.prod(weight[1:]) if out_side else weight[0]
    if node.op == "conv" and (node.attrs["groups"] != 1 or (not out_side and math.prod(weight[2:]) != 1)):
        raise VitisError(f"{ctx.where()}: rank levels need a groups-1 conv, and a 1 x 1 second factor")
    unroll, step_ii = component_schedule(rank, ctx.reuse)
    extra = {
        "LEVELS": len(ranks),
        "RANK": rank,
        "RANK_OUT": int(out_side),
        "N_OUT": weight[0],
        "N_IN": per_component if out_side else 1,
        "UNROLL": unroll,
        "GROUPS": math.ceil(rank / unroll),
        "STEP_II": step_ii,
        "MULTS": math.ceil(rank * per_component / ctx.reuse),
    }
    code.config = config(ctx, {**values, **extra}, types)
    rom = f"{ctx.name}_ranks"
    code.arrays.append(Array("int", rom, np.array(ranks), "rank per level"))
    kernel = (
        "dense_ranked" if node.op == "dense" else ("conv_stream_ranked" if ctx.stream else "conv2d_ranked")
    )
    args = f"{ctx.ins[0]}, {ctx.out}, {ctx.name}_weight, {ctx.name}_bias, {rom}, {LEVEL_PORT}"
    code.body = f"  fpgac::{kernel}<{ctx.name}_config>({args});"


def level_biases(node: Node) -> np.ndarray | None:
    """The bias per level (levels x outputs) of a ranked factor with a bias, else None."""
    if "bias" not in node.params:
        return None
    if LEVEL_BIAS in node.params:
        return np.asarray(node.params[LEVEL_BIAS].data)
    count = len(node.attrs.get("ranks_out") or node.attrs["ranks_in"])
    return np.repeat(np.asarray(node.params["bias"].data)[None], count, axis=0)
