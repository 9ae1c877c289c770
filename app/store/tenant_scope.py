"""Connections confined to one tenant by PostgreSQL's row-level security.

Every query of a tenant's request names its tenant; these connections are the second wall
behind that. Their transaction acts as the role tasks_tenant with tasks.tenant_id set, and the
policies of every tenant table (migration 0005) then show and accept that tenant's rows only:
a query that forgot its `WHERE tenant_id` finds nothing of another tenant's. Both settings are
local to the transaction, so a pooled connection goes back to the pool as its owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

TENANT_ROLE = "tasks_tenant"

_ENTER = sa.text(
    "SELECT set_config('role', :role, true), set_config('tasks.tenant_id', :tenant_id, true)"
)


@asynccontextmanager
async def tenant_connection(
    engine: AsyncEngine,
    tenant_id: str,
    isolation_level: Literal["READ COMMITTED", "REPEATABLE READ"] = "READ COMMITTED",
) -> AsyncIterator[AsyncConnection]:
    """A connection whose transaction sees and writes `tenant_id`'s rows only. Once it
    commits, the confinement ends with the transaction: open another for more work."""
    async with engine.connect() as conn:
        if isolation_level != "READ COMMITTED":
            await conn.execution_options(isolation_level=isolation_level)
        await conn.execute(_ENTER, {"role": TENANT_ROLE, "tenant_id": tenant_id})
        yield conn


@asynccontextmanager
async def tenant_driver_connection(
    engine: AsyncEngine, tenant_id: str
) -> AsyncIterator[asyncpg.Connection]:
    """The same confinement on the driver's own (asyncpg) connection, for hot paths where
    SQLAlchemy's work per statement is a measurable share: one round trip begins the
    transaction and enters the tenant, one commits. Errors of the connection come out as
    SQLAlchemy's, as from every other query."""
    async with engine.connect() as conn, driver_errors(conn):
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.execute(_begin_as_tenant(tenant_id))
        try:
            yield driver
        except BaseException:
            if not driver.is_closed():
                await driver.execute("ROLLBACK")
            raise
        await driver.execute("COMMIT")


@asynccontextmanager
async def driver_errors(conn: AsyncConnection) -> AsyncIterator[None]:
    """A lost connection met on the driver's own connection comes out as SQLAlchemy's
    error for it, and the connection is not pooled again."""
    try:
        yield
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as error:
        await conn.invalidate()
        raise DBAPIError(None, None, error, connection_invalidated=True) from error


def _begin_as_tenant(tenant_id: str) -> str:
    # One simple-protocol round trip, so no parameters: the id is quoted as a literal.
    literal = "'" + tenant_id.replace("'", "''") + "'"
    return (
        "BEGIN; SELECT set_config('role', '"
        + TENANT_ROLE
        + f"', true), set_config('tasks.tenant_id', {literal}, true)"
    )
