"""Graph-to-graph passes and their explicit registry.

A pass is a frozen dataclass: its fields are its options, ``name`` is what
``--passes`` calls it, and ``run(graph) -> graph`` does the work. The registry
below is the only place ``--passes`` finds passes: no folder scanning, no hidden
order. The build's fixed steps (``output_names`` after the clean-ups, a backend's
lowering) are passes too, placed by ``pipeline.py`` and the build, not by users.
"""

from __future__ import annotations

from dataclasses import Field
from typing import Any, ClassVar, Protocol

from fpgac.ir import Graph
from fpgac.passes.cleanup import Cleanup
from fpgac.passes.finetune import Finetune
from fpgac.passes.fold_affine import FoldAffine
from fpgac.passes.huffman import Huffman
from fpgac.passes.lowrank import LowRank
from fpgac.passes.ood import Ood
from fpgac.passes.prune import Prune
from fpgac.passes.quantize import Quantize
from fpgac.passes.reap import Reap
from fpgac.passes.share import Share
from fpgac.passes.sign_threshold import SignThreshold


class Pass(Protocol):
    """What every pass provides: a dataclass (its fields are its options) with a name and a ``run``."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    name: ClassVar[str]

    def run(self, graph: Graph) -> Graph: ...


PASSES: dict[str, type[Pass]] = {
    Cleanup.name: Cleanup,
    FoldAffine.name: FoldAffine,
    SignThreshold.name: SignThreshold,
    LowRank.name: LowRank,
    Quantize.name: Quantize,
    Reap.name: Reap,
    Prune.name: Prune,
    Share.name: Share,
    Huffman.name: Huffman,
    Ood.name: Ood,
    Finetune.name: Finetune,
}

__all__ = [
    "PASSES",
    "Cleanup",
    "Finetune",
    "FoldAffine",
    "Huffman",
    "LowRank",
    "Ood",
    "Pass",
    "Prune",
    "Quantize",
    "Reap",
    "Share",
    "SignThreshold",
]
