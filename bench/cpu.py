"""CPU seconds spent by a process tree: the server's, or PostgreSQL's, whose backends come and
go (a backend that has exited is counted in its postmaster's reaped children's times); and
what a load cost in CPU, per wall second, in its generator, the servers and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import psutil

from bench.database import connect


class Measured(Protocol):
    def cpu_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds per wall second (1.0 is one core) of a load's generator (wrk, the paced
    generator, or this process's own client), of the servers and of PostgreSQL."""

    wall_seconds: float
    generator: float
    servers: float
    postgres: float


def tree_cpu_seconds(root: psutil.Process) -> float:
    total = 0.0
    try:
        own = root.cpu_times()
        total += own.user + own.system + own.children_user + own.children_system
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return total
    for child in children:
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


class Postgres:
    """The PostgreSQL servers a load reaches, each by its postmaster: one, or over cells the
    home (which counts the rate limits) and the tenant's cell, servers apart."""

    def __init__(self, *postmasters: psutil.Process) -> None:
        self.postmasters = postmasters

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(postmaster) for postmaster in self.postmasters)


class Meter:
    """What a load costs in CPU per wall second, from its start (this meter's making) to
    `usage`, given its generator's CPU seconds."""

    def __init__(self, servers: Sequence[Measured], postgres: Postgres) -> None:
        self._servers = servers
        self._postgres = postgres
        self._servers_before = sum(server.cpu_seconds() for server in servers)
        self._postgres_before = postgres.cpu_seconds()
        self._started = time.monotonic()

    def usage(self, generator_cpu_seconds: float) -> Usage:
        wall = time.monotonic() - self._started
        servers = sum(server.cpu_seconds() for server in self._servers) - self._servers_before
        postgres = self._postgres.cpu_seconds() - self._postgres_before
        return Usage(wall, generator_cpu_seconds / wall, servers / wall, postgres / wall)


def run_process(command: list[str], env: dict[str, str], what: str) -> tuple[str, float]:
    """Run a load generator in a process of its own to its end: its output, and the CPU
    seconds it used (its own rusage, so the bench's work is not counted)."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed ({process.returncode}):\n{output}")
    return output, usage.ru_utime + usage.ru_stime


def own_cpu_seconds() -> float:
    """This process's CPU seconds, for a load it generates itself (the raw INSERT ceiling)."""
    return time.process_time()


async def postgres_of(database_url: str) -> Postgres:
    """The PostgreSQL server behind `database_url`, which must run on this machine: by the
    parent of a backend."""
    conn = await connect(database_url)
    try:
        # Asked while the backend lives: it exits with the connection.
        parent = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
    finally:
        await conn.close()
    if parent is None:
        raise RuntimeError("PostgreSQL's backend has no parent process on this machine")
    return Postgres(parent)
