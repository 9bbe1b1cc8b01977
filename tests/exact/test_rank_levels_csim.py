"""Rank levels against g++: every level's C-simulation equals ``fpgac sim --rank-level`` bit for bit in both
io styles, and a level equals the static build truncated to its ranks (same formats) bit for bit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import random_inputs, verify
from fpgac.backends.plan import BuildPlan, write_plan
from fpgac.backends.vitis.csim import run_csim
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.boards import get_board
from fpgac.ir import Graph
from fpgac.ir.levels import level_count
from fpgac.ir.serialize import graph_files
from tests.csim_support import skip_without_csim
from tests.rank_levels import levelled, truncated

skip_without_csim()

pytestmark = pytest.mark.slow  # three g++ compiles: about 30 s of CPU


def write_folder(graph: Graph, folder: Path, io: str, reuse: Mapping[str, int]) -> Path:
    plan = BuildPlan()
    for name, data in graph_files(graph).items():
        plan.add(name, data)
    plan.merge(vitis_plan(graph, get_board("zcu104"), io, reuse, model=graph.name), prefix="hls/")
    return write_plan(plan, folder, force=True)


def reuse_map(graph: Graph, reuse: int) -> dict[str, int]:
    return {n.name: reuse for n in graph.nodes}


@pytest.fixture(scope="module")
def graph() -> Graph:
    return levelled()


@pytest.fixture(scope="module")
def folders(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("levels")
    styles = {"parallel": 3, "stream": 2}
    return {io: write_folder(graph, root / io, io, reuse_map(graph, r)) for io, r in styles.items()}


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_every_level_is_bit_exact(graph: Graph, folders: dict[str, Path], io: str) -> None:
    result = verify(str(folders[io]), samples=6)
    assert sorted({d.level for d in result.layers}) == list(range(level_count(graph)))
    assert result.mismatches == 0, result.first_mismatch


def test_a_level_equals_the_static_truncated_build(
    graph: Graph, folders: dict[str, Path], tmp_path: Path
) -> None:
    level = 2
    static = write_folder(truncated(graph, level), tmp_path / "static", "stream", reuse_map(graph, 2))
    x = random_inputs(graph, 6, seed=4)
    ours = run_csim(folders["stream"], x, rank_level=level).mantissas[0]
    assert np.array_equal(ours, run_csim(static, x).mantissas[0])
