"""report.html of a build and of a sweep: self-contained, deterministic, escaped, and drawn for real.

The browser test opens both pages in headless Chromium (Debian's /usr/bin/chromium through playwright):
no console error, and the screenshots show the charts (their pixels are not blank, and carry the charts'
colours).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fpgac.build import BuildOptions, build
from fpgac.html import build_page, sweep_page
from tests.sweep_support import tiny_classifier

pytest.importorskip("matplotlib")

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def build_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("html")
    model, calib, _, _ = tiny_classifier(folder)
    out = folder / "build"
    build(model, out, BuildOptions(calib=calib, passes="prune(sparsity=0.5)"), html=True)
    return out


def _sweep_page() -> str:
    """A sweep page from made-up rows: two fitting points, one that does not fit, one failed."""
    settings = [{"precision": p, "passes": ""} for p in (4, 8, 12, 16)]
    rows: list[dict[str, Any]] = []
    for k, (acc, dsp, fits) in enumerate([(0.7, 0, True), (0.9, 40, True), (0.95, 900, False)]):
        rows.append(
            {"point": k, "settings": settings[k], "status": "ok", "error": "", "seconds": 1.0,
             "accuracy": acc, "agreement": acc, "mean_abs_error": 0.1, "dsp": dsp, "bram18": 2 * k,
             "lut": 1000 * (k + 1), "latency_cycles": 100 - 10 * k, "fps": 1e6, "fits": fits}
        )  # fmt: skip
    rows.append(
        {"point": 3, "settings": settings[3], "status": "failed", "error": "<b>boom</b>", "seconds": 0.1}
    )
    manifest = {
        "model": "/m/tiny.onnx",
        "data": "/m/val.npz",
        "options": {"board": "zcu104"},
        "points": settings,
    }
    fronts = {"dsp": [0, 1], "bram18": [0, 1], "latency_cycles": [1]}
    return sweep_page.render(manifest, rows, fronts, source="sweep.json")


@pytest.mark.slow
def test_unknown_report_keys_get_a_section_and_names_are_escaped(build_folder: Path) -> None:
    import json

    report = json.loads((build_folder / "report.json").read_text())
    report["ood_monitor"] = {"threshold": 3.5, "layers": [{"name": "<script>x</script>", "mean": 0.1}]}
    report["layers"][0]["rank_level"] = 2
    page = build_page.render(report, None, source="report.json")
    assert "<h2>ood monitor</h2>" in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<h2>More per-layer facts</h2>" in page and "rank_level" in page
    assert "<script" not in page
    assert not any(f'{attr}="http' in page for attr in ("src", "href")), "the page fetches something"
    assert "&lt;b&gt;boom&lt;/b&gt;" in _sweep_page()


@pytest.mark.slow
def test_report_html_is_deterministic(build_folder: Path) -> None:
    written = (build_folder / "report.html").read_text()
    assert build_page.write_folder(build_folder).read_text() == written
    assert written.count("<svg") >= 5  # utilization, resources, cycles, weights, compression


@pytest.mark.slow
def test_pages_render_in_headless_chromium(build_folder: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium")
    sweep_html = tmp_path / "sweep.html"
    sweep_html.write_text(_sweep_page())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for path, charts in ((build_folder / "report.html", 5), (sweep_html, 3)):
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                errors: list[str] = []
                page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                page.goto(path.as_uri())
                assert errors == [], path
                svgs = page.locator("svg")
                assert svgs.count() >= charts
                shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
                pixels = np.asarray(shot).reshape(-1, 3)
                assert np.mean(np.any(pixels < 230, axis=1)) > 0.02, f"{path.name}: the page looks blank"
                chart = np.asarray(Image.open(io.BytesIO(svgs.first.screenshot())).convert("RGB")).astype(int)
                coloured = chart.max(axis=-1) - chart.min(axis=-1) > 60  # the bars' and points' colours
                assert coloured.sum() > 50, f"{path.name}: the first chart shows no bars or points"
                page.close()
        finally:
            browser.close()
