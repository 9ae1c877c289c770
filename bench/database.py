"""A throwaway database on the benchmark's server (bench.postgres), migrated and given its
tenants by the real `tasks-api` commands, and dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import msgspec
from sqlalchemy.engine import make_url

from projections.registry import FOLLOWED

# A tenant's requests per minute: far above what the benchmark sends, so the rate limit is
# checked on every request as in production but never refuses one.
RATE_LIMIT = 1_000_000_000
# What a runner applies behind the log: the asynchronous projections and the tenants' log
# digests (the inline projections keep a checkpoint from their last rebuild, which commands
# do not move).
RUNNERS = [follower.name for follower in FOLLOWED]
# How long a load waits for the statements of the one before it to finish.
IDLE_WAIT_SECONDS = 30.0
# How long a load that opens many connections waits for the server to have them.
CONNECTIONS_WAIT_SECONDS = 120.0


class CreatedTenant(msgspec.Struct, rename="camel"):
    tenant_id: str
    api_key: str


async def connect(database_url: str) -> asyncpg.Connection:
    """A connection, waiting a while for one when the server has none to spare: it is
    shared, and its other clients come and go."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECTIONS_WAIT_SECONDS
    while True:
        try:
            return await asyncpg.connect(database_url)
        except asyncpg.TooManyConnectionsError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(1)


def tasks_api() -> str:
    """The `tasks-api` command installed beside this interpreter."""
    return str(Path(sys.executable).with_name("tasks-api"))


def cli(database_url: str, *args: str, settings: dict[str, str] | None = None) -> str:
    """Run `tasks-api ARGS` on the database as an operator would, with these `settings`
    beside (TASKS_CELLS, NATS_URL…); its stdout."""
    env = {**os.environ, "DATABASE_URL": database_url, **(settings or {})}
    done = subprocess.run(
        [tasks_api(), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tasks-api {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def create_tenants(
    database_url: str,
    names: list[str],
    rate_limit: int = RATE_LIMIT,
    cells: str | None = None,
    placement: Mapping[str, str] | None = None,
) -> list[CreatedTenant]:
    """`tasks-api tenant create` for each name, run side by side; over `cells` (TASKS_CELLS),
    each on the cell `placement` names for it."""
    settings = {} if cells is None else {"TASKS_CELLS": cells}

    def create(name: str) -> CreatedTenant:
        cell = () if placement is None else ("--cell", placement[name])
        args = ("tenant", "create", name, "--rate-limit", str(rate_limit), *cell, "--json")
        out = cli(database_url, *args, settings=settings)
        return msgspec.json.decode(out.strip().splitlines()[-1], type=CreatedTenant)

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return list(pool.map(create, names))


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new database on the server at `server_url`, migrated; dropped when the block ends."""
    server = make_url(server_url)
    name = f"tasks_bench_{os.getpid()}"
    admin = server.render_as_string(hide_password=False)
    _run_sql(admin, f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        cli(url, "migrate")
        yield url
    finally:
        _run_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def wait_until_idle(
    database_url: str, within: float = IDLE_WAIT_SECONDS, runners: bool = True
) -> None:
    """Until every projection runner has applied the events of the loads before (unless no
    server runs them: `runners` false) and no statement runs on the database but this one,
    or `within` seconds have passed: what a load left behind is not measured against the
    next."""
    conn = await connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            behind = runners and await conn.fetchval(_BEHIND, RUNNERS)
            if not behind and not await conn.fetchval(_BUSY):
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def wait_for_connections(
    database_url: str, needed: int, within: float = CONNECTIONS_WAIT_SECONDS
) -> None:
    """Until the server has `needed` connections to spare, or `within` seconds have passed:
    it is shared, and its other clients come and go."""
    conn = await connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            if await conn.fetchval(_SPARE) >= needed:
                return
            await asyncio.sleep(1)
    finally:
        await conn.close()


_SPARE = """
    SELECT current_setting('max_connections')::int
        - current_setting('superuser_reserved_connections')::int
        - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"""
# A runner that has applied nothing yet has no checkpoint.
_BEHIND = """
    SELECT count(*) FROM unnest($1::text[]) AS r(projection)
      LEFT JOIN projection_checkpoints c USING (projection)
     WHERE EXISTS (
        SELECT 1 FROM events e
        WHERE c.projection IS NULL
           OR (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position))"""
_BUSY = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"""


def _run_sql(url: str, statement: str) -> None:
    async def run() -> None:
        conn = await connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())
