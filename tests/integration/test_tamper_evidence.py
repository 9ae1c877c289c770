"""The log is tamper-evident: `audit verify` recomputes each task's hash chain and each
tenant's digest, and names what the table's owner changed with the log's triggers
disabled. A chain shows an event edited, removed or moved within its task; the digest,
recorded by the runner behind it, what a chain cannot: a whole task removed, an event
slipped in with a forged chain, or a chain hashed anew.

Each test tampers with its own tenant's events in a database of this module's own, and
verifies that tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import clock, service
from app.cli import main
from app.database import Database, create_engine, open_database
from app.service import Caller
from app.store import event_log
from domain.decide import decide
from domain.evolve import evolve
from projections import runner, task_view
from projections.log_digest import LOG_DIGEST
from tests.database import migrated_database
from tests.integration.projection_support import caught_up, create, new_caller, wait_until
from tests.unit.tasks import complete, patch

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def tampered_database_url(database_url: str) -> Iterator[str]:
    with migrated_database(database_url) as url:
        yield url


@pytest.fixture(scope="module")
async def engine(tampered_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(tampered_database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def db(tampered_database_url: str) -> AsyncIterator[Database]:
    async with open_database(tampered_database_url, pool_size=2) as database:
        yield database


async def verify(database_url: str, tenant_id: str) -> Result:
    return await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["audit", "verify", "--tenant", tenant_id],
        env={"DATABASE_URL": database_url},
    )


async def tenant_with_history(db: Database, engine: AsyncEngine, name: str) -> tuple[str, str]:
    """A tenant with two tasks of three events each, digested by the runner: its id, and the
    first task's."""
    caller = await new_caller(engine, name)
    task_ids = []
    for title in ("First", "Second"):
        created = await create(db, caller, title=title)
        assert created.task is not None
        await service.run(db, caller, created.task.id, patch({"status": "in_progress"}))
        await service.run(db, caller, created.task.id, complete())
        task_ids.append(created.task.id)
    await digest_the_log(engine)
    return caller.principal.tenant_id, task_ids[0]


async def digest_the_log(engine: AsyncEngine) -> None:
    """The digests' runner caught up with the log's head (which other databases' writers
    may hold back a moment)."""

    async def digested() -> bool:
        await runner.catch_up(engine, LOG_DIGEST)
        return await caught_up(engine, LOG_DIGEST.name)

    await wait_until(digested)


@asynccontextmanager
async def triggers_disabled(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction of the events' owner with the log's triggers disabled, as it can open."""
    async with engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE events DISABLE TRIGGER USER"))
        yield conn
        await conn.execute(sa.text("ALTER TABLE events ENABLE TRIGGER USER"))


async def tamper(engine: AsyncEngine, *statements: str, **values: Any) -> None:
    """Run statements on the events with the log's triggers disabled."""
    async with triggers_disabled(engine) as conn:
        for statement in statements:
            await conn.execute(sa.text(statement), values)


async def rehash(conn: AsyncConnection, tenant_id: str, task_id: str, version: int) -> None:
    """The hash of the task's version recomputed from its content and the version before it,
    as a forger who knows how the chain is made would."""
    await conn.execute(
        sa.text("""
            UPDATE events e SET hash = event_hash(p.hash, e.tenant_id, e.stream_id,
                   e.stream_version, e.event_type, e.payload_version, e.data, e.metadata,
                   e.recorded_at)
              FROM events p
             WHERE e.tenant_id = :tenant AND e.stream_id = :task AND e.stream_version = :version
               AND p.tenant_id = e.tenant_id AND p.stream_id = e.stream_id
               AND p.stream_version = e.stream_version - 1
        """),
        {"tenant": tenant_id, "task": task_id, "version": version},
    )


async def test_an_untouched_log_verifies_whole(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, _ = await tenant_with_history(db, engine, "untouched")

    result = await verify(tampered_database_url, tenant_id)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "The log is whole: 6 events of 2 tasks chain; 6 of them, behind the runner, "
        "match the digests of 1 tenant(s)."
    )


async def test_an_edited_event_breaks_its_tasks_chain_there(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, task_id = await tenant_with_history(db, engine, "edited")

    await tamper(
        engine,
        "UPDATE events SET data = jsonb_set(data, '{changes,status,to}', '\"not_started\"') "
        "WHERE tenant_id = :tenant AND stream_id = :task AND stream_version = 2",
        tenant=tenant_id,
        task=task_id,
    )

    result = await verify(tampered_database_url, tenant_id)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"broken: tenant {tenant_id}, task {task_id}, version 2: its hash does not match its "
        "content and the hash of version 1: the event was edited, or moved from another version"
    ]


async def test_an_edit_whose_chain_is_hashed_anew_breaks_the_tenants_digest(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, task_id = await tenant_with_history(db, engine, "rehashed")

    async with triggers_disabled(engine) as conn:
        await conn.execute(
            sa.text(
                'UPDATE events SET metadata = \'{"actor": "someone else"}\' '
                "WHERE tenant_id = :tenant AND stream_id = :task AND stream_version = 2"
            ),
            {"tenant": tenant_id, "task": task_id},
        )
        for version in (2, 3):
            await rehash(conn, tenant_id, task_id, version)

    result = await verify(tampered_database_url, tenant_id)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"broken: tenant {tenant_id}: its 6 events behind the digests' checkpoint no longer "
        "fold to its digest: one was edited, or their order changed"
    ]


async def test_a_removed_event_is_named_by_the_version_after_it_and_the_digest(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, task_id = await tenant_with_history(db, engine, "removed")

    await tamper(
        engine,
        "DELETE FROM events WHERE tenant_id = :tenant AND stream_id = :task AND stream_version = 2",
        tenant=tenant_id,
        task=task_id,
    )

    result = await verify(tampered_database_url, tenant_id)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"broken: tenant {tenant_id}, task {task_id}, version 3: version 2 of the task removed",
        f"broken: tenant {tenant_id}: its digest covers 6 events, but 5 lie behind the "
        "digests' checkpoint: events were removed (a whole task's, maybe) or inserted",
    ]


async def test_two_swapped_versions_break_the_chain_at_the_first(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, task_id = await tenant_with_history(db, engine, "reordered")

    moved = "UPDATE events SET stream_version = {} WHERE tenant_id = :tenant AND stream_id = :task "
    await tamper(
        engine,
        moved.format(100) + "AND stream_version = 2",
        moved.format(2) + "AND stream_version = 3",
        moved.format(3) + "AND stream_version = 100",
        tenant=tenant_id,
        task=task_id,
    )

    result = await verify(tampered_database_url, tenant_id)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        f"broken: tenant {tenant_id}, task {task_id}, version 2: its hash does not match its "
        "content and the hash of version 1: the event was edited, or moved from another version"
    )


async def test_a_whole_task_removed_breaks_the_tenants_digest(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, task_id = await tenant_with_history(db, engine, "vanished")

    await tamper(
        engine,
        "DELETE FROM events WHERE tenant_id = :tenant AND stream_id = :task",
        tenant=tenant_id,
        task=task_id,
    )

    result = await verify(tampered_database_url, tenant_id)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"broken: tenant {tenant_id}: its digest covers 6 events, but 3 lie behind the "
        "digests' checkpoint: events were removed (a whole task's, maybe) or inserted"
    ]


async def test_an_event_inserted_behind_the_runner_with_a_forged_chain_breaks_the_digest(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, task_id = await tenant_with_history(db, engine, "inserted")

    # A fourth version, chained as the trigger would, given the transaction id of the third:
    # in commit order it lies behind the digests' checkpoint.
    await tamper(
        engine,
        """
        INSERT INTO events (tenant_id, stream_id, stream_version, event_type, payload_version,
                            data, metadata, recorded_at, transaction_id, hash)
        SELECT tenant_id, stream_id, 4, event_type, payload_version, data, metadata,
               recorded_at, transaction_id,
               event_hash(hash, tenant_id, stream_id, 4, event_type, payload_version, data,
                          metadata, recorded_at)
          FROM events
         WHERE tenant_id = :tenant AND stream_id = :task AND stream_version = 3
        """,
        tenant=tenant_id,
        task=task_id,
    )

    result = await verify(tampered_database_url, tenant_id)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"broken: tenant {tenant_id}: its digest covers 6 events, but 7 lie behind the "
        "digests' checkpoint: events were removed (a whole task's, maybe) or inserted"
    ]


async def test_an_event_appended_with_a_wrong_hash_is_named(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, task_id = await tenant_with_history(db, engine, "forging")

    async with engine.begin() as conn:
        await conn.execute(
            sa.text("""
                INSERT INTO events (tenant_id, stream_id, stream_version, event_type,
                                    payload_version, data, metadata, recorded_at, hash)
                SELECT tenant_id, stream_id, 4, event_type, payload_version, data, metadata,
                       recorded_at, '\\x00'::bytea
                  FROM events
                 WHERE tenant_id = :tenant AND stream_id = :task AND stream_version = 3
            """),
            {"tenant": tenant_id, "task": task_id},
        )
    await digest_the_log(engine)

    result = await verify(tampered_database_url, tenant_id)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"broken: tenant {tenant_id}, task {task_id}, version 4: its hash does not match its "
        "content and the hash of version 3: the event was edited, or moved from another version"
    ]


async def test_an_insert_that_gives_no_hash_is_chained_by_the_database(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, task_id = await tenant_with_history(db, engine, "copying")

    async with engine.begin() as conn:
        await conn.execute(
            sa.text("""
                INSERT INTO events (tenant_id, stream_id, stream_version, event_type,
                                    payload_version, data, metadata, recorded_at)
                SELECT tenant_id, stream_id, 4, event_type, payload_version, data, metadata,
                       recorded_at
                  FROM events
                 WHERE tenant_id = :tenant AND stream_id = :task AND stream_version = 3
            """),
            {"tenant": tenant_id, "task": task_id},
        )
    await digest_the_log(engine)

    assert (await verify(tampered_database_url, tenant_id)).exit_code == 0


async def heads(engine: AsyncEngine, tenant_id: str) -> dict[str, tuple[bytes, bytes]]:
    """Each live task's head as its view row keeps it, beside its latest event's hash."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("""
                SELECT v.task_id, v.head_hash, e.hash FROM task_view v
                  JOIN events e ON e.tenant_id = v.tenant_id AND e.stream_id = v.task_id
                               AND e.stream_version = v.version
                 WHERE v.tenant_id = :tenant
            """),
            {"tenant": tenant_id},
        )
        return {row.task_id: (row.head_hash, row.hash) for row in rows}


async def test_a_commands_head_is_its_tasks_latest_event(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    tenant_id, _ = await tenant_with_history(db, engine, "heads")

    kept = await heads(engine, tenant_id)

    assert len(kept) == 2
    assert all(head == latest for head, latest in kept.values())
    assert (await verify(tampered_database_url, tenant_id)).exit_code == 0


async def task_in_progress(
    db: Database, engine: AsyncEngine, name: str
) -> tuple[Caller, task_view.Current]:
    """A new tenant's caller, and its task of two events as a command reads it."""
    caller = await new_caller(engine, name)
    created = await create(db, caller, title="First")
    assert created.task is not None
    await service.run(db, caller, created.task.id, patch({"status": "in_progress"}))
    current = await task_view.load(db.pool, caller.principal.tenant_id, created.task.id)
    assert current is not None
    return caller, current


async def retitled(
    db: Database, caller: Caller, current: task_view.Current, title: str, *, head: bytes | None
) -> event_log.Head:
    """The task, read as `current`, retitled by an append of the test's own, given `head`."""
    now = clock.now()
    new_events = decide(patch({"title": title}), current.task, now)
    task = evolve(current.task, new_events[0], now)
    return await event_log.append(
        db.pool,
        caller.principal.tenant_id,
        current.task.id,
        current.version,
        new_events,
        {},
        now,
        task,
        head=head,
    )


async def test_an_append_given_no_head_chains_from_the_one_it_reads(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    caller, current = await task_in_progress(db, engine, "headless")
    tenant_id = caller.principal.tenant_id

    appended = await retitled(db, caller, current, "Renamed", head=None)
    await digest_the_log(engine)

    assert (await heads(engine, tenant_id))[current.task.id] == (appended.hash, appended.hash)
    assert (await verify(tampered_database_url, tenant_id)).exit_code == 0


async def test_a_stale_head_is_refused_with_its_version(
    db: Database, engine: AsyncEngine, tampered_database_url: str
) -> None:
    caller, current = await task_in_progress(db, engine, "stale")
    await service.run(db, caller, current.task.id, patch({"title": "Moved on"}))

    with pytest.raises(event_log.VersionConflict):
        await retitled(db, caller, current, "Stale", head=current.head)
    assert (await verify(tampered_database_url, caller.principal.tenant_id)).exit_code == 0


# The content the README defines an event's hash over, computed as it reads.
DEFINED_HASH = """
    SELECT sha256(:previous || convert_to(jsonb_build_array(
        CAST(:tenant AS text), CAST(:stream AS text), CAST(:version AS integer),
        CAST(:event_type AS text), CAST(:payload_version AS smallint),
        CAST(CAST(:data AS text) AS jsonb), CAST(CAST(:metadata AS text) AS jsonb),
        to_char(CAST(CAST(:recorded_at AS text) AS timestamptz) AT TIME ZONE 'UTC',
                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'UTF8'))
"""

COMPUTED_HASH = """
    SELECT event_hash(:previous, :tenant, :stream, :version, :event_type,
                      CAST(:payload_version AS smallint), CAST(CAST(:data AS text) AS jsonb),
                      CAST(CAST(:metadata AS text) AS jsonb),
                      CAST(CAST(:recorded_at AS text) AS timestamptz))
"""


@pytest.mark.parametrize(
    ("data", "tenant", "recorded_at"),
    [
        (
            '{"task": {"id": "t1", "title": "Call back", "tags": ["a", "b"]}}',
            "acme",
            "2026-12-06T10:00:00Z",
        ),
        (
            '{"b": 1, "aa": [], "c": {}, "ddd": null, "e": true, "f": false}',
            "acme",
            "2026-01-01T00:00:00.000001Z",
        ),
        (
            '{"text": "quote \\" backslash \\\\ newline \\n tab \\t bell \\u0007 é 漢字 😀"}',
            'a"b\\\\c',
            "2026-06-30T23:59:59.5+02:00",
        ),
        (
            '{"n": [0, -1, 1.50, 1e3, 12345678901234567890, 0.000001, -0.0]}',
            "ténant",
            "1999-12-31T12:00:00-11:30",
        ),
        ('[1, {"x": [{"y": {}}]}, "z"]', "acme", "2026-12-06T10:00:00Z"),
        ('"a scalar"', "acme", "2026-12-06T10:00:00Z"),
    ],
)
async def test_an_events_hash_is_sha256_of_the_content_the_readme_defines(
    engine: AsyncEngine, data: str, tenant: str, recorded_at: str
) -> None:
    values = {
        "previous": bytes(range(32)),
        "tenant": tenant,
        "stream": 'task "7"',
        "version": 42,
        "event_type": "TASK_UPDATED",
        "payload_version": 2,
        "data": data,
        "metadata": '{"actor": "key \\u00e9", "requestId": "r-1", "correlationId": "r-1"}',
        "recorded_at": recorded_at,
    }
    async with engine.connect() as conn:
        defined = await conn.scalar(sa.text(DEFINED_HASH), values)
        computed = await conn.scalar(sa.text(COMPUTED_HASH), values)

    assert len(defined) == 32
    assert computed == defined
