"""A request's statements run in one process: the requests' pool plans them without
parallel workers, which cost more to start than they save beside other requests. The CLI's
engine keeps the server's setting."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.database import Database

pytestmark = pytest.mark.asyncio

# Parallel plans made free, so that the planner takes one wherever it is allowed to.
FREE_PARALLELISM = (
    "SELECT set_config('parallel_setup_cost', '0', true), "
    "set_config('parallel_tuple_cost', '0', true), "
    "set_config('min_parallel_table_scan_size', '0', true)"
)
SCAN = "EXPLAIN SELECT count(*) FROM events"


async def test_the_requests_pool_plans_no_parallel_workers(db: Database) -> None:
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute(FREE_PARALLELISM)
        plan = "\n".join(row[0] for row in await conn.fetch(SCAN))

    assert "Gather" not in plan


async def test_the_engine_keeps_the_servers_parallel_plans(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(FREE_PARALLELISM))
        plan = "\n".join((await conn.execute(sa.text(SCAN))).scalars())

    assert "Gather" in plan
