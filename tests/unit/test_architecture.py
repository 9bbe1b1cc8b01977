"""The package's layering, checked on its import graph: no cycles, and no arrow against the flow.

The flow (ARCHITECTURE.md) is ``ir -> interp -> analysis -> passes -> backends -> build -> cli``; a layer
imports only from layers before it. Imports under ``if TYPE_CHECKING:`` are annotations, not arrows,
and are left out. ``pytest tests/unit/test_architecture.py -q`` prints any cycle or forbidden arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import fpgac

ROOT = Path(fpgac.__file__).parent

# Which packages each layer may import (besides itself and the leaf modules errors/boards).
ALLOWED: dict[str, set[str]] = {
    "ir": set(),
    "interp": {"ir"},
    "analysis": {"ir", "interp"},
    "frontend": {"ir"},
    "passes": {"ir", "interp", "analysis"},
    "backends": {"ir", "interp", "analysis"},
    # report.html reads a build folder (its graph and report.json): the build writes it, not the reverse.
    "html": {"ir"},
    # A sweep compiles and measures points with the build's own pipeline, then draws its page.
    "sweep": {"ir", "interp", "analysis", "passes", "backends", "build", "html", "arrays"},
}
# Modules any layer may import: they import nothing of fpgac (progress shows steps, rich only; atomic
# writes a file in one step).
LEAVES = {"errors", "boards", "progress", "atomic", "__init__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    """Modules of fpgac imported by ``tree`` at run time (``from pkg import submodule`` resolved)."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fpgac":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "fpgac")
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> nx.DiGraph:
    """One node per module of fpgac, an edge for each run-time import between them."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        for target in _imports(ast.parse(path.read_text()), set(files)):
            if target != name:
                graph.add_edge(name, target)
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_cycles() -> None:
    graph = import_graph()
    # A package's __init__ re-exporting its own modules is not a cycle between jobs.
    graph.remove_edges_from(
        [(a, b) for a, b in graph.edges if b.startswith(a + ".") and a in {"fpgac"} | set(graph)]
    )
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_no_arrow_against_the_flow() -> None:
    wrong = []
    for source, target in import_graph().edges:
        src, dst = _layer(source), _layer(target)
        if src == dst or dst in LEAVES or src not in ALLOWED:
            continue
        if dst not in ALLOWED[src]:
            wrong.append(f"{source} -> {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))
