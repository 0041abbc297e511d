"""Termination signals as Ctrl-C: a batch stopped by ``kill`` (SIGTERM) or a closed terminal (SIGHUP)
writes its tables and stops its workers, as after Ctrl-C; workers that die with their parent; and a
time limit per sequence (SIGALRM), so that one sequence that never ends cannot hold a batch."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = [
    "SEQUENCE_TIME_LIMIT_S", "Terminated", "TimeLimitExceeded", "terminate_as_interrupt", "die_with_parent", "time_limit",
]

#: Default wall time (s) one sequence may take in a batch or a service job before it is stopped: a
#: sequence takes seconds; this bounds one that would not end.
SEQUENCE_TIME_LIMIT_S = 600.0


class Terminated(KeyboardInterrupt):
    """The batch received SIGTERM or SIGHUP: stop now (running workers are killed, not waited for)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class TimeLimitExceeded(Exception):
    """A sequence ran past the batch's time limit (``time_limit``)."""


@contextlib.contextmanager
def time_limit(seconds: float | None, fix: str = "rerun it alone or with a larger --time-limit") -> Iterator[None]:
    """Within the block, raise :class:`TimeLimitExceeded` once ``seconds`` of wall time have passed
    (its message: "still running after S s: stopped; " and ``fix``).

    Works where SIGALRM exists and in a process's main thread (pool workers, the inline batch); elsewhere
    (Dask worker threads, Windows) and for ``seconds`` None or <= 0 the block runs unlimited. A long C
    call (a convolution, a distance transform) finishes before the exception is raised.
    """
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not seconds or seconds <= 0 or not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeLimitExceeded(f"still running after {seconds:g} s: stopped; {fix}")

    saved = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, saved)


def _raise(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread."""
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {name: signal.signal(getattr(signal, name), _raise) for name in names}
    try:
        yield
    finally:
        for name, handler in saved.items():
            signal.signal(getattr(signal, name), handler)


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent ends (a worker of a killed batch ends too)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not glibc: workers are still stopped by the parent's handlers
        return
    import multiprocessing
    import os

    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the parent died before the line above
        os._exit(1)
