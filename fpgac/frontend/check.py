"""What ``fpgac inspect`` warns about in a model it can read: weights that hold NaN or Inf.

The build refuses such a model when it quantizes it; inspecting it should say so at once, naming the
layer and the param, instead of printing a table as if all were well.
"""

from __future__ import annotations

import numpy as np

from fpgac.ir import Graph


def nonfinite_params(graph: Graph) -> list[str]:
    """One line per param holding NaN or Inf values: the node, its op, the param and the counts."""
    lines = []
    for node in graph.nodes:
        for key, param in node.params.items():
            data = np.asarray(param.data)
            if data.dtype.kind != "f" or np.all(np.isfinite(data)):
                continue
            nan, inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
            lines.append(
                f"node {node.name!r} ({node.op}): param {key!r} holds {nan} NaN and {inf} Inf values "
                f"of {data.size}; the build will refuse it"
            )
    return lines
