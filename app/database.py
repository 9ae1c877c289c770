"""The service's connections to PostgreSQL: asyncpg's pool for the requests' statements, and
SQLAlchemy's engine for the CLI, migrations and the work beside the API (projection runners,
the auto-complete sweep, health and metrics)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import msgspec
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.store.append_notices import AppendNotices
from store.pool import encode_json, open_pool, plain_url, server_settings

# What a command outside the API meets when a database fails it: the network's, the driver's,
# SQLAlchemy's and Alembic's errors.
DATABASE_ERRORS = (OSError, SQLAlchemyError, asyncpg.PostgresError, CommandError)


def first_line(error: BaseException) -> str:
    """A database error in one line: the driver's own message under SQLAlchemy's wrapping."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@dataclass(frozen=True, slots=True)
class Database:
    """What the use cases reach PostgreSQL through: the pool their statements run on, and the
    notices that wake the projection runners after their commits."""

    pool: asyncpg.Pool
    notices: AppendNotices


@asynccontextmanager
async def open_database(
    database_url: str, *, pool_size: int = 10, statement_timeout_ms: int = 5_000
) -> AsyncIterator[Database]:
    pool = await open_pool(database_url, size=pool_size, statement_timeout_ms=statement_timeout_ms)
    try:
        yield Database(pool, AppendNotices(pool))
    finally:
        await pool.close()


def create_engine(
    database_url: str, *, pool_size: int = 10, statement_timeout_ms: int = 5_000
) -> AsyncEngine:
    dsn, settings = plain_url(database_url), server_settings(statement_timeout_ms)

    async def connect() -> asyncpg.Connection:
        # asyncpg reads the URL itself, as the requests' pool does: libpq's parameters in it
        # (sslmode, sslrootcert…) too, which SQLAlchemy would pass as keywords asyncpg lacks.
        return await asyncpg.connect(dsn, server_settings=settings)

    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=connect,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        json_serializer=encode_json,
        json_deserializer=msgspec.json.decode,
    )


@asynccontextmanager
async def engine_of(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine of one connection, for a few statements, disposed of on leaving."""
    engine = create_engine(database_url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()
