"""What a C-simulation test needs: g++ and the ``ap_fixed`` headers the installed hls4ml ships."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fpgac.backends.vitis import csim


def skip_without_csim() -> None:
    """Skip the calling test module (or test) when g++ or hls4ml's ``ap_types`` headers are missing."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed", allow_module_level=True)
    try:
        csim.ap_types_dir()
    except csim.CsimError:
        pytest.skip("hls4ml (ap_fixed headers) is not installed", allow_module_level=True)


def assert_compiles_without_warnings(hls: Path, tmp_path: Path) -> None:
    """``g++ -Wall -Wextra`` on project ``hls``: no warning located in a generated or fpgac kernel file."""
    proc = subprocess.run(
        csim.compile_command(hls, tmp_path / "tb", ("-Wall", "-Wextra", "-fsyntax-only")),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = [line for line in proc.stderr.splitlines() if str(hls) in line and "warning" in line]
    assert not ours, "\n".join(ours[:20])
