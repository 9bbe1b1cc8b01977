"""kept_heap: freed blocks stay in glibc's heap while a simulation runs, and the settings are scoped."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from fpgac.interp import heap

glibc = pytest.mark.skipif(heap._glibc() is None, reason="mallopt/malloc_trim are glibc's")


def _faults_of_temporaries(count: int, nbytes: int) -> int:
    """Page faults taken by ``count`` arrays of ``nbytes`` allocated, written and freed in turn."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(count):
        np.ones(nbytes // 8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_freed_blocks_are_reused_not_refaulted() -> None:
    """20 temporaries of 4 MB (1,024 pages each) fault their pages about once in all, not 20 times."""
    with heap.kept_heap():
        _faults_of_temporaries(1, 4 << 20)  # the heap grows once
        faults = _faults_of_temporaries(20, 4 << 20)
    assert faults < 1024


def test_nested_entries_set_and_reset_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(heap, "_set", lambda mmap, trim: calls.append((mmap, trim)))
    with heap.kept_heap():
        with heap.kept_heap():
            assert calls == [(heap.KEPT_MMAP_THRESHOLD, heap.KEPT_TRIM_THRESHOLD)]
        assert len(calls) == 1
    assert calls[1] == (heap._DEFAULT_THRESHOLD, heap._DEFAULT_THRESHOLD)
    with pytest.raises(RuntimeError), heap.kept_heap():  # an exception still resets them
        raise RuntimeError
    assert len(calls) == 4 and heap._depth == 0
