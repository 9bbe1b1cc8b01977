"""Read a Keras model's architecture and weights from its files with h5py, without TensorFlow.

The forms people publish:

* ``model.h5``: Keras 2's whole-model HDF5 (also what Keras 3 writes for ``.h5``): the architecture as
  JSON in the root attribute ``model_config``, the weights under ``model_weights/<layer>/``, listed by
  the attributes ``layer_names`` and ``weight_names``.
* ``model.keras``: Keras 3's zip of ``config.json`` and ``model.weights.h5``, whose weights are
  ``layers/<layer>/vars/<i>`` in the order the layer created them.
* ``model.json`` plus a weights file (``model.to_json()`` and ``save_weights``): the split form many
  published examples use; the weights file is either of the two HDF5 layouts above.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.frontend.context import FrontendError

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras", ".json")

# A layer's weights in file order: (name such as "kernel", or None where the file has no names, array).
LayerWeights = list[tuple[str | None, np.ndarray]]


@dataclass(frozen=True)
class KerasFiles:
    """What the files hold: the model config (``{"class_name": ..., "config": ...}``) and the weights of
    every layer by layer name; ``keras3`` when the config is Keras 3's (its inbound-node form)."""

    config: dict[str, Any]
    weights: dict[str, LayerWeights]
    keras3: bool


def read_keras(path: Path, weights_path: Path | None, label: str) -> KerasFiles:
    """The config and weights of a Keras model file (``weights_path``: the split form's weights)."""
    import h5py  # the keras extra; imported only when a Keras model is loaded

    if not path.exists():
        raise FrontendError(f"{label}: no such file ({path})")
    suffix = path.suffix.lower()
    if weights_path is not None and suffix != ".json":
        raise FrontendError(f"{label}: --keras-weights is for a model.json architecture file only")
    try:
        if suffix == ".keras":
            return _read_zip(path, label, h5py)
        if suffix == ".json":
            if weights_path is None:
                raise FrontendError(
                    f"{label}: a JSON architecture needs its weights: --keras-weights model_weights.h5"
                )
            config = _json(path.read_text(), label)
            with h5py.File(weights_path, "r") as f:
                weights = _weights(f, f"{weights_path.name}")
            return KerasFiles(config, _by_layer_name(config, weights), _is_keras3(config))
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                raise FrontendError(
                    f"{label}: holds weights only (no model_config); pass the architecture as "
                    "model.json with --keras-weights"
                )
            config = _json(_text(f.attrs["model_config"]), label)
            weights = _weights(f.get("model_weights", f), label)
        return KerasFiles(config, weights, _is_keras3(config))
    except FrontendError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise FrontendError(f"{label}: cannot read Keras model: {type(exc).__name__}: {exc}") from None


def _read_zip(path: Path, label: str, h5py: Any) -> KerasFiles:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            raise FrontendError(f"{label}: not a Keras 3 archive (needs config.json and model.weights.h5)")
        config = _json(archive.read("config.json").decode("utf-8"), label)
        data = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as f:
        weights = _weights(f, label)
    return KerasFiles(config, _by_layer_name(config, weights), True)


def _json(text: str, label: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FrontendError(f"{label}: the model config is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise FrontendError(f"{label}: not a Keras model config (no class_name and config)")
    return config


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _is_keras3(config: dict[str, Any]) -> bool:
    """Keras 3 configs give each layer a ``module`` and inbound nodes as ``{"args": ...}`` dicts."""
    layers = config.get("config", {}).get("layers", []) if isinstance(config.get("config"), dict) else []
    return any(isinstance(layer, dict) and "module" in layer for layer in layers)


def _weights(group: Any, label: str) -> dict[str, LayerWeights]:
    """Every layer's weights from either HDF5 layout."""
    if "layer_names" in group.attrs:  # Keras 2: attributes list layers, then each layer's weights
        out: dict[str, LayerWeights] = {}
        for layer in (_text(n) for n in group.attrs["layer_names"]):
            g = group[layer]
            names = [_text(n) for n in g.attrs.get("weight_names", [])]
            out[layer] = [(_short(n), np.asarray(g[n])) for n in names]
        return out
    if "layers" in group:  # Keras 3: layers/<name>/vars/<i>
        return _keras3_weights(group["layers"])
    raise FrontendError(f"{label}: no Keras weights found (neither layer_names nor layers/)")


def _keras3_weights(layers: Any) -> dict[str, LayerWeights]:
    out: dict[str, LayerWeights] = {}
    for name in layers:
        group = layers[name]
        if "vars" in group and len(group["vars"]):
            variables = group["vars"]
            out[name] = [(None, np.asarray(variables[k])) for k in sorted(variables, key=int)]
        if "layers" in group:  # a model nested as a layer
            out.update(_keras3_weights(group["layers"]))
    return out


def _by_layer_name(config: dict[str, Any], weights: dict[str, LayerWeights]) -> dict[str, LayerWeights]:
    """Keras 3's weights file names a layer's group not by the layer's name but by its class in snake
    case, numbered by order in the model (``conv2d``, ``conv2d_1``, ...): key them by layer name again.
    (Keras 2's files, and groups already named after layers, are kept as they are.)"""
    layers = config.get("config", {}).get("layers", []) if isinstance(config.get("config"), dict) else []
    seen: dict[str, int] = {}
    out = dict(weights)
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        base = _snake_case(str(layer.get("class_name", "")))
        count = seen.get(base, 0)
        seen[base] = count + 1
        path = base if count == 0 else f"{base}_{count}"
        name = str(layer.get("name") or layer.get("config", {}).get("name"))
        if name not in weights and path in weights:
            out[name] = weights[path]
    return out


def _snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``: ``BatchNormalization`` -> ``batch_normalization``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _short(name: str) -> str:
    """``"q_dense/kernel:0"`` -> ``"kernel"``."""
    return name.rsplit("/", 1)[-1].split(":", 1)[0]
