"""The exception every user-facing failure derives from.

The CLI turns an :class:`FpgacError` into one line on stderr and exit code 1, so
messages must carry their own context: the file, the node and the op.
"""

from __future__ import annotations


class FpgacError(Exception):
    """A failure the user can act on (bad model, bad option, bad input)."""


class Refusal(FpgacError):
    """The model asks for something a target cannot do (an op hls4ml has no layer for).

    Its message is complete (target, node, op, reason), so the pass pipeline passes it on as raised
    instead of wrapping it as a failure of the pass that found it.
    """
