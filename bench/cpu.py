"""CPU seconds spent by a process tree: the server's, or PostgreSQL's, whose backends come and
go (a backend that has exited is counted in its postmaster's reaped children's times)."""

from __future__ import annotations

import asyncpg
import psutil


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


async def postmaster(database_url: str) -> psutil.Process:
    """The PostgreSQL server behind `database_url`, which must run on this machine: the
    parent of a backend."""
    conn = await asyncpg.connect(database_url)
    try:
        # Asked while the backend lives: it exits with the connection.
        parent = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
    finally:
        await conn.close()
    if parent is None:
        raise RuntimeError("PostgreSQL's backend has no parent process on this machine")
    return parent
