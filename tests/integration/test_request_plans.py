"""How a request's statements are planned. They run in one process: the requests' pool plans
them without parallel workers, which cost more to start than they save beside other
requests (the CLI's engine keeps the server's setting). And the counts that would visit a
row of the task view for each task are answered from an index alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import clock
from app.database import Database
from projections import figures
from store.tenant import tenant_transaction
from tests.integration.projection_support import create, new_caller

pytestmark = pytest.mark.asyncio

# Parallel plans made free, so that the planner takes one wherever it is allowed to.
FREE_PARALLELISM = (
    "SELECT set_config('parallel_setup_cost', '0', true), "
    "set_config('parallel_tuple_cost', '0', true), "
    "set_config('min_parallel_table_scan_size', '0', true), "
    "set_config('min_parallel_index_scan_size', '0', true)"
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


async def test_an_owners_overdue_tasks_of_a_period_are_counted_from_an_index_alone(
    engine: AsyncEngine, db: Database
) -> None:
    caller = await new_caller(engine, "owner-periods")
    for number in range(3):
        await create(
            db, caller, title=f"Call {number}", ownerId="u-1", dueDate="2020-01-01T00:00:00Z"
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        # The visibility map an index-only scan needs, as a rebuild or autovacuum leaves it.
        await conn.execute(sa.text("VACUUM task_view"))
    now = clock.now()
    overdue = figures.period_overdue(for_owner=True, created_from=True, created_before=True)
    tenant_id = caller.principal.tenant_id
    async with tenant_transaction(db.pool, tenant_id) as conn:
        # Any plan but one from an index, were there one that answers alone.
        await conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
        arguments = overdue.arguments(
            tenant_id=tenant_id,
            owner_id="u-1",
            now=now,
            created_from=datetime(2000, 1, 1, tzinfo=UTC),
            created_before=now,
        )
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {overdue.sql}", *arguments))
        [(counted,)] = await conn.fetch(overdue.sql, *arguments)

    assert "Index Only Scan using task_view_owner_open_due" in plan
    assert counted == 3
