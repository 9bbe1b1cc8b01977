"""One entry for every model file fpgac reads: the frontend is chosen by the file's type.

``.onnx`` (and anything else, which the ONNX frontend refuses by name) goes to :mod:`fpgac.frontend.onnx`;
Keras files (``.h5``, ``.hdf5``, ``.keras``, ``.json`` with its weights file) to
:mod:`fpgac.frontend.keras`, imported only then (it needs h5py, the ``keras`` extra).
"""

from __future__ import annotations

from pathlib import Path

from fpgac.frontend.context import FrontendError
from fpgac.frontend.keras_files import KERAS_SUFFIXES
from fpgac.frontend.onnx import load_onnx
from fpgac.ir import Graph


def load_file(path: Path, keras_weights: Path | None = None) -> Graph:
    """The float IR of the model in ``path`` (``keras_weights``: the weights of a Keras ``.json``)."""
    if path.suffix.lower() in KERAS_SUFFIXES:
        try:
            from fpgac.frontend.keras import load_keras
        except ImportError as exc:  # h5py missing
            raise FrontendError(
                f"{path.name}: reading Keras files needs h5py (pip install 'fpgac[keras]'): {exc}"
            ) from None
        return load_keras(path, keras_weights)
    if keras_weights is not None:
        raise FrontendError(f"{path.name}: --keras-weights goes with a Keras model.json, not this file")
    return load_onnx(path)
