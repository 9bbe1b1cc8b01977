"""The pass-pipeline grammar of ``--passes``: ``name(key=value, ...), name, ...``.

Values are numbers, booleans (``true``/``false``) or bare words/quoted strings;
the pass's dataclass field types decide the final conversion, so a typo in an
option name or a value of the wrong kind is an error naming the pass and option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fpgac.errors import FpgacError


class PassSpecError(FpgacError):
    """A ``--passes`` string that does not parse or names unknown passes/options."""


@dataclass(frozen=True)
class PassCall:
    """One ``name(key=value, ...)`` item of a pipeline spec."""

    name: str
    options: dict[str, str | int | float | bool]


_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)|(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<string>\"[^\"]*\"|'[^']*')|(?P<punct>[(),=]))"
)


def _tokens(spec: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    spec = spec.rstrip()
    while pos < len(spec):
        match = _TOKEN.match(spec, pos)
        if not match or match.end() == pos:
            raise PassSpecError(f"--passes {spec!r}: unexpected {spec[pos:].strip()[:10]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _value(kind: str, text: str) -> str | int | float | bool:
    if kind == "number":
        number = float(text)
        return int(text) if re.fullmatch(r"[-+]?\d+", text) else number
    if kind == "string":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_pass_spec(spec: str) -> list[PassCall]:
    """Parse ``spec`` into calls, in order. An empty spec is an empty pipeline."""
    tokens = _tokens(spec)
    calls: list[PassCall] = []
    i = 0

    def error(what: str) -> PassSpecError:
        return PassSpecError(f"--passes {spec!r}: {what}")

    while i < len(tokens):
        kind, text = tokens[i]
        if kind != "name":
            raise error(f"expected a pass name, got {text!r}")
        name = text
        options: dict[str, str | int | float | bool] = {}
        i += 1
        if i < len(tokens) and tokens[i] == ("punct", "("):
            i += 1
            while i < len(tokens) and tokens[i] != ("punct", ")"):
                if options:
                    if tokens[i] != ("punct", ","):
                        raise error(f"expected ',' between the options of {name!r}")
                    i += 1
                if i + 2 >= len(tokens) or tokens[i][0] != "name" or tokens[i + 1] != ("punct", "="):
                    raise error(f"expected key=value in the options of {name!r}")
                key, (value_kind, value_text) = tokens[i][1], tokens[i + 2]
                if value_kind == "punct":
                    raise error(f"option {key!r} of {name!r} has no value")
                if key in options:
                    raise error(f"option {key!r} of {name!r} is given twice")
                options[key] = _value(value_kind, value_text)
                i += 3
            if i >= len(tokens):
                raise error(f"missing ')' after the options of {name!r}")
            i += 1
        calls.append(PassCall(name, options))
        if i < len(tokens):
            if tokens[i] != ("punct", ","):
                raise error(f"expected ',' after {name!r}")
            i += 1
            if i == len(tokens):
                raise error("trailing ','")
    return calls
