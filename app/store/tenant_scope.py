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

import sqlalchemy as sa
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
