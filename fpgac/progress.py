"""What a long ``fpgac build`` is doing, shown on a terminal: one line per step, with its time.

A build of an ImageNet model runs for tens of seconds through loading, each pass, calibration, code
generation and writing; without a sign of life it looks hung. :func:`shown` turns the display on around
a command, and the build marks its steps with :func:`step`, which does nothing when no display is on.
The display only ever appears when both stdout and stderr are terminals, so tests, CI logs and pipes see
exactly the output they would without it. rich (a dependency already) draws it, on stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

_current: ContextVar[Progress | None] = ContextVar("fpgac_progress", default=None)


@contextlib.contextmanager
def shown() -> Iterator[None]:
    """Show the steps of what runs inside, if stdout and stderr are both terminals."""
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield
        return
    columns = (
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),  # a bar for counted work; a pulse for a step of unknown length
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as display:
        token = _current.set(display)
        try:
            yield
        finally:
            _current.reset(token)


@contextlib.contextmanager
def step(description: str) -> Iterator[None]:
    """One step of the running command: a spinner while it runs, a tick and its time when done."""
    display = _current.get()
    if display is None:
        yield
        return
    task = display.add_task(description, total=None)
    yield
    display.update(task, total=1, completed=1)
    display.stop_task(task)


@contextlib.contextmanager
def counted(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A step made of ``total`` pieces of work (a sweep's points), its count shown as they finish; yields
    the call that marks one done. Like :func:`step`, it shows only inside :func:`shown` on a terminal."""
    display = _current.get()
    if display is None:
        yield lambda: None
        return
    task = display.add_task(f"{description} 0/{total}", total=max(total, 1))
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        display.update(task, description=f"{description} {done}/{total}", completed=done)

    yield advance
    display.update(task, completed=max(total, 1))
    display.stop_task(task)
