"""What a C-simulation test needs: g++ and the ``ap_fixed`` headers the installed hls4ml ships."""

from __future__ import annotations

import shutil

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
