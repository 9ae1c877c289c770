"""A throwaway database on the server of BENCH_DATABASE_URL, migrated and given its tenants by
the real `tasks-api` commands, and dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import msgspec
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# A tenant's requests per minute: far above what the benchmark sends, so the rate limit is
# checked on every request as in production but never refuses one.
RATE_LIMIT = 1_000_000_000
# How long a load waits for the statements of the one before it to finish.
IDLE_WAIT_SECONDS = 30.0


class CreatedTenant(msgspec.Struct, rename="camel"):
    tenant_id: str
    api_key: str


def tasks_api() -> str:
    """The `tasks-api` command installed beside this interpreter."""
    return str(Path(sys.executable).with_name("tasks-api"))


def server_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)


def cli(database_url: str, *args: str) -> str:
    """Run `tasks-api ARGS` on the database as an operator would; its stdout."""
    env = {**os.environ, "DATABASE_URL": database_url}
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


def create_tenants(database_url: str, names: list[str]) -> list[CreatedTenant]:
    """`tasks-api tenant create` for each name, run side by side."""

    def create(name: str) -> CreatedTenant:
        args = ("tenant", "create", name, "--rate-limit", str(RATE_LIMIT), "--json")
        out = cli(database_url, *args)
        return msgspec.json.decode(out.strip().splitlines()[-1], type=CreatedTenant)

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return list(pool.map(create, names))


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new database on the benchmark's server, migrated; dropped when the block ends."""
    server = make_url(server_url())
    name = f"tasks_bench_{os.getpid()}"
    admin = server.render_as_string(hide_password=False)
    _run_sql(admin, f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        cli(url, "migrate")
        yield url
    finally:
        _run_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def wait_until_idle(database_url: str, within: float = IDLE_WAIT_SECONDS) -> None:
    """Until no statement runs on the database but this one, or `within` seconds have
    passed."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND pid <> pg_backend_pid()"
            )
            if busy == 0:
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _run_sql(url: str, statement: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())
