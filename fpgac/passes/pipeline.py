"""The pass manager: an explicit ordered list of pass instances, run with a verify after each.

The build's pipeline is, in this order: :data:`CLEANUPS` (what every model gets after the frontend), the
user's ``--passes``, and ``quantize`` unless they named it (:func:`user_calls`); ``report.json`` lists
it. A backend's lowering (hls4ml's) runs through :func:`run_pipeline` too, so its output is verified.

``--passes "lowrank(macs=0.3), reap(keep=0.5)"`` becomes pass objects here: each option is checked
against the pass dataclass's fields and converted to the field's type, so a misspelt option fails
before any work is done. Passes that need calibration data declare a ``calib`` field and receive the
batch from the build, never from a global; ``finetune`` declares ``teacher`` and receives the original
float graph the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from fpgac.errors import FpgacError, Refusal
from fpgac.ir import Graph, verify
from fpgac.passes import PASSES, Pass
from fpgac.passes.cleanup import Cleanup
from fpgac.passes.fold_affine import FoldAffine
from fpgac.passes.output_names import OutputNames
from fpgac.passes.sign_threshold import SignThreshold
from fpgac.passes.spec import PassCall, PassSpecError, parse_pass_spec

log = logging.getLogger(__name__)


class PassFailure(FpgacError):
    """A pass failed; the message names the pass, the passes before it and (usually) the node."""


# Run on every model before the user's passes: lowering leaves dead nodes and identity reshapes behind
# (cleanup) and BatchNorm or scale-and-shift affines that fold into the layer before them (fold_affine), or,
# before a bipolar sign, into its integer threshold (sign_threshold); they may take the model's names from
# the graph outputs, which output_names gives back.
CLEANUPS: tuple[Pass, ...] = (Cleanup(), FoldAffine(), SignThreshold(), OutputNames())
# Every build ends quantized: the pass is implied last when --passes does not name it.
IMPLIED_LAST = "quantize"
# Passes that work on the quantized graph (the OOD monitor sets its threshold on the hardware's own
# scores): an implied quantize goes before the first of them instead.
AFTER_QUANTIZE = ("ood",)
# Pass fields the build fills in (the calibration batch, the original float graph), never options.
_GIVEN = ("calib", "teacher")


def user_calls(spec: str) -> list[PassCall]:
    """The user's part of the pipeline: ``spec`` (``--passes``) parsed, with ``quantize`` implied last (or
    before the first pass of :data:`AFTER_QUANTIZE`)."""
    calls = parse_pass_spec(spec)
    names = [c.name for c in calls]
    if IMPLIED_LAST not in names:
        later = [i for i, name in enumerate(names) if name in AFTER_QUANTIZE]
        calls.insert(later[0] if later else len(calls), PassCall(IMPLIED_LAST, {}))
    return calls


def _convert(pass_name: str, key: str, value: object, hint: object) -> object:
    """Coerce a spec value (number, bool or word) to the field's annotated type."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    for kind in typing.get_args(hint) if union else (hint,):
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    expected = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    raise PassSpecError(f"--passes: option {key}={value!r} of {pass_name!r} must be {expected}")


def make_pass(call: PassCall, calib: Sequence[np.ndarray] | None, defaults: Mapping[str, Any]) -> Pass:
    """Instantiate one pass from a spec call, with build-wide ``defaults`` for fields it has."""
    cls = PASSES.get(call.name)
    if cls is None:
        raise PassSpecError(
            f"--passes: unknown pass {call.name!r}; known passes: {', '.join(sorted(PASSES))}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {k: v for k, v in defaults.items() if k in fields}
    for key, value in call.options.items():
        if key not in fields or key in _GIVEN:
            options = ", ".join(sorted(k for k in fields if k not in _GIVEN)) or "none"
            raise PassSpecError(f"--passes: pass {call.name!r} has no option {key!r}; its options: {options}")
        kwargs[key] = _convert(call.name, key, value, hints[key])
    if "calib" in fields and calib is not None:
        kwargs["calib"] = tuple(calib)
    return cls(**kwargs)


def run_pipeline(
    graph: Graph,
    passes: Sequence[Pass],
    step: Callable[[str], AbstractContextManager[None]] | None = None,
    on_pass: Callable[[str, Graph], None] | None = None,
) -> Graph:
    """Run passes in order on ``graph``, verifying after each; failures name the pass and its history.

    ``step(description)``, when given, is entered around each pass (the build's progress display);
    ``on_pass(name, graph)`` sees the graph after each pass (the build measures fidelity there).
    """
    done: list[str] = []
    for p in passes:
        name = p.name
        try:
            with step(f"pass {name}") if step else contextlib.nullcontext():
                graph = p.run(graph)
                verify(graph)
        except Refusal:
            raise  # its message already names the target, node and reason in full
        except FpgacError as exc:
            after = f" after [{', '.join(done)}]" if done else ""
            message = str(exc)
            prefix = f"{name} failed"
            raise PassFailure(
                message if message.startswith(prefix) else f"{prefix}{after}: {message}"
            ) from exc
        log.info("pass %s done", name)
        done.append(name)
        if on_pass is not None:
            on_pass(name, graph)
    return graph
