"""The layers the OOD monitor can watch, as it sees them: a dense or ungrouped conv node, or a weight-SVD
low-rank split (the lowrank pass's ``NAME_lr1`` then ``NAME_lr2``) as the one layer ``W = B A`` it stands for.

A split layer keeps its first factor ``A`` (r x taps): its output ``z = A h`` is computed anyway, so a
projection score inside A's row space is ``||Q z||^2`` with a small ``Q`` (k x r) instead of a second
``k x taps`` projection of ``h`` (:func:`reused_basis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fpgac.ir.graph import Graph, Node, Value

RANK_TOLERANCE = 1e-9  # singular values of A below this share of the largest are not part of its row space


@dataclass(frozen=True)
class Layer:
    """A monitorable layer: its name, op, weight as a matrix (rows: output units), input and the patches it
    reads; ``factor`` is a weight-SVD split's first-factor node, whose output the projection can reuse."""

    name: str
    op: str
    weight: np.ndarray
    source: Value
    window: dict[str, Any]
    factor: Node | None = None


def window_attrs(node: Node) -> dict[str, Any]:
    """The patches ``node`` reads: its conv window, or (dense) the rows of its input."""
    if node.op == "dense":
        return {"kernel": [], "strides": [], "pads": [], "dilations": []}
    a = node.attrs
    kernel = list(node.params["weight"].shape[2:])
    return {"kernel": kernel, "strides": list(a["strides"]), "pads": list(a["pads"]),
            "dilations": list(a["dilations"])}  # fmt: skip


def pointwise(window: dict[str, Any]) -> dict[str, Any]:
    """The window reading one position at a time (a first factor's output holds one patch per position)."""
    nd = len(window["kernel"])
    return {"kernel": [1] * nd, "strides": [1] * nd, "pads": [0] * (2 * nd), "dilations": [1] * nd}


def _matrix(node: Node) -> np.ndarray:
    w = np.asarray(node.params["weight"].data, dtype=np.float64)
    return w.reshape(w.shape[0], -1)


def _monitorable(node: Node) -> bool:
    return node.op == "dense" or (node.op == "conv" and node.attrs["groups"] == 1)


def _svd_splits(graph: Graph) -> dict[str, tuple[Node, Node]]:
    """First and second factor of every weight-SVD split, by the original layer's name. Splits with rank
    levels are left out: their first factor's rank changes at run time."""
    names = {n.name: n for n in graph.nodes}
    splits = {}
    for record in graph.metadata.get("compression", []):
        options = record.get("options", {})
        if record.get("pass") != "lowrank" or options.get("method") != "svd" or "levels" in options:
            continue
        for name, layer in record["layers"].items():
            first, second = names.get(f"{name}_lr1"), names.get(f"{name}_lr2")
            if not layer["split"] or first is None or second is None:
                continue
            if second.inputs[0] is first.output:
                splits[name] = (first, second)
    return splits


def monitorable_layers(graph: Graph) -> list[Layer]:
    """Dense and ungrouped conv layers in graph order, each weight-SVD split as one layer ``W = B A``."""
    splits = _svd_splits(graph)
    seconds = {second.name for _, second in splits.values()}
    by_first = {first.name: (name, second) for name, (first, second) in splits.items()}
    layers = []
    for node in graph.nodes:
        if not _monitorable(node) or node.name in seconds:
            continue
        if node.name in by_first:
            name, second = by_first[node.name]
            weight = _matrix(second) @ _matrix(node)
            layers.append(Layer(name, node.op, weight, node.inputs[0], window_attrs(node), node))
        else:
            layers.append(Layer(node.name, node.op, _matrix(node), node.inputs[0], window_attrs(node)))
    return layers


def reused_basis(layer: Layer, mean: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The projection basis of a split layer inside its first factor's row space: ``(V, Q)`` with ``V``
    (k x taps, orthonormal rows) the top-k directions of ``W`` within ``rowspace(A)`` orthogonal to the
    dataset-bias direction ``mean``, and ``Q`` (k x r) with ``Q A = V``, so ``||V h||^2 = ||Q z||^2``.

    With ``A = U_a S_a V_a^T``, directions in the row space are ``V_a c``; orthogonal to the mean when
    ``c`` is orthogonal to ``V_a^T mean``; the top ones are the right singular vectors ``C`` of
    ``W V_a (I - m m^T)``, and then ``Q = C S_a^-1 U_a^T``.
    """
    assert layer.factor is not None
    u_a, s_a, vt_a = np.linalg.svd(_matrix(layer.factor), full_matrices=False)
    keep = s_a > RANK_TOLERANCE * max(float(s_a[0]), 1e-300)
    u_a, s_a, vt_a = u_a[:, keep], s_a[keep], vt_a[keep]
    m = vt_a @ mean
    norm = float(np.linalg.norm(m))
    inside = layer.weight @ vt_a.T
    if norm > 0:
        m = m / norm
        inside = inside - np.outer(inside @ m, m)
    _, s, c = np.linalg.svd(inside, full_matrices=False)
    c = c[: min(k, int(np.sum(s > RANK_TOLERANCE * max(float(s[0]), 1e-300))))]
    return c @ vt_a, (c / s_a[None, :]) @ u_a.T
