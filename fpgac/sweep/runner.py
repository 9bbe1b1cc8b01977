"""Run a sweep's points in parallel, on local processes (default) or as Ray tasks, resuming a killed run.

Every point is independent (:func:`~fpgac.sweep.evaluate.evaluate_point`), so they are farmed out whole and
each finished row is written at once (store.py). Local workers, one per ``jobs``, are forked from a
``forkserver`` that has imported fpgac once (a fresh interpreter costs some 2 s of imports per worker; a
fork of the driver would copy its threads and state); Ray tasks take one CPU each, on whatever
cluster ``ray.init`` reaches: the model, calibration and validation files must then be readable at the same
paths on every node (a shared file system), and the validation data travels once through Ray's object store.

Each worker computes with one BLAS thread, as Ray gives a one-CPU task: the compression passes' least
squares and SVDs are then the same floating-point sums wherever a point runs, so a point's results do not
depend on where it ran (the tests compare local and Ray runs bit for bit), and N workers do not fight over
the cores with N thread pools each.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from fpgac.build import BuildOptions
from fpgac.errors import FpgacError
from fpgac.sweep.evaluate import SweepData, evaluate_point
from fpgac.sweep.grid import Point

log = logging.getLogger(__name__)

Row = dict[str, Any]
OnRow = Callable[[Row], None]

# One BLAS/OpenMP thread per worker (see the module docstring); Ray sets the same for one-CPU tasks.
_ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


class SweepRunError(FpgacError):
    """The sweep could not go on (a worker died, Ray cannot be reached); finished points are kept."""


def run_local(
    model: Path, base: BuildOptions, points: Sequence[Point], data: SweepData, jobs: int, on_row: OnRow
) -> None:
    """Run ``points`` on ``jobs`` local worker processes; ``on_row`` gets each row as it finishes."""
    if not points:
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["fpgac.sweep.evaluate"])  # effective when the server first starts
    with _environment(_ONE_THREAD), ProcessPoolExecutor(min(jobs, len(points)), mp_context=context) as pool:
        pending: dict[Future[Row], Point] = {
            pool.submit(evaluate_point, model, base, point, data): point for point in points
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    del pending[future]
                    on_row(future.result())
        except BrokenProcessPool:
            raise SweepRunError(
                "a worker process died (out of memory?); the finished points are kept: rerun the same "
                "command with fewer --jobs to resume"
            ) from None
        finally:
            for future in pending:
                future.cancel()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the workers started inside (the fork server, started with the first
    pool, keeps the environment it started with)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_ray(
    model: Path, base: BuildOptions, points: Sequence[Point], data: SweepData, address: str, on_row: OnRow
) -> None:
    """Run ``points`` as Ray tasks (one CPU each) on the cluster at ``address``.

    ``auto``: Ray's own choice (``RAY_ADDRESS``, or a cluster already running on this machine, else a new
    local one). A Ray session already open in this process (``ray.init`` by the caller) is used as it is.
    """
    try:
        import ray
    except ImportError:
        raise SweepRunError("--ray needs Ray: pip install 'fpgac[ray]'") from None
    if not ray.is_initialized():
        try:
            if address == "auto":
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:  # Ray raises bare Exception when its local node does not start in time
            raise SweepRunError(f"--ray {address}: cannot start or reach Ray ({_one_line(exc)})") from None
    if not points:
        return
    task = ray.remote(num_cpus=1)(evaluate_point)
    shared = ray.put(data)
    pending = {task.remote(model, base, point, shared): point for point in points}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                del pending[ref]
                on_row(ray.get(ref))
    except ray.exceptions.RayError as exc:
        raise SweepRunError(
            f"a Ray task failed ({type(exc).__name__}); the finished points are kept: rerun to resume"
        ) from None
    finally:
        for ref in pending:
            ray.cancel(ref)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
