"""`tasks-api serve --workers N`: each worker accepts on a listening socket of its own, so
connections opened together spread over the workers; the supervisor holds the address but
takes none, and a port already in use is refused before any worker starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.fault.served_api import STARTUP_SECONDS, ServedApi

WORKERS = 2
CONNECTIONS = 40
# uvicorn's exit status for a server that could not start.
STARTUP_FAILURE = 3


def tcp_sockets(pid: int, port: int, status: str) -> int:
    return sum(
        1
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.laddr and connection.laddr.port == port and connection.status == status
    )


def workers_of(server: ServedApi) -> list[int]:
    """The serving workers: the children that listen on the server's port."""
    assert server.process is not None
    children = psutil.Process(server.process.pid).children()
    return [child.pid for child in children if tcp_sockets(child.pid, server.port, "LISTEN")]


def every_worker_listening(server: ServedApi) -> list[int]:
    """The workers, once all of them listen: the first may serve before the others have
    started their app."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while len(workers := workers_of(server)) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    return workers


def test_each_worker_listens_on_a_socket_of_its_own(fresh_database: str, tmp_path: Path) -> None:
    with ServedApi(fresh_database, tmp_path / "serve.log", workers=WORKERS) as server:
        assert server.process is not None
        workers = every_worker_listening(server)
        assert len(workers) == WORKERS
        assert [tcp_sockets(pid, server.port, "LISTEN") for pid in workers] == [1] * WORKERS
        assert tcp_sockets(server.process.pid, server.port, "LISTEN") == 0


def test_connections_opened_together_spread_over_the_workers(
    fresh_database: str, tmp_path: Path
) -> None:
    with ServedApi(fresh_database, tmp_path / "serve.log", workers=WORKERS) as server:
        assert len(every_worker_listening(server)) == WORKERS
        opened = [
            socket.create_connection(("127.0.0.1", server.port), timeout=STARTUP_SECONDS)
            for _ in range(CONNECTIONS)
        ]
        try:
            for connection in opened:
                connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            # Each answered, so each accepted by a worker, and all of them still open.
            assert all(connection.recv(64).startswith(b"HTTP/1.1 200") for connection in opened)
            held = [tcp_sockets(pid, server.port, "ESTABLISHED") for pid in workers_of(server)]
        finally:
            for connection in opened:
                connection.close()
        assert sum(held) == CONNECTIONS
        # Hashed over two workers, all forty on one would happen once in 2^39 runs.
        assert min(held) > 0


def test_a_port_in_use_is_refused(fresh_database: str, tmp_path: Path) -> None:
    with ServedApi(fresh_database, tmp_path / "serve.log", workers=WORKERS) as server:
        second = subprocess.run(
            [
                str(Path(sys.executable).with_name("tasks-api")),
                *("serve", "--port", str(server.port), "--workers", str(WORKERS)),
            ],
            env={**os.environ, "DATABASE_URL": fresh_database, "TASKS_RUN_PROJECTIONS": "false"},
            capture_output=True,
            text=True,
            timeout=STARTUP_SECONDS,
            check=False,
        )
        assert second.returncode == STARTUP_FAILURE
        assert "Address already in use" in second.stdout + second.stderr
        assert workers_of(server), "the first server serves on"
