"""``fpgac sweep``: many designs of one model, measured, tabled, and their Pareto fronts drawn.

The steps: the points (grid.py) -> the sweep folder, resumed when it already holds this sweep (store.py) ->
the float reference on the validation data, once (evaluate.py) -> the points not yet finished, in parallel
(runner.py), each row written as it comes -> the tables, the fronts and report.html.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.arrays import ArrayFileError, load_inputs
from fpgac.atomic import write_atomic
from fpgac.build import BuildOptions, load_model
from fpgac.ir import Graph
from fpgac.sweep import store
from fpgac.sweep.evaluate import prepare_data
from fpgac.sweep.grid import Point, check_layers, load_axes, make_points
from fpgac.sweep.pareto import fronts
from fpgac.sweep.runner import run_local, run_ray

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: its points, how many ran now and were skipped (finished before), the rows and the
    fronts (point numbers per cost), and its wall time."""

    folder: Path
    points: int
    ran: int
    skipped: int
    rows: list[dict[str, Any]]
    fronts: dict[str, list[int]]
    seconds: float

    @property
    def failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.rows)


def sweep(
    model: Path,
    out: Path,
    base: BuildOptions,
    data: Path,
    *,
    grid: Path | None = None,
    jobs: int = 1,
    ray: str | None = None,
    force: bool = False,
) -> SweepResult:
    """Run (or resume) the sweep of ``model`` over ``grid`` (None: the default grid) into ``out``."""
    from fpgac.progress import counted

    start = time.perf_counter()
    axes, sample, count, seed = load_axes(grid)
    graph = load_model(model)
    check_layers(axes, [n.name for n in graph.nodes], grid)
    points = make_points(axes, sample, count, seed)
    inputs, labels = load_data(graph, data)  # a bad data file fails before the folder is made
    store.open_folder(out, store.manifest(model, base, data, points), force=force)
    done = store.finished(out)
    todo = [p for p in points if p.index not in done]
    rows = dict(done)
    names = list(axes)
    if todo:
        reference = prepare_data(graph, inputs, labels)
        with counted(f"sweep: {len(points)} points", len(todo)) as advance:

            def finish(row: dict[str, Any]) -> None:
                store.record(out, row)
                rows[row["point"]] = row
                store.write_tables(out, names, list(rows.values()))
                advance()

            if ray is None:
                run_local(model, base, todo, reference, jobs, finish)
            else:
                run_ray(model, base, todo, reference, ray, finish)
    ordered = [rows[p.index] for p in points]
    on = store.write_tables(out, names, ordered)
    write_sweep_html(out)
    return SweepResult(out, len(points), len(todo), len(done), ordered, on, time.perf_counter() - start)


def load_data(graph: Graph, path: Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The validation inputs (as ``fpgac sim`` takes them) and ``labels`` when the .npz has them."""
    inputs = load_inputs(path, graph)
    labels = None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if "labels" in npz.files:
                labels = np.asarray(npz["labels"]).reshape(-1)
    if labels is not None and len(labels) != len(inputs[0]):
        raise ArrayFileError(f"{path}: {len(labels)} labels for {len(inputs[0])} samples")
    return inputs, labels


def write_sweep_html(folder: Path, *, required: bool = False) -> Path | None:
    """``report.html`` of the sweep folder. Without matplotlib (the ``report`` extra) the sweep still
    writes its tables and warns; ``fpgac report`` (``required``) fails instead."""
    from fpgac.html import sweep_page
    from fpgac.html.plots import PlotsUnavailable

    manifest = store.load_manifest(folder)
    rows = sorted(store.finished(folder).values(), key=lambda r: r["point"])
    try:
        page = sweep_page.render(manifest, rows, fronts(rows), source=f"{folder.name}/{store.SWEEP_JSON}")
    except PlotsUnavailable as exc:
        if required:
            raise
        log.warning("%s; %s not written", exc, store.REPORT_HTML)
        return None
    path = folder / store.REPORT_HTML
    write_atomic(path, page)
    return path


def point_options(folder: Path, index: int) -> tuple[Path, BuildOptions]:
    """The model and build options of point ``index`` of a sweep folder (``build --from-sweep``)."""
    data = store.load_manifest(folder)
    settings = data["points"]
    if not 0 <= index < len(settings):
        raise store.SweepFolderError(
            f"{folder}: no point {index}; the sweep has points 0..{len(settings) - 1}"
        )
    base = store.options_from_json(data["options"])
    return Path(data["model"]), Point(index, settings[index]).options(base)
