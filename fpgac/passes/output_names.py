"""Give the graph outputs back the model's own names after clean-ups removed the nodes that carried them.

``cleanup`` and ``fold_affine`` bypass nodes; when a bypassed node produced a graph output, the output
becomes its producer's value and takes that value's name (``fc2_out`` instead of the model's ``logits``).
The names users see (``fpgac sim``'s ``.npz`` keys, the report, the HLS ports) should be the model's, as
recorded by the frontend in ``graph.metadata["outputs"]``; this pass restores them where it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fpgac.ir import Graph


@dataclass(frozen=True)
class OutputNames:
    """Rename each graph output to the model's name for it, unless the name is taken or ambiguous.

    Graph inputs keep their names (an output that is an input is not renamed), and so does a value
    that stands behind several outputs (one name cannot be two).
    """

    name: ClassVar[str] = "output_names"

    def run(self, graph: Graph) -> Graph:
        names = list(graph.metadata.get("outputs", {}))
        outputs = graph.outputs
        if len(names) != len(outputs):
            return graph
        live = {v.name for v in graph.values()}
        for name, value in zip(names, outputs, strict=True):
            if value.name == name or name in live:
                continue
            if value.producer is None or sum(v is value for v in outputs) > 1:
                continue
            live.discard(value.name)
            value.name = name
            live.add(name)
        return graph
