"""Connections confined to one tenant by PostgreSQL's row-level security.

Every query of a tenant's request names its tenant; these connections are the second wall
behind that. Their transaction acts as the role tasks_tenant with tasks.tenant_id set, and the
policies of every tenant table (migration 0005) then show and accept that tenant's rows only:
a query that forgot its `WHERE tenant_id` finds nothing of another tenant's. Both settings are
local to the transaction, so a pooled connection goes back to the pool as its owner.

Beginning the transaction and entering the tenant take one round trip, where SQLAlchemy's
own BEGIN and a statement for the settings took two. A command on a task also takes its
stream's lock in that round trip (see `tenant_connection`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.driver import driver_connection

TENANT_ROLE = "tasks_tenant"
# The first key of the two-key advisory locks that queue a stream's writers (the rate limits'
# counters lock with 4004, the projection runners with one-key locks).
STREAM_LOCKS = 4012

IsolationLevel = Literal["READ COMMITTED", "REPEATABLE READ"]


@asynccontextmanager
async def tenant_connection(
    engine: AsyncEngine,
    tenant_id: str,
    isolation_level: IsolationLevel = "READ COMMITTED",
    *,
    stream_id: str | None = None,
) -> AsyncIterator[AsyncConnection]:
    """A connection whose transaction sees and writes `tenant_id`'s rows only. The block is
    the transaction: it commits when the block ends and rolls back if the block raises (the
    connection's own commit() and rollback() do nothing here).

    With `stream_id`, the transaction first holds that stream's lock, so the commands on one
    task run one after another. The lock is taken before the transaction has written, and so
    before it has a transaction id: each writer of a stream takes its id after the one before
    it has committed, and the log's commit order, (transaction id, position), is the order of
    the stream's versions. (A row lock would not do: a transaction takes its id as it starts
    to wait for one, and may then write after a later one.)"""
    async with _tenant_transaction(engine, tenant_id, isolation_level, stream_id) as (conn, _):
        yield conn


@asynccontextmanager
async def tenant_driver_connection(
    engine: AsyncEngine, tenant_id: str
) -> AsyncIterator[asyncpg.Connection]:
    """The same on the driver's own (asyncpg) connection, for hot paths where SQLAlchemy's
    work per statement is a measurable share."""
    async with _tenant_transaction(engine, tenant_id, "READ COMMITTED", None) as (_, driver):
        yield driver


@asynccontextmanager
async def _tenant_transaction(
    engine: AsyncEngine, tenant_id: str, isolation_level: IsolationLevel, stream_id: str | None
) -> AsyncIterator[tuple[AsyncConnection, asyncpg.Connection]]:
    # The transaction is begun on the driver, with the tenant entered in the same round trip;
    # SQLAlchemy, told to begin none of its own, runs its statements inside it.
    async with engine.connect() as conn, driver_errors(conn):
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        driver = await driver_connection(conn)
        await driver.execute(_begin_as_tenant(tenant_id, isolation_level, stream_id))
        try:
            yield conn, driver
        except asyncio.CancelledError:
            raise  # the connection is not pooled again: nothing to roll back on it
        except BaseException:
            if not driver.is_closed():
                await driver.execute("ROLLBACK")
            raise
        await driver.execute("COMMIT")


@asynccontextmanager
async def driver_errors(conn: AsyncConnection) -> AsyncIterator[None]:
    """A lost connection met on the driver's own connection comes out as SQLAlchemy's
    error for it, and the connection is not pooled again; nor is one whose statement was
    cut short by a cancellation (a request's timeout, say), which the driver would still
    count as in progress."""
    try:
        yield
    except asyncio.CancelledError:
        await conn.invalidate()
        raise
    except (
        OSError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        asyncpg.PostgresConnectionError,
    ) as error:
        await conn.invalidate()
        raise DBAPIError(None, None, error, connection_invalidated=True) from error


def _begin_as_tenant(tenant_id: str, isolation_level: IsolationLevel, stream_id: str | None) -> str:
    # One simple-protocol round trip, so no parameters: the ids are quoted as literals.
    tenant = _literal(tenant_id)
    begin = (
        f"BEGIN ISOLATION LEVEL {isolation_level}; SELECT set_config('role', '"
        + TENANT_ROLE
        + f"', true), set_config('tasks.tenant_id', {tenant}, true)"
    )
    if stream_id is None:
        return begin
    stream = f"hashtext({tenant} || '/' || {_literal(stream_id)})"
    return f"{begin}; SELECT pg_advisory_xact_lock({STREAM_LOCKS}, {stream})"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
