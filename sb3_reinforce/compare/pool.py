"""
Worker processes that die with the process that started them, even when that one is SIGKILLed (which leaves no
chance to shut a pool down): ``PR_SET_PDEATHSIG`` on Linux, and a thread polling ``os.getppid()`` everywhere (a
dead parent reparents the worker). SIGTERM to the parent kills the workers, then exits with status 143.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

__all__ = ["remote_runner", "run_in_workers"]

#: While set, run_in_workers hands its jobs to it instead (``--ray-address``: compare/ray_backend.py)
remote_runner: contextvars.ContextVar[Callable[..., None] | None] = contextvars.ContextVar("remote_runner", default=None)


def _kill_self() -> None:
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)


def _watch_parent(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            _kill_self()


def _init_worker(parent_pid: int) -> None:
    """Worker initializer: the worker dies with ``parent_pid`` (death signal on Linux, and a watching thread)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (copied by fork)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        _kill_self()  # the parent died before the death signal was set
    threading.Thread(target=_watch_parent, args=(parent_pid, 0.5), name="watch-parent", daemon=True).start()


@contextlib.contextmanager
def _stop_workers_on_sigterm() -> Iterator[None]:
    """While active (main thread only), SIGTERM kills this process's children, then exits with status 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        # No pool.shutdown() here: the main thread may be inside submit(), holding the pool's lock
        for child in multiprocessing.active_children():
            child.kill()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_in_workers(
    function: Callable[..., Any],
    jobs: Sequence[dict[str, Any]],
    n_jobs: int,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_done: Callable[[dict[str, Any], Any], None] | None = None,
) -> None:
    """
    Call ``function(**job)`` for every job: in this process when ``n_jobs`` <= 1, else in ``n_jobs`` worker
    processes that die with this one. A job's error is raised here once the pool has shut down (the other jobs
    run to their end).

    :param function: a module-level function (the workers are spawned: it is imported there by name)
    :param jobs: keyword arguments of each call (picklable)
    :param n_jobs: number of worker processes
    :param on_start: called with a job before it runs in this process (``n_jobs`` <= 1 only)
    :param on_done: called with a job and its result once it has finished
    """
    runner = remote_runner.get()
    if runner is not None:  # --ray-address: every job is a Ray task (compare/ray_backend.py)
        runner(function, jobs, on_start=on_start, on_done=on_done)
        return
    if n_jobs <= 1:
        for job in jobs:
            if on_start is not None:
                on_start(job)
            result = function(**job)
            if on_done is not None:
                on_done(job, result)
        return
    # spawn: workers are children of this process (their parent-death checks rely on it) and do not inherit
    # this process's threads (a progress bar's) in the middle of a lock
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),))
    with pool, _stop_workers_on_sigterm():
        futures: dict[Future, dict[str, Any]] = {pool.submit(function, **job): job for job in jobs}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                if on_done is not None:
                    on_done(futures[future], result)
