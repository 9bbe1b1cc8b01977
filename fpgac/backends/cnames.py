"""Model names -> unique, harmless C identifiers and comment text.

Names in an ONNX file are arbitrary strings (``/features/Conv_output_0``, or a hostile ``x"; system("…")``).
Nothing from the model reaches generated C++ or Tcl except through :class:`CNames` (identifiers) and
:func:`comment_text` (inside ``//`` comments), so no name can inject code.
"""

from __future__ import annotations

import re

_CPP_KEYWORDS = frozenset(
    [
        "alignas",
        "alignof",
        "and",
        "and_eq",
        "asm",
        "auto",
        "bitand",
        "bitor",
        "bool",
        "break",
        "case",
        "catch",
        "char",
        "char16_t",
        "char32_t",
        "class",
        "compl",
        "const",
        "constexpr",
        "const_cast",
        "continue",
        "decltype",
        "default",
        "delete",
        "do",
        "double",
        "dynamic_cast",
        "else",
        "enum",
        "explicit",
        "export",
        "extern",
        "false",
        "float",
        "for",
        "friend",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "mutable",
        "namespace",
        "new",
        "noexcept",
        "not",
        "not_eq",
        "nullptr",
        "operator",
        "or",
        "or_eq",
        "private",
        "protected",
        "public",
        "register",
        "reinterpret_cast",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "static_assert",
        "static_cast",
        "struct",
        "switch",
        "template",
        "this",
        "thread_local",
        "throw",
        "true",
        "try",
        "typedef",
        "typeid",
        "typename",
        "union",
        "unsigned",
        "using",
        "virtual",
        "void",
        "volatile",
        "wchar_t",
        "while",
        "xor",
        "xor_eq",
        "main",
        "std",
    ]
)
# Prefixes of names the generated code or its libraries define (ap_fixed, hls::stream, fpgac kernels).
_RESERVED_PREFIXES = ("ap_", "AP_", "hls", "fpgac", "ssdm", "_")
_MAX_LEN = 64


class CNames:
    """Hands out unique C identifiers, each claiming a family of derived names (``conv1``, ``conv1_out_t``…).

    A name is accepted only if none of its derived names was claimed before, so ``conv1_weight_t`` of
    layer ``conv1`` can never clash with a layer that is itself called ``conv1_weight``.
    """

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self._taken: set[str] = set(reserved)

    def claim(self, name: str, suffixes: tuple[str, ...] = ("",)) -> str:
        base = c_identifier(name)
        candidate, k = base, 2
        while any(candidate + s in self._taken for s in ("", *suffixes)):
            candidate, k = f"{base}_{k}", k + 1
        self._taken.update(candidate + s for s in ("", *suffixes))
        return candidate


def c_identifier(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_]`` replaced; legal, unreserved, at most 64 long."""
    text = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    text = re.sub(r"__+", "_", text)[:_MAX_LEN].rstrip("_") or "v"
    if text[0].isdigit():
        text = "n" + text
    if text in _CPP_KEYWORDS or text.startswith(_RESERVED_PREFIXES):
        text = "m_" + text
    return text


def comment_text(text: str) -> str:
    """``text`` safe inside a ``//`` comment: printable ASCII, no backslash (a line continuation)."""
    cleaned = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in text)
    return cleaned[:200]
