"""Row-level security as the second wall: inside a tenant's transaction PostgreSQL itself
hides and refuses every other tenant's rows, whatever a query forgets to filter on."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import service
from app.database import Database
from projections.rebuild import rebuild
from projections.registry import ASYNCHRONOUS, PROJECTORS
from projections.runner import catch_up
from tests.integration.projection_support import create, new_caller
from tests.tenant_connection import tenant_connection

pytestmark = pytest.mark.asyncio

# Tables of the service's own running that hold no tenant's data.
UNSCOPED = {"alembic_version", "projection_checkpoints"}
# Every match of the search function: each task of the tenant it finds entered.
EVERY_MATCH = "tasks_matching('%', ARRAY['task_id']) AS m(task_id text)"


async def _tenant_tables(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1"
            )
        )
        return [name for (name,) in rows]


@pytest.fixture
async def two_tenants(db: Database, engine: AsyncEngine) -> tuple[service.Caller, service.Caller]:
    """Two tenants with a task each, projected everywhere."""
    first, second = await new_caller(engine, "rls-a"), await new_caller(engine, "rls-b")
    for caller in (first, second):
        await create(db, caller, ownerId="u-1", ownerName="Agent One")
    for projector in ASYNCHRONOUS:
        await catch_up(engine, projector)
    return first, second


async def _unguarded_tables(engine: AsyncEngine) -> list[str]:
    """Tables with tenants' rows but no row-level security policy for the tenant role."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c "
                    "WHERE c.relnamespace = CAST('public' AS regnamespace) AND c.relkind = 'r' "
                    "AND c.relname = ANY(:names) "
                    "AND NOT (c.relrowsecurity AND EXISTS ("
                    "  SELECT FROM pg_policies p WHERE p.schemaname = 'public' "
                    "  AND p.tablename = c.relname AND 'tasks_tenant' = ANY(p.roles)))"
                ),
                {"names": [name for name in await _tenant_tables(engine) if name not in UNSCOPED]},
            )
        ).all()
    return [name for (name,) in rows]


async def test_every_table_with_tenant_rows_is_guarded(engine: AsyncEngine) -> None:
    assert await _unguarded_tables(engine) == []


async def test_an_unfiltered_query_sees_only_its_own_tenant(
    engine: AsyncEngine, two_tenants: tuple[service.Caller, service.Caller]
) -> None:
    first, second = two_tenants
    for table in await _tenant_tables(engine):
        async with tenant_connection(engine, first.principal.tenant_id) as conn:
            seen = set(await conn.scalars(sa.text(f"SELECT DISTINCT tenant_id FROM {table}")))
        assert second.principal.tenant_id not in seen, table
    async with tenant_connection(engine, first.principal.tenant_id) as conn:
        for table in ("events", "task_view", "rollup_tasks", "task_totals", "owner_names"):
            tenants = set(await conn.scalars(sa.text(f"SELECT tenant_id FROM {table}")))
            assert tenants == {first.principal.tenant_id}, table


class Undone(Exception):
    """Raised to roll a tenant transaction back."""


async def test_another_tenants_rows_cannot_be_written(
    engine: AsyncEngine, two_tenants: tuple[service.Caller, service.Caller]
) -> None:
    first, second = two_tenants
    with pytest.raises(Undone):
        async with tenant_connection(engine, first.principal.tenant_id) as conn:
            changed = await conn.execute(sa.text("UPDATE task_view SET title = 'taken over'"))
            assert changed.rowcount == 1
            raise Undone
    async with tenant_connection(engine, first.principal.tenant_id) as conn:
        with pytest.raises(DBAPIError, match="row-level security"):
            await conn.execute(
                sa.text(
                    "INSERT INTO idempotency_records VALUES "
                    "(:tenant, 'k', '\\x00', 201, '\\x00', NULL, now())"
                ),
                {"tenant": second.principal.tenant_id},
            )


async def test_a_tenant_transaction_cannot_touch_what_only_the_runner_writes(
    engine: AsyncEngine, two_tenants: tuple[service.Caller, service.Caller]
) -> None:
    first, _ = two_tenants
    async with tenant_connection(engine, first.principal.tenant_id) as conn:
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(sa.text("DELETE FROM task_totals"))


async def test_a_tenant_transaction_cannot_choose_an_events_place_in_commit_order(
    engine: AsyncEngine, two_tenants: tuple[service.Caller, service.Caller]
) -> None:
    first, _ = two_tenants
    tenant_id = first.principal.tenant_id
    event = (
        "INSERT INTO events (tenant_id, stream_id, stream_version, event_type, data, "
        "metadata, recorded_at{}) VALUES (:tenant, '6b0000000000000000000009', 1, "
        '\'TASK_DELETED\', \'{{"type": "TASK_DELETED", "title": "x"}}\', \'{{}}\', now(){})'
    )
    # An event below the projections' checkpoints would be skipped by every reader for good.
    async with tenant_connection(engine, tenant_id) as conn:
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(
                sa.text(event.format(", transaction_id", ", '1'::xid8")), {"tenant": tenant_id}
            )
    with pytest.raises(Undone):
        async with tenant_connection(engine, tenant_id) as conn:
            appended = await conn.execute(sa.text(event.format("", "")), {"tenant": tenant_id})
            assert appended.rowcount == 1
            raise Undone


async def test_without_a_tenant_set_the_role_sees_nothing(
    engine: AsyncEngine, two_tenants: tuple[service.Caller, service.Caller]
) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("SET LOCAL ROLE tasks_tenant"))
        assert await conn.scalar(sa.text("SELECT count(*) FROM events")) == 0
        # Nor does the search function, which reads as the tables' owner.
        assert await conn.scalar(sa.text(f"SELECT count(*) FROM {EVERY_MATCH}")) == 0


async def test_a_rebuild_keeps_the_guard(
    db: Database, engine: AsyncEngine, two_tenants: tuple[service.Caller, service.Caller]
) -> None:
    first, second = two_tenants
    for projector in PROJECTORS.values():
        await rebuild(engine, projector, lambda _: None)
    assert await _unguarded_tables(engine) == []
    async with tenant_connection(engine, first.principal.tenant_id) as conn:
        tenants = set(await conn.scalars(sa.text("SELECT tenant_id FROM task_view")))
    assert tenants == {first.principal.tenant_id}
    # The service still writes through the rebuilt tables.
    assert (await create(db, second)).task is not None


async def test_the_search_function_finds_the_entered_tenants_tasks_only(
    engine: AsyncEngine, two_tenants: tuple[service.Caller, service.Caller]
) -> None:
    first, _ = two_tenants
    async with tenant_connection(engine, first.principal.tenant_id) as conn:
        found = set(await conn.scalars(sa.text(f"SELECT task_id FROM {EVERY_MATCH}")))
        own = set(await conn.scalars(sa.text("SELECT task_id FROM task_view")))
    assert found == own and len(own) == 1


@pytest.mark.parametrize("name", ["key_hash FROM api_keys --", "current_user", "no_such"])
async def test_the_search_function_returns_columns_of_the_tenants_rows_and_nothing_else(
    engine: AsyncEngine, two_tenants: tuple[service.Caller, service.Caller], name: str
) -> None:
    first, _ = two_tenants
    tenant_id = first.principal.tenant_id
    async with tenant_connection(engine, tenant_id) as conn:
        own = "tasks_matching('%', ARRAY['tenant_id']) AS m(tenant_id text)"
        assert set(await conn.scalars(sa.text(f"SELECT tenant_id FROM {own}"))) == {tenant_id}
    with pytest.raises(DBAPIError, match="does not exist"):
        async with tenant_connection(engine, tenant_id) as conn:
            named = sa.text("SELECT * FROM tasks_matching('%', ARRAY[:name]) AS m(x text)")
            await conn.execute(named, {"name": name})


async def test_no_role_but_the_tenant_role_may_call_the_search_function(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        granted = await conn.scalars(
            sa.text(
                "SELECT grantee FROM information_schema.routine_privileges "
                "WHERE routine_name = 'tasks_matching' AND privilege_type = 'EXECUTE' "
                "AND grantee <> (SELECT rolname FROM pg_roles r JOIN pg_proc p "
                "ON p.proowner = r.oid WHERE p.proname = 'tasks_matching')"
            )
        )
        assert set(granted) == {"tasks_tenant"}
