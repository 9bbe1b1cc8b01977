"""report.html of a sweep folder (written by :mod:`fpgac.sweep`): accuracy against DSPs, BRAM and
latency with the Pareto fronts, and the table of every point (front rows marked, failed ones with their
error)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fpgac.html import plots
from fpgac.html.page import document, facts, generic, section, table

COSTS = {"dsp": "DSP", "bram18": "BRAM18", "latency_cycles": "latency (cycles)"}
COLUMNS = ("accuracy", "agreement", "mean_abs_error", "dsp", "bram18", "lut", "latency_cycles", "fps", "fits")


def render(
    manifest: Mapping[str, Any], rows: list[dict[str, Any]], on: Mapping[str, list[int]], *, source: str
) -> str:
    """The page of a sweep: ``manifest`` is sweep.json's content, ``rows`` the finished points' rows and
    ``on`` the Pareto fronts (point numbers) by cost, as :mod:`fpgac.sweep.pareto` finds them."""
    plots.require()
    built = [r for r in rows if r["status"] == "ok" and r.get("accuracy") is not None]
    options = manifest["options"]
    body = [section("Summary", _summary(manifest, rows, built))]
    if built:
        charts = [
            plots.scatter_front(built, cost, label, on[cost], log=cost == "latency_cycles")
            for cost, label in COSTS.items()
        ]
        body.append(
            section(
                "Accuracy against cost",
                "<p>Red: the Pareto front of the designs that fit the board (no other fitting design is "
                "as cheap and more accurate); hollow: designs that do not fit. Numbers are points.</p>",
                f'<div class="plots">{"".join(charts)}</div>',
            )
        )
    axes = list(manifest["points"][0]) if manifest["points"] else []
    front_points = {k for points in on.values() for k in points}
    front_rows = [r for r in rows if r["point"] in front_points]
    if front_rows:
        body.append(section("Pareto fronts", _table(axes, front_rows, on)))
    body.append(section("All points", _table(axes, rows, on)))
    body.append(section("Base build options", generic(options)))
    return document(f"fpgac sweep of {Path(manifest['model']).name}", body, source)


def _summary(manifest: Mapping[str, Any], rows: list[dict[str, Any]], built: list[dict[str, Any]]) -> str:
    failed = sum(r["status"] != "ok" for r in rows)
    fits = sum(bool(r.get("fits")) for r in built)
    best = max(built, key=lambda r: (r["accuracy"], -r["point"]), default=None)
    options = manifest["options"]
    items: dict[str, object] = {
        "model": manifest["model"],
        "validation data": manifest["data"],
        "board": options["board"],
        "points": f"{len(rows)} of {len(manifest['points'])} finished; {failed} failed; {fits} fit the board",
    }
    if best is not None:
        items["most accurate"] = f"point {best['point']}: {best['accuracy']:.4f}"
    return facts(items)


def _table(axes: list[str], rows: list[dict[str, Any]], on: Mapping[str, list[int]]) -> str:
    header = ["point", "status", *axes, *COLUMNS, "front", "error"]
    body, classes = [], []
    for row in sorted(rows, key=lambda r: r["point"]):
        front = " ".join(COSTS[c].split(" (")[0] for c in COSTS if row["point"] in on.get(c, []))
        body.append(
            [row["point"], row["status"], *(row["settings"].get(a) for a in axes)]
            + [_shown(row.get(c)) for c in COLUMNS]
            + [front, row.get("error", "")]
        )
        classes.append("failed" if row["status"] != "ok" else "front" if front else "")
    return table(header, body, classes=classes)


def _shown(value: object) -> object:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value
