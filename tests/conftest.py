"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``onnx_export(name, exporter) -> path``: each ``tests.models`` model exported once per session.

    Exporting with the dynamo exporter takes about a second per model, and several
    suites use the same models, so exports are cached for the whole session.
    """
    from tests.models import export_named  # imports torch: only for the tests that export

    folder = tmp_path_factory.mktemp("onnx_exports")
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, exporter: str) -> Path:
        key = (name, exporter)
        if key not in cache:
            cache[key] = export_named(name, exporter, folder)
        return cache[key]

    return get
