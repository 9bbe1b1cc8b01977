"""Keras and QKeras model files written with h5py alone, as Keras writes them, for the frontend's tests.

A model is a list of layers ``(class_name, config, weights)`` in order (Sequential) or with
``inbound`` names (Functional). :func:`write_h5` writes Keras 2's whole-model HDF5 (``model_config``
attribute, ``model_weights/<layer>/<layer>/<name>:0``), :func:`write_split` the ``model.to_json()`` +
``save_weights`` pair, and :func:`write_keras3` Keras 3's ``.keras`` zip (``config.json`` and
``model.weights.h5`` with ``layers/<class in snake case>/vars/<i>``, as Keras 3 names them).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")


@dataclass
class Layer:
    kind: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)
    inbound: list[str] = field(default_factory=list)  # Functional models: the layers it reads


def model_config(layers: list[Layer], input_shape: tuple[int, ...], keras3: bool = False) -> dict[str, Any]:
    """The ``model.to_json()`` dict of a Functional model (a layer without ``inbound`` reads the one
    before it)."""
    input_layer = {
        "class_name": "InputLayer",
        "name": "input_1",
        "config": {"name": "input_1", "batch_shape" if keras3 else "batch_input_shape": [None, *input_shape]},
        "inbound_nodes": [],
    }
    if keras3:
        input_layer["module"] = "keras.layers"
    entries = [input_layer]
    previous = "input_1"
    for layer in layers:
        entry: dict[str, Any] = {
            "class_name": layer.kind,
            "name": layer.name,
            "config": {"name": layer.name, **layer.config},
        }
        if keras3:
            entry["module"] = "keras.layers"
        sources = layer.inbound or [previous]
        if keras3:
            tensors = [
                {
                    "class_name": "__keras_tensor__",
                    "config": {"shape": [], "dtype": "float32", "keras_history": [s, 0, 0]},
                }
                for s in sources
            ]
            entry["inbound_nodes"] = [{"args": [tensors if len(tensors) > 1 else tensors[0]], "kwargs": {}}]
        else:
            entry["inbound_nodes"] = [[[s, 0, 0, {}] for s in sources]]
        entries.append(entry)
        previous = layer.name
    config = {
        "name": "model",
        "layers": entries,
        "input_layers": [["input_1", 0, 0]],
        "output_layers": [[previous, 0, 0]],
    }
    return {"class_name": "Functional", "config": config, "keras_version": "3.5.0" if keras3 else "2.13.1"}


def _write_weights_k2(group: Any, layers: list[Layer]) -> None:
    names = ["input_1", *(layer.name for layer in layers)]
    group.attrs["layer_names"] = [n.encode() for n in names]
    group.create_group("input_1").attrs["weight_names"] = []
    for layer in layers:
        g = group.create_group(layer.name)
        g.attrs["weight_names"] = [f"{layer.name}/{n}:0".encode() for n, _ in layer.weights]
        for n, array in layer.weights:
            g.create_dataset(f"{layer.name}/{n}:0", data=np.asarray(array, dtype=np.float32))


def sequential_config(layers: list[Layer], input_shape: tuple[int, ...]) -> dict[str, Any]:
    """A Keras 2 Sequential ``model.to_json()``: layers in order, the input shape on the first."""
    entries = [{"class_name": layer.kind, "config": {"name": layer.name, **layer.config}} for layer in layers]
    entries[0]["config"]["batch_input_shape"] = [None, *input_shape]
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": entries}}


def write_h5(path: Path, layers: list[Layer], input_shape: tuple[int, ...], sequential: bool = False) -> Path:
    config = sequential_config(layers, input_shape) if sequential else model_config(layers, input_shape)
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.13.1"
        _write_weights_k2(f.create_group("model_weights"), layers)
    return path


def write_split(folder: Path, layers: list[Layer], input_shape: tuple[int, ...]) -> tuple[Path, Path]:
    arch, weights = folder / "model.json", folder / "model_weights.h5"
    arch.write_text(json.dumps(model_config(layers, input_shape)))
    with h5py.File(weights, "w") as f:
        _write_weights_k2(f, layers)
    return arch, weights


def write_keras3(path: Path, layers: list[Layer], input_shape: tuple[int, ...]) -> Path:
    buffer = io.BytesIO()
    seen: dict[str, int] = {"input_layer": 1}
    with h5py.File(buffer, "w") as f:
        root = f.create_group("layers")
        for layer in layers:  # Keras 3 names the groups by class, not by layer name: conv2d, conv2d_1, ...
            base = re.sub(
                "([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", layer.kind)
            ).lower()
            count = seen.get(base, 0)
            seen[base] = count + 1
            variables = root.create_group(base if count == 0 else f"{base}_{count}").create_group("vars")
            for i, (_, array) in enumerate(layer.weights):
                variables.create_dataset(str(i), data=np.asarray(array, dtype=np.float32))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(model_config(layers, input_shape, keras3=True)))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.writestr("model.weights.h5", buffer.getvalue())
    return path


def quantizer(name: str, **config: Any) -> dict[str, Any]:
    """A quantizer as QKeras serializes it in a layer config."""
    return {"class_name": name, "config": config}
