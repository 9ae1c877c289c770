"""Analysts read the analytics tables from roles of their own: a tenant's analyst that
tenant's rows only, a platform analyst every tenant's; no analyst reads the service's own
tables or writes anything, and no setting widens a tenant analyst's reach.

Roles belong to the whole PostgreSQL cluster, which other test runs share: each analyst here
has a name of its own and is dropped when its test ends."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncEngine

from app import analysts, clock, service
from app.cli import main
from app.database import Database
from projections.rebuild import rebuild
from projections.registry import ROLLUPS
from tests.integration.projection_support import apply_rollups, create, new_caller
from tests.unit.tasks import complete, reassign, snooze

pytestmark = pytest.mark.asyncio

# What an analyst reads; every other table and view of the schema is out of its reach.
READABLE = {*analysts.ANALYST_TABLES, *analysts.ANALYST_VIEWS}
ANALYTICS_PAGE = Path(__file__).parents[2] / "docs" / "analytics.md"
NEVER_READABLE = {"api_keys", "idempotency_records", "rate_limit_counts", "projection_checkpoints"}


@dataclass(frozen=True)
class Tenants:
    first: service.Caller
    second: service.Caller

    @property
    def ids(self) -> tuple[str, str]:
        return self.first.principal.tenant_id, self.second.principal.tenant_id


@dataclass(frozen=True)
class Created:
    role: str
    tenant_id: str | None
    password: str
    url: str

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url)


def cli(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url})


@pytest.fixture(scope="module")
async def two_tenants(db: Database, engine: AsyncEngine) -> Tenants:
    """Two tenants, each with a task snoozed, reassigned and completed and an open one due
    tomorrow, all applied to the rollups."""
    callers = []
    for name in ("analysed-a", "analysed-b"):
        caller = await new_caller(engine, name)
        due = clock.now() + timedelta(days=1)
        created = await create(db, caller, ownerId="agent_1", dueDate=due.isoformat())
        assert created.task is not None
        await service.run(db, caller, created.task.id, snooze(due + timedelta(days=1)))
        await service.run(db, caller, created.task.id, reassign("agent_2"))
        await service.run(db, caller, created.task.id, complete())
        await create(db, caller, dueDate=due.isoformat())
        callers.append(caller)
    await apply_rollups(engine)
    return Tenants(*callers)


Make = Callable[..., Awaitable[Created]]


@pytest.fixture
async def analyst(engine: AsyncEngine, database_url: str) -> AsyncIterator[Make]:
    """Creates analysts through `tasks-api analyst create`; revokes them all at the end."""
    made: list[str] = []

    async def make(tenant_id: str | None = None) -> Created:
        role = f"test_analyst_{secrets.token_hex(5)}"
        made.append(role)
        reach = [] if tenant_id is None else ["--tenant", tenant_id]
        result = await asyncio.to_thread(
            cli, database_url, "analyst", "create", role, *reach, "--json"
        )
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        return Created(role, printed["tenantId"], printed["password"], printed["url"])

    yield make
    for role in made:
        async with engine.begin() as conn:
            if await conn.scalar(
                sa.text("SELECT 1 FROM analysts WHERE role_name = :r"), {"r": role}
            ):
                await analysts.revoke_analyst(conn, role)
            await conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")


async def relations(engine: AsyncEngine) -> dict[str, list[str]]:
    """Every table and view of the schema, with the columns a statement may set."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum) "
                "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
                "WHERE c.relnamespace = CAST('public' AS regnamespace) "
                "AND c.relkind IN ('r', 'v', 'm', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
                "AND a.attidentity = '' AND a.attgenerated = '' "
                "GROUP BY c.relname"
            )
        )
        return {name: list(columns) for name, columns in rows}


async def reach(conn: asyncpg.Connection, relation: str, tenanted: bool) -> set[str] | None:
    """The tenants whose rows a connection sees in a relation (an empty set for a relation
    of no tenant's rows that it may read); None when it may not read the relation."""
    try:
        if tenanted:
            return {
                row[0] for row in await conn.fetch(f"SELECT DISTINCT tenant_id FROM {relation}")
            }
        await conn.fetch(f"SELECT * FROM {relation} LIMIT 1")
        return set()
    except asyncpg.InsufficientPrivilegeError:
        return None


async def reaches(engine: AsyncEngine, conn: asyncpg.Connection) -> dict[str, set[str] | None]:
    return {
        relation: await reach(conn, relation, "tenant_id" in columns)
        for relation, columns in (await relations(engine)).items()
    }


async def test_a_tenant_analyst_reads_its_tenants_rows_of_the_analytics_tables_only(
    engine: AsyncEngine, two_tenants: Tenants, analyst: Make
) -> None:
    created = await analyst(two_tenants.ids[0])
    conn = await created.connect()
    try:
        seen = await reaches(engine, conn)
    finally:
        await conn.close()

    readable = {relation for relation, tenants in seen.items() if tenants is not None}
    assert readable == READABLE
    assert NEVER_READABLE.isdisjoint(readable)
    for relation in analysts.ANALYST_TABLES:
        assert seen[relation] == {two_tenants.ids[0]}, relation


async def test_a_platform_analyst_reads_every_tenants_rows_of_the_analytics_tables_only(
    engine: AsyncEngine, two_tenants: Tenants, analyst: Make
) -> None:
    created = await analyst()
    conn = await created.connect()
    try:
        seen = await reaches(engine, conn)
    finally:
        await conn.close()

    readable = {relation for relation, tenants in seen.items() if tenants is not None}
    assert readable == READABLE
    for relation in analysts.ANALYST_TABLES:
        assert set(two_tenants.ids) <= (seen[relation] or set()), relation


async def test_the_analytics_page_documents_every_column_an_analyst_reads(
    engine: AsyncEngine,
) -> None:
    page = ANALYTICS_PAGE.read_text()
    sections = dict(re.findall(r"^## `(\w+)`[^\n]*\n(.*?)(?=^## |\Z)", page, re.M | re.S))
    # A table documented as "the columns of `another`" and more documents those too.
    for table, text in list(sections.items()):
        if inherited := re.search(r"The columns of `(\w+)`", text):
            sections[table] = text + sections[inherited[1]]
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT table_name::text, column_name::text FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = ANY(:names)"
            ),
            {"names": sorted(READABLE)},
        )
        undocumented = [
            f"{table}.{column}"
            for table, column in rows
            if f"`{column}`" not in sections.get(table, "")
        ]
    assert set(sections) >= READABLE
    assert undocumented == []


async def test_no_analyst_can_write_anything(
    engine: AsyncEngine, two_tenants: Tenants, analyst: Make
) -> None:
    everything = await relations(engine)
    async with engine.connect() as owner:
        sequences = list(
            await owner.scalars(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relkind = 'S' "
                    "AND relnamespace = CAST('public' AS regnamespace)"
                )
            )
        )
    for created in (await analyst(two_tenants.ids[0]), await analyst()):
        conn = await created.connect()
        try:
            # Read-only is only the role's default, which it may change: privileges refuse.
            await conn.execute("SET default_transaction_read_only = off")
            not_refused = await _writes_not_refused(conn, everything, sequences)
        finally:
            await conn.close()
        assert not_refused == {}, created.role


async def _writes_not_refused(
    conn: asyncpg.Connection, everything: dict[str, list[str]], sequences: list[str]
) -> dict[str, str]:
    """Every write an analyst could try, each in a transaction of its own; those that were
    not refused for want of a privilege, and what came of them."""
    attempts = [
        *(f"INSERT INTO {name} DEFAULT VALUES" for name in everything),
        *(f"UPDATE {name} SET {columns[0]} = {columns[0]}" for name, columns in everything.items()),
        *(f"DELETE FROM {name}" for name in everything),
        *(f"TRUNCATE {name}" for name in everything if name not in analysts.ANALYST_VIEWS),
        *(f"SELECT nextval('{name}')" for name in sequences),
        "SELECT * FROM lease_rate_limit('tenant:x', 1, 60, NULL, 1, 0, 0)",
        "SELECT * FROM tasks_matching('%', ARRAY['task_id']) AS m(task_id text)",
        "CREATE TABLE public.analysts_scratch (x int)",
        "CREATE SCHEMA analysts_scratch",
        "ALTER TABLE task_view DISABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS tenant_rows ON task_view",
        "GRANT SELECT ON api_keys TO PUBLIC",
    ]
    not_refused: dict[str, str] = {}
    for statement in attempts:
        try:
            async with conn.transaction():
                await conn.execute(statement)
            not_refused[statement] = "done"
        except asyncpg.InsufficientPrivilegeError:
            continue
        except asyncpg.PostgresError as error:
            # A view of aggregates takes no writes from anyone: refused all the same.
            if not any(view in statement for view in analysts.ANALYST_VIEWS):
                not_refused[statement] = repr(error)
    return not_refused


async def test_no_analyst_can_take_an_advisory_lock(two_tenants: Tenants, analyst: Make) -> None:
    """The service's locks are keyed by what anyone can compute: an analyst holding a
    tenant's would stall that tenant's requests."""
    lock_functions = [
        f"pg_{attempt}advisory_{scope}lock{mode}"
        for attempt in ("", "try_")
        for scope in ("", "xact_")
        for mode in ("", "_shared")
    ]
    tenant = two_tenants.ids[1]
    for created in (await analyst(two_tenants.ids[0]), await analyst()):
        conn = await created.connect()
        try:
            for function in lock_functions:
                for arguments in (f"4004, hashtext('tenant:{tenant}')", "42::bigint"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        async with conn.transaction():
                            await conn.execute(f"SELECT {function}({arguments})")
        finally:
            await conn.close()


async def test_no_setting_widens_a_tenant_analysts_reach(
    engine: AsyncEngine, two_tenants: Tenants, analyst: Make
) -> None:
    first, second = two_tenants.ids
    created = await analyst(first)
    conn = await created.connect()
    attempts = [
        "SET default_transaction_read_only = off",
        f"SET tasks.tenant_id = '{second}'",
        "SET ROLE tasks_tenant",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "RESET ROLE",
        "SET search_path = pg_temp, public",
    ]
    try:
        for attempt in attempts:
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                await conn.execute(attempt)
            for table in ("events", "task_view", "task_totals", "completions_history"):
                assert await reach(conn, table, tenanted=True) == {first}, (attempt, table)
        # Turning row security off refuses every query a policy would filter.
        await conn.execute("SET row_security = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.fetch("SELECT tenant_id FROM events")
    finally:
        await conn.close()


async def test_the_freshness_view_counts_the_unapplied_events_in_the_analysts_reach(
    db: Database, engine: AsyncEngine, two_tenants: Tenants, analyst: Make
) -> None:
    await apply_rollups(engine)
    tenant_analyst, platform_analyst = await analyst(two_tenants.ids[0]), await analyst()
    await create(db, two_tenants.first)
    await create(db, two_tenants.first)
    await create(db, two_tenants.second)

    async def lag(created: Created) -> tuple[int, int]:
        conn = await created.connect()
        try:
            row = await conn.fetchrow("SELECT events_behind, lag_ms FROM projection_lag")
        finally:
            await conn.close()
        assert row is not None
        return row["events_behind"], row["lag_ms"]

    assert (await lag(tenant_analyst))[0] == 2
    assert (await lag(platform_analyst))[0] == 3
    await apply_rollups(engine)
    assert await lag(tenant_analyst) == (0, 0)


async def test_the_printed_password_is_the_roles(
    engine: AsyncEngine, two_tenants: Tenants, analyst: Make
) -> None:
    created = await analyst(two_tenants.ids[0])

    async with engine.connect() as conn:
        stored = await conn.scalar(
            sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": created.role}
        )

    # SCRAM-SHA-256$<iterations>:<salt>$<stored key>:<server key>
    salt = base64.b64decode(stored.split("$")[1].split(":")[1])
    assert stored == analysts.scram_verifier(created.password, salt)
    assert created.password not in stored


async def test_listed_analysts_and_a_revoked_one_reads_nothing_more(
    engine: AsyncEngine, database_url: str, two_tenants: Tenants, analyst: Make
) -> None:
    first = two_tenants.ids[0]
    tenant_analyst, platform_analyst = await analyst(first), await analyst()
    listed = await asyncio.to_thread(cli, database_url, "analyst", "list")
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:]}
    assert lines[tenant_analyst.role][:2] == ["tenant", first]
    assert lines[platform_analyst.role][:2] == ["every", "tenant"]

    session = await tenant_analyst.connect()
    try:
        assert await reach(session, "task_view", tenanted=True) == {first}
        revoked = await asyncio.to_thread(
            cli, database_url, "analyst", "revoke", tenant_analyst.role
        )
        assert revoked.exit_code == 0, revoked.output
        # The session it had open reads nothing from its next statement on.
        assert await reach(session, "task_view", tenanted=True) is None
    finally:
        await session.close()
    async with engine.connect() as conn:
        role = await conn.scalar(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": tenant_analyst.role}
        )
    assert role is None
    again = await asyncio.to_thread(cli, database_url, "analyst", "revoke", tenant_analyst.role)
    assert again.exit_code == 1
    assert f"no analyst is named {tenant_analyst.role}" in again.stderr


@pytest.mark.parametrize(
    ("name", "options", "refusal"),
    [
        ("Not A Name", [], "is not a role name"),
        ("pg_analyst", [], "is not a role name"),
        ("tasks_tenant", [], "a role named tasks_tenant exists already"),
        ("test_analyst_nowhere", ["--tenant", "6b0000000000000000000000"], "no tenant has the id"),
    ],
)
async def test_an_analyst_that_cannot_be_made_is_refused_and_nothing_is_made(
    engine: AsyncEngine, database_url: str, name: str, options: list[str], refusal: str
) -> None:
    result = await asyncio.to_thread(cli, database_url, "analyst", "create", name, *options)

    assert result.exit_code == 1
    assert refusal in result.stderr
    async with engine.connect() as conn:
        listed = await conn.scalar(
            sa.text("SELECT count(*) FROM analysts WHERE role_name = :r"), {"r": name}
        )
    assert listed == 0


async def test_a_rebuild_keeps_each_analysts_reach(
    engine: AsyncEngine, two_tenants: Tenants, analyst: Make
) -> None:
    first, second = two_tenants.ids
    tenant_analyst, platform_analyst = await analyst(first), await analyst()

    await rebuild(engine, ROLLUPS, lambda _: None)

    for table in ("task_totals", "completions_history", "open_tasks_by_due_day"):
        conn = await tenant_analyst.connect()
        try:
            assert await reach(conn, table, tenanted=True) == {first}, table
        finally:
            await conn.close()
        conn = await platform_analyst.connect()
        try:
            assert {first, second} <= (await reach(conn, table, tenanted=True) or set()), table
        finally:
            await conn.close()
