"""glibc's heap kept for the duration of a simulation, so a chunk's temporaries are not re-faulted each time.

A chunk of the simulator allocates and frees the same few arrays of a few MB each (an im2col matrix, a
layer's products), once per node and chunk. Under glibc's defaults such an array is either ``mmap``-ed
(above ``M_MMAP_THRESHOLD``) or carved from the heap's top, which ``free`` hands back to the kernel once
more than ``M_TRIM_THRESHOLD`` lies free there; either way the next chunk touches fresh pages, and every
page costs a fault and a zeroing. On the digits CNN (20,000 samples) that was 45,000 page faults and 40%
of a first in-process run's CPU time. :func:`kept_heap` raises both thresholds for its duration, so
freed blocks stay in the heap and are reused, then puts glibc's documented defaults back and returns
the free heap to the kernel (``malloc_trim``): resident memory still peaks at what the run has live,
plus what fragmentation keeps.

The settings are process-wide, hence scoped and nested (only the outermost entry sets and resets them;
a lock makes concurrent simulations in threads share one setting). glibc has no way to read them back,
and any ``mallopt`` turns off its dynamic threshold (which grows ``M_MMAP_THRESHOLD`` to the size of the
largest mmapped block freed so far): after a simulation the process runs with the fixed defaults, as it
does before its first large free. On other C libraries (macOS, musl: no ``malloc_trim``) nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_DEFAULT_THRESHOLD = 128 << 10  # both thresholds' defaults (mallopt(3))
# The largest mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2): blocks below it come from the
# heap. A chunk's largest arrays are a few times CHUNK_BYTES (2 MB), well below.
KEPT_MMAP_THRESHOLD = 32 << 20
# Free heap kept at the top while simulating: the live set of a chunk is a few times 2 MB.
KEPT_TRIM_THRESHOLD = 256 << 20

_lock = threading.Lock()
_depth = 0


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _set(mmap_threshold: int, trim_threshold: int) -> None:
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)


@contextlib.contextmanager
def kept_heap() -> Iterator[None]:
    """Freed memory stays in glibc's heap for the duration; see the module docstring."""
    global _depth
    with _lock:
        if _depth == 0:
            _set(KEPT_MMAP_THRESHOLD, KEPT_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(_DEFAULT_THRESHOLD, _DEFAULT_THRESHOLD)
                libc = _glibc()
                if libc is not None:
                    libc.malloc_trim(0)
