"""serve.launch: a server process that cannot start is reported, not waited on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from echotemporal.serve.launch import ServerStartError, free_port, spawn_server

ROOT = Path(__file__).resolve().parents[2]


def test_free_port_can_be_bound():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # raises if something listens there


def test_a_server_that_exits_is_reported_with_its_exit_code(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.monotonic()
    with open(tmp_path / "server.log", "wb") as log, pytest.raises(ServerStartError, match="exit code 2"):
        spawn_server(["--no-such-option"], env=env, log=log, cwd=ROOT, timeout_s=60)
    assert time.monotonic() - start < 30  # reported when the process ends, not after the timeout
    assert "no-such-option" in (tmp_path / "server.log").read_text()
