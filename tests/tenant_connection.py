"""A tenant's transaction on SQLAlchemy's connection, for tests that run arbitrary SQL as a
tenant would: entered exactly as the service enters it (store/tenant.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.tenant import begin_as_tenant


@asynccontextmanager
async def tenant_connection(engine: AsyncEngine, tenant_id: str) -> AsyncIterator[AsyncConnection]:
    """A connection whose transaction is the tenant's; it commits when the block ends and
    rolls back if the block raises."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute(begin_as_tenant(tenant_id, "READ COMMITTED", None))
        try:
            yield conn
        except BaseException:
            await driver.execute("ROLLBACK")
            raise
        await driver.execute("COMMIT")
