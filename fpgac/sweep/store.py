"""A sweep's folder: what it ran, one file per finished point, and the tables made from them.

```
sweep.json        the model, the base build options and every point's settings (what --from-sweep rebuilds)
points/0007.json  point 7's row, written atomically the moment it finishes
results.csv       every finished point, one row each, remade (atomically) after every point
front.csv         the rows on a Pareto front (pareto.py), with the fronts each is on
report.html       the plots and the table (fpgac.html)
```
A killed sweep loses at most the points that were running: rerun the same command and every point with a
file in ``points/`` is skipped. A folder that holds a different sweep (another model, options or grid) is
refused unless ``--force``, so finished points of one sweep never mix into another's table.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fpgac.atomic import write_atomic
from fpgac.build import BuildOptions
from fpgac.errors import FpgacError
from fpgac.sweep.grid import Point
from fpgac.sweep.pareto import COSTS, fronts

SWEEP_JSON = "sweep.json"
POINTS_DIR = "points"
TABLE_CSV = "results.csv"
FRONT_CSV = "front.csv"
REPORT_HTML = "report.html"

# Table columns after the point's settings; ``seconds`` is the only one that differs between two runs.
METRICS = (
    "accuracy",
    "agreement",
    "max_abs_error",
    "mean_abs_error",
    "dsp",
    "bram18",
    "lut",
    "ff",
    "uram",
    "latency_cycles",
    "latency_us",
    "ii",
    "fps",
    "fits",
    "io_built",
    "weight_bits",
    "macs",
    "outputs_sha256",
)


class SweepFolderError(FpgacError):
    """A sweep folder that cannot be written or read."""


def options_json(options: BuildOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}


def options_from_json(data: Mapping[str, Any]) -> BuildOptions:
    """The base options a sweep recorded, as :class:`BuildOptions` again."""
    values = dict(data)
    for key in ("calib", "config"):
        values[key] = Path(values[key]) if values.get(key) else None
    values["input_range"] = tuple(values["input_range"])
    return BuildOptions(**values)


def manifest(model: Path, base: BuildOptions, data: Path, points: Sequence[Point]) -> dict[str, Any]:
    """The content of ``sweep.json``: enough to tell the same sweep again and to rebuild any point."""
    return {
        "model": str(model.resolve()),
        "data": str(data.resolve()),
        "options": options_json(base),
        "points": [dict(p.settings) for p in points],
    }


def open_folder(folder: Path, content: Mapping[str, Any], *, force: bool) -> None:
    """Make ``folder`` the home of the sweep ``content``; a folder of the same sweep is resumed."""
    path = folder / SWEEP_JSON
    if folder.exists() and not folder.is_dir():
        raise SweepFolderError(f"{folder}: exists and is not a folder")
    if path.is_file():
        if json.loads(path.read_text()) == json.loads(json.dumps(content)):
            return
        if not force:
            raise SweepFolderError(
                f"{folder}: holds a different sweep (model, options or points); use --force to start over"
            )
    elif folder.exists() and any(folder.iterdir()) and not force:
        raise SweepFolderError(f"{folder}: exists and is not a sweep folder; use --force to replace it")
    shutil.rmtree(folder / POINTS_DIR, ignore_errors=True)
    for name in (TABLE_CSV, FRONT_CSV, REPORT_HTML):
        (folder / name).unlink(missing_ok=True)
    write_atomic(path, json.dumps(content, indent=1) + "\n")


def load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / SWEEP_JSON
    if not path.is_file():
        raise SweepFolderError(f"{folder}: not a sweep folder (no {SWEEP_JSON})")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def record(folder: Path, row: Mapping[str, Any]) -> None:
    write_atomic(folder / POINTS_DIR / f"{row['point']:04d}.json", json.dumps(row, indent=1) + "\n")


def finished(folder: Path) -> dict[int, dict[str, Any]]:
    """The rows of the points already run, by point number."""
    rows = {}
    for path in sorted((folder / POINTS_DIR).glob("*.json")):
        row = json.loads(path.read_text())
        rows[int(row["point"])] = row
    return rows


def write_tables(
    folder: Path, axes: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[int]]:
    """``results.csv`` and ``front.csv`` from the finished rows; returns the fronts."""
    on = fronts(rows)
    write_atomic(folder / TABLE_CSV, table_csv(axes, rows, on))
    front_rows = [r for r in rows if any(r["point"] in points for points in on.values())]
    write_atomic(folder / FRONT_CSV, table_csv(axes, front_rows, on))
    return on


def table_csv(axes: Sequence[str], rows: Sequence[Mapping[str, Any]], on: Mapping[str, list[int]]) -> str:
    """Rows as CSV: point, status, the settings, the measurements, the fronts it is on, error, seconds."""
    header = ["point", "status", *axes, *METRICS, "front", "error", "seconds"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in sorted(rows, key=lambda r: r["point"]):
        front = " ".join(cost for cost in COSTS if row["point"] in on.get(cost, []))
        values = [row["settings"].get(a) for a in axes]
        values += [row.get(k) for k in METRICS]
        writer.writerow(
            [row["point"], row["status"], *map(_cell, values), front, row["error"], row["seconds"]]
        )
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
