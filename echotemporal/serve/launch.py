"""Run ``echotemporal serve`` as a child process on a free loopback port, and wait until it answers.

For whoever drives a real server from Python (the service benchmark, the browser test, a pipeline's
own tests): one way to pick the port, start the process and wait for ``/healthz``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = ["ServerStartError", "free_port", "spawn_server"]


class ServerStartError(RuntimeError):
    """The server process ended, or did not answer ``/healthz`` in time (it is stopped)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def spawn_server(
    options: Sequence[str],
    *,
    env: Mapping[str, str],
    log: IO[bytes],
    cwd: str | Path | None = None,
    timeout_s: float = 60.0,
    poll_s: float = 0.1,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m echotemporal.cli serve --port PORT *options`` and wait until ``/healthz`` is 200.

    Args:
        options: further ``serve`` options (``--workers``, ``--method``, ...); not ``--port``/``--host``.
        env: the process's environment (e.g. its own ``TMPDIR``, ``PYTHONPATH``).
        log: binary file for the process's stdout and stderr.
        cwd: the process's working folder.
        timeout_s: how long to wait for the first healthy answer, seconds.
        poll_s: pause between two health checks, seconds.

    Returns:
        (the process, its base URL ``http://127.0.0.1:PORT``).

    Raises:
        ServerStartError: the process ended, or no healthy answer within ``timeout_s`` (the process
            is then terminated); its output is in ``log``.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "echotemporal.cli", "serve", "--port", str(port), *options],
        cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return process, url
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None:
            raise ServerStartError(f"the server process ended with exit code {process.returncode} before answering")
        if time.monotonic() > end:
            process.terminate()
            process.wait(timeout=30)
            raise ServerStartError(f"the server did not answer {url}/healthz within {timeout_s:.0f} s")
        time.sleep(poll_s)
