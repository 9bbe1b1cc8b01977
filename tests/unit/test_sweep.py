"""``fpgac sweep``: the points a grid makes, the Pareto fronts, a sweep's table with its failing point, a
killed sweep resumed without losing or redoing a finished point, Ray giving the local run's results bit for
bit, and ``build --from-sweep`` rebuilding a point as it was measured."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fpgac.build import BuildOptions
from fpgac.sweep import store
from fpgac.sweep.grid import DEFAULT_AXES, SweepFileError, load_axes, make_points
from fpgac.sweep.pareto import front
from fpgac.sweep.sweep import SweepResult, sweep
from tests.sweep_support import FAILING, POINTS, tiny_classifier


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    return tiny_classifier(tmp_path_factory.mktemp("sweep_files"))


@pytest.fixture(scope="module")
def local(files: tuple[Path, Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    """The test sweep on two local worker processes."""
    model, calib, data, grid = files
    out = tmp_path_factory.mktemp("sweeps") / "local"
    return sweep(model, out, BuildOptions(calib=calib), data, grid=grid, jobs=2)


def _table(folder: Path) -> list[dict[str, str]]:
    """results.csv without the timing column, the one thing that may differ between two runs."""
    with (folder / store.TABLE_CSV).open() as file:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(file)]


def test_default_grid_has_24_points() -> None:
    axes, sample, count, seed = load_axes(None)
    assert axes == DEFAULT_AXES and len(make_points(axes, sample, count, seed)) == 24


def test_random_points_are_seeded_and_distinct(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    lines = [
        'sample = "random"',
        "points = 5",
        "seed = 3",
        "precision = [4, 6, 8]",
        'reuse = ["auto", 1, 2, 4]',
    ]
    path.write_text("\n".join([*lines, '[layers."fc1"]', "precision = [4, 8]", ""]))
    first = [dict(p.settings) for p in make_points(*load_axes(path))]
    assert first == [dict(p.settings) for p in make_points(*load_axes(path))]
    assert len({tuple(s.items()) for s in first}) == 5
    point = make_points(*load_axes(path))[0]
    options = point.options(BuildOptions())
    assert options.layer_precision == {"fc1": point.settings["layers.fc1.precision"]}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("precision = 8", "must be a non-empty list"),
        ("bits = [4]", "unknown settings ['bits']"),
        ('reuse = ["fast"]', "value 'fast' is not allowed"),
        ('sample = "random"\nprecision = [8]', "needs points = N"),
        ("precision = [8", "not valid TOML"),
    ],
)
def test_bad_sweep_files_name_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(SweepFileError, match=r"grid\.toml") as info:
        load_axes(path)
    assert fragment in str(info.value)


def test_a_layer_the_model_lacks_is_refused_before_any_point(
    files: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    model, calib, data, _ = files
    grid = tmp_path / "grid.toml"
    grid.write_text('[layers."fc9"]\nprecision = [4, 8]\n')
    with pytest.raises(SweepFileError, match="layer 'fc9' is not in the model; its layers: fc1, relu, fc2"):
        sweep(model, tmp_path / "out", BuildOptions(calib=calib), data, grid=grid)
    assert not (tmp_path / "out").exists()


def test_front_keeps_only_undominated_fitting_points() -> None:
    rows = [
        {"point": 0, "status": "ok", "fits": True, "accuracy": 0.90, "dsp": 10},
        {"point": 1, "status": "ok", "fits": True, "accuracy": 0.80, "dsp": 20},  # dominated by 0
        {"point": 2, "status": "ok", "fits": True, "accuracy": 0.95, "dsp": 30},
        {"point": 3, "status": "ok", "fits": False, "accuracy": 0.99, "dsp": 5},  # does not fit
        {"point": 4, "status": "failed"},
        {"point": 5, "status": "ok", "fits": True, "accuracy": 0.90, "dsp": 10},  # equal to 0: first kept
    ]
    assert front(rows, "dsp") == [0, 2]


@pytest.mark.slow
def test_sweep_writes_table_front_and_failures(local: SweepResult) -> None:
    assert (local.points, local.ran, local.skipped) == (POINTS, POINTS, 0)
    table = _table(local.folder)
    assert [int(r["point"]) for r in table] == list(range(POINTS))
    for row in table:
        if int(row["point"]) in FAILING:
            assert row["status"] == "failed"
            assert row["error"].startswith("--passes: unknown pass 'nosuchpass'") and "\n" not in row["error"]
        else:
            assert row["status"] == "ok" and 0 <= float(row["accuracy"]) <= 1 and row["outputs_sha256"]
    fronts = local.fronts
    assert all(points and not set(points) & FAILING for points in fronts.values())
    with (local.folder / store.FRONT_CSV).open() as file:
        on_front = {int(r["point"]) for r in csv.DictReader(file)}
    assert on_front == {k for points in fronts.values() for k in points}
    assert (local.folder / store.REPORT_HTML).is_file()


@pytest.mark.slow
def test_rerun_skips_every_finished_point(local: SweepResult, files: tuple[Path, Path, Path, Path]) -> None:
    model, calib, data, grid = files
    before = _table(local.folder)
    again = sweep(model, local.folder, BuildOptions(calib=calib), data, grid=grid, jobs=2)
    assert (again.ran, again.skipped) == (0, POINTS)
    assert _table(local.folder) == before
    with pytest.raises(store.SweepFolderError, match="different sweep"):
        sweep(model, local.folder, BuildOptions(calib=calib, board="pynq-z2"), data, grid=grid)


@pytest.mark.slow
def test_killed_sweep_resumes_without_losing_a_point(
    files: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """SIGKILL the fpgac process (and its workers) once two points are written; the rerun keeps those files
    untouched and runs only the rest. The sweep has 39 points (a point takes milliseconds: fewer could all
    finish between two looks)."""
    model, calib, data, _ = files
    grid = tmp_path / "long.toml"
    precisions = ", ".join(str(b) for b in range(4, 17))
    grid.write_text(f'precision = [{precisions}]\npasses = ["", "prune(sparsity=0.5)", "share(bits=4)"]\n')
    total = 39
    out = tmp_path / "killed"
    args = ["sweep", model, "--calib", calib, "--data", data, "--grid", grid, "--out", out, "--jobs", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "fpgac", *map(str, args)], start_new_session=True, stderr=subprocess.PIPE
    )
    points = out / store.POINTS_DIR
    deadline = time.monotonic() + 120
    while len(list(points.glob("*.json"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    kept = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in points.glob("*.json")}
    assert 2 <= len(kept) < total, "the sweep finished before it could be killed"
    result = sweep(model, out, BuildOptions(calib=calib), data, grid=grid, jobs=1)
    assert (result.skipped, result.ran) == (len(kept), total - len(kept))
    assert {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in points.glob("*.json") if p.name in kept
    } == kept
    assert len(_table(out)) == total


@pytest.mark.slow
def test_ray_gives_the_local_results_bit_for_bit(
    local: SweepResult, files: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray")
    model, calib, data, grid = files
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = sweep(model, tmp_path / "ray", BuildOptions(calib=calib), data, grid=grid, ray="auto")
    finally:
        ray.shutdown()
    assert result.ran == POINTS
    assert _table(tmp_path / "ray") == _table(local.folder)  # outputs_sha256: every simulated bit


@pytest.mark.slow
def test_build_from_sweep_rebuilds_the_point(local: SweepResult, tmp_path: Path) -> None:
    import json

    import click

    from fpgac.cli import cli

    row = next(r for r in local.rows if r["status"] == "ok" and r["settings"]["passes"])
    out = tmp_path / "point"
    args = ["build", "--from-sweep", str(local.folder), "--point", str(row["point"]), "--out", str(out)]
    with pytest.raises(click.UsageError, match="only --out and --force apply, not --backend"):
        cli.main([*args, "--backend", "none"], standalone_mode=False)
    cli.main(args, standalone_mode=False)
    report = json.loads((out / "report.json").read_text())
    assert report["resources"]["lut"] == row["lut"] and report["latency_cycles"] == row["latency_cycles"]
    assert report["options"]["precision"] == row["settings"]["precision"]
    assert (out / "report.html").is_file()
