"""An exclusive lock on a batch's output folder: one batch writes into an OUT at a time.

The lock is an ``fcntl`` lock on ``OUT/.echotemporal-batch.lock``, which also holds the holder's
process id, host and start time for the message a second batch prints. The operating system
releases the lock when its process ends, however it ends: a lock file left by a crashed batch is
stale, and the next batch takes it over (and says so). Where ``fcntl`` does not exist (Windows),
the process id in the file is checked instead.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from echotemporal.core.errors import ConfigError

__all__ = ["LOCK_NAME", "OutputLockedError", "output_lock"]

LOCK_NAME = ".echotemporal-batch.lock"


class OutputLockedError(ConfigError):
    """Another running batch holds the output folder's lock."""


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    if sys.platform == "win32":  # os.kill(pid, 0) would *terminate* it there
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return ctypes.get_last_error() == access_denied
    try:
        code = wintypes.DWORD()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "an unknown process"
    return text or "an unknown process"


def _locked(out: Path, path: Path, holder: str) -> OutputLockedError:
    return OutputLockedError(
        f"{out}: another batch is writing here (lock {path} held by {holder}); wait for it to finish or stop "
        "it, or write to another -o folder"
    )


def _holder_alive(text: str) -> bool:
    """Whether the process named by a lock file's ``pid=N ...`` text still runs (on this host)."""
    first = text.split(" ")[0]
    if not first.startswith("pid="):
        return False
    try:
        return _pid_alive(int(first.removeprefix("pid=")))
    except ValueError:
        return False


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[str | None]:
    """Hold ``out``'s batch lock for the duration; yields a note when a stale lock was taken over.

    Raises:
        OutputLockedError: another live batch holds it (the message names the lock file and holder).
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    stale = path.exists()
    previous = _holder(path) if stale else ""
    handle = open(path, "a+")
    acquired = False
    try:
        try:
            import fcntl
        except ImportError:  # Windows: judge by the process id in the file
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise _locked(out, path, _holder(path)) from None
        elif stale and _holder_alive(previous):
            raise _locked(out, path, previous)
        acquired = True
        started = datetime.datetime.now().isoformat(timespec="seconds")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid={os.getpid()} host={socket.gethostname()} started={started}\n")
        handle.flush()
        yield f"a stale lock ({previous}) left by a batch that is no longer running was taken over" if stale else None
    finally:
        if acquired:
            with contextlib.suppress(OSError):
                path.unlink()
        handle.close()
