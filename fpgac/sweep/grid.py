"""The design points of a sweep: every combination of a few build settings, or a seeded random draw of them.

A sweep file is TOML; each list is an axis and a point takes one value from each::

    sample = "grid"          # or "random": `points` combinations drawn without replacement (seeded)
    points = 24
    seed = 0
    precision = [6, 8, 12, 16]                   # --precision
    passes = ["", "prune(sparsity=0.5)"]         # --passes (quantize implied last)
    io = ["auto"]                                # --io
    reuse = ["auto", 1, 4]                       # --reuse; "auto": fitted to the board
    weights = ["auto"]                           # --weights
    [layers."fc1"]
    precision = [4, 8]                           # that layer's precision (as `precision` in --config)
    reuse = [1, 8]

Axes not given keep the sweep's build options (``--board``, ``--util``, ...). Without a file the sweep runs
:data:`DEFAULT_AXES`: precision against the three compression families, the trade-off a first look at a
model needs (24 points).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fpgac.build import BuildOptions
from fpgac.errors import FpgacError


class SweepFileError(FpgacError):
    """A sweep file that cannot be read or names settings a point cannot take."""


# Global axes in the order a point lists them, and the types each value may have.
GLOBAL_AXES: dict[str, tuple[type, ...]] = {
    "precision": (int,),
    "passes": (str,),
    "io": (str,),
    "reuse": (int, str),
    "weights": (str,),
}
LAYER_AXES: dict[str, tuple[type, ...]] = {"precision": (int,), "reuse": (int, str)}
AUTO = "auto"

DEFAULT_AXES: dict[str, list[Any]] = {
    "precision": [4, 6, 8, 10, 12, 16],
    "passes": ["", "prune(sparsity=0.5)", "share(bits=4)", "lowrank(params=0.5)"],
}


@dataclass(frozen=True)
class Point:
    """One design: its index in the sweep and the settings it takes, as ``{axis: value}``.

    Per-layer axes are named ``layers.NAME.KEY``. ``settings`` is what the table shows and what
    ``fpgac build --from-sweep`` rebuilds from (with the sweep's base options).
    """

    index: int
    settings: Mapping[str, Any]

    def options(self, base: BuildOptions) -> BuildOptions:
        """The build options of this point: ``base`` with its settings applied."""
        changes: dict[str, Any] = {}
        layer_precision, layer_reuse = dict(base.layer_precision), dict(base.layer_reuse)
        for axis, value in self.settings.items():
            if axis.startswith("layers."):
                layer, key = axis[len("layers.") :].rsplit(".", 1)
                if key == "precision":
                    layer_precision[layer] = value
                elif value != AUTO:
                    layer_reuse[layer] = value
            elif axis == "reuse":
                changes["reuse"] = None if value == AUTO else value
            else:
                changes[axis] = value
        return replace(base, **changes, layer_precision=layer_precision, layer_reuse=layer_reuse)


def load_axes(path: Path | None) -> tuple[dict[str, list[Any]], str, int, int]:
    """The axes of a sweep file (``{axis: values}``), its sampling (``grid``/``random``), points and seed."""
    if path is None:
        return dict(DEFAULT_AXES), "grid", 0, 0
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SweepFileError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SweepFileError(f"{path}: not valid TOML ({exc})") from None
    sample = data.pop("sample", "grid")
    points, seed = data.pop("points", 0), data.pop("seed", 0)
    if sample not in ("grid", "random"):
        raise SweepFileError(f'{path}: sample must be "grid" or "random", not {sample!r}')
    if sample == "random" and (not isinstance(points, int) or isinstance(points, bool) or points < 1):
        raise SweepFileError(f'{path}: sample = "random" needs points = N (a positive integer)')
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SweepFileError(f"{path}: seed must be an integer, not {seed!r}")
    axes: dict[str, list[Any]] = {}
    layers = data.pop("layers", {})
    unknown = set(data) - set(GLOBAL_AXES)
    if unknown:
        raise SweepFileError(
            f"{path}: unknown settings {sorted(unknown)}; a sweep varies {', '.join(GLOBAL_AXES)} "
            "and [layers.NAME] precision, reuse"
        )
    for axis in GLOBAL_AXES:
        if axis in data:
            axes[axis] = _values(path, axis, data[axis], GLOBAL_AXES[axis])
    if not isinstance(layers, dict):
        raise SweepFileError(f"{path}: layers must be tables [layers.NAME]")
    for layer, settings in layers.items():
        if not isinstance(settings, dict) or set(settings) - set(LAYER_AXES):
            raise SweepFileError(f"{path}: [layers.{layer!r}] takes only precision and reuse lists")
        for key, values in settings.items():
            axes[f"layers.{layer}.{key}"] = _values(path, f"{layer}.{key}", values, LAYER_AXES[key])
    if not axes:
        raise SweepFileError(f"{path}: no axis to sweep; give lists such as precision = [8, 16]")
    return axes, sample, points, seed


def _values(path: Path, axis: str, values: object, kinds: tuple[type, ...]) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise SweepFileError(f"{path}: {axis} must be a non-empty list of values")
    for value in values:
        ok = isinstance(value, kinds) and not isinstance(value, bool)
        if not ok or (isinstance(value, str) and kinds == (int, str) and value != AUTO):
            raise SweepFileError(f"{path}: {axis} value {value!r} is not allowed here")
    return list(values)


def make_points(axes: Mapping[str, Sequence[Any]], sample: str, points: int, seed: int) -> list[Point]:
    """The sweep's points in a fixed order: the grid row by row (last axis fastest), or a seeded draw.

    The random draw picks indices of that same grid without replacement, so a point's settings do not depend
    on how many others were drawn before it was decoded, and a grid never has to be listed in full.
    """
    names = list(axes)
    sizes = [len(axes[n]) for n in names]
    total = int(np.prod(sizes, dtype=object))
    if sample == "grid":
        chosen: Sequence[int] = range(total)
    else:
        rng = np.random.default_rng(seed)
        count = min(points, total)
        chosen = sorted(_draw(rng, total, count))
    out = []
    for k, flat in enumerate(chosen):
        settings = {}
        for name, size in zip(reversed(names), reversed(sizes), strict=True):
            flat, digit = divmod(flat, size)
            settings[name] = axes[name][digit]
        out.append(Point(k, {n: settings[n] for n in names}))
    return out


def _draw(rng: np.random.Generator, total: int, count: int) -> list[int]:
    """``count`` distinct integers below ``total`` (which may exceed 64 bits for many per-layer axes)."""
    if total < 2**62:
        return [int(i) for i in rng.choice(total, size=count, replace=False)]
    seen: set[int] = set()
    while len(seen) < count:
        seen.add(int.from_bytes(rng.bytes(16)) % total)
    return list(seen)


def check_layers(axes: Mapping[str, Sequence[Any]], layers: Sequence[str], path: Path | None) -> None:
    """Every ``[layers.NAME]`` of the sweep file names a layer of the model (a typo would sweep nothing)."""
    for axis in axes:
        if axis.startswith("layers."):
            layer = axis[len("layers.") :].rsplit(".", 1)[0]
            if layer not in layers:
                raise SweepFileError(
                    f"{path}: layer {layer!r} is not in the model; its layers: {', '.join(layers)}"
                )
