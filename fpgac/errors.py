"""The exception every user-facing failure derives from.

The CLI turns an :class:`FpgacError` into one line on stderr and exit code 1, so
messages must carry their own context: the file, the node and the op.
"""

from __future__ import annotations


class FpgacError(Exception):
    """A failure the user can act on (bad model, bad option, bad input)."""
