"""Joint training of run-time rank levels (Decomposable-Net): the ``finetune`` step on a levelled graph.

``lowrank(levels=...)`` makes one set of factors whose smaller levels are prefixes of the largest
(:mod:`fpgac.ir.levels`); training-free, the smaller levels share weights fitted for every level at once
and fall behind separate builds at the same MACs (the digits CNN at 0.2 of its MACs: 38% against 57%).
Yaguchi et al. (Decomposable-Net, IJCAI 2021) train the full model and a sampled smaller one together, so
that the shared factors serve every size:

    loss = (1 - ALPHA) * L(full) + ALPHA * L(level),  level drawn uniformly from the smaller levels

with ``ALPHA = 0.5`` as in the paper, ``L`` the ``finetune`` pass's loss (distillation from the original
float model, plus cross-entropy with labels). The levels stay nested because the module computes a level
by masking the shared factors past its rank (:attr:`~fpgac.interp.torch_module.GraphModule.level`), and
each level trains its own row of ``level_bias`` (a per-level bias instead of the per-level batch-norm
recalibration of a network that keeps its batch norms): the full term trains row 0, the level term the
drawn level's row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fpgac.ir.levels import level_count

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from fpgac.interp.torch_module import GraphModule

ALPHA = 0.5
"""The smaller level's weight in each step's loss (Decomposable-Net's value)."""


def has_levels(module: GraphModule) -> bool:
    """Whether the module's graph has run-time rank levels to train jointly."""
    return level_count(module.graph) > 1


def joint_loss(
    module: GraphModule,
    batch: list[Tensor],
    loss: Callable[[Tensor], Tensor],
    generator: torch.Generator,
) -> Tensor:
    """One step's loss: the full model's and a drawn smaller level's, weighted ``1 - ALPHA`` and ``ALPHA``.

    ``loss`` maps the batch's logits to the pass's loss; ``generator`` draws the level (seeded with the
    pass). The module is left at level 0.
    """
    import torch

    module.level = 0
    (full,) = module(*batch)
    module.level = int(torch.randint(1, level_count(module.graph), (1,), generator=generator))
    try:
        (smaller,) = module(*batch)
    finally:
        module.level = 0
    return (1 - ALPHA) * loss(full) + ALPHA * loss(smaller)


def per_level(module: GraphModule, evaluate: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    """``evaluate()`` (the pass's loss and accuracy over the data) at every level, largest first."""
    results = []
    try:
        for level in range(level_count(module.graph)):
            module.level = level
            results.append({"level": level, **evaluate()})
    finally:
        module.level = 0
    return results


def record(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """``report.json``'s account of the joint training: ``ALPHA`` and every level's loss (and accuracy)
    before and after."""
    levels = []
    for b, a in zip(before, after, strict=True):
        entry = {"level": b["level"], "loss_before": b["loss"], "loss_after": a["loss"]}
        if b.get("accuracy") is not None:
            entry |= {"accuracy_before": b["accuracy"], "accuracy_after": a["accuracy"]}
        levels.append(entry)
    return {"joint": True, "alpha": ALPHA, "sampled": "uniform over the smaller levels", "levels": levels}
