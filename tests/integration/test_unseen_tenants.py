"""A tenant the planner's statistics have not seen yet (created since the last ANALYZE, or
moved in from another cell) is served by key, not by scanning its rows: an append to one of
its tasks reads that task's head, whatever the statistics say the tenant holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import pytest

from app.store import event_log
from tests.database import migrated_database
from tests.unit.tasks import creation_events

pytestmark = pytest.mark.asyncio

SEEN_TENANTS = 4
UNSEEN_EVENTS = 50_000
VERSIONS = 10
APPENDS = 10
# Blocks of the events table's tenant-leading indexes an append may touch: inserting its
# entries, a few levels each. Scanning the tenant's 50,000 entries instead reads a hundred.
BLOCKS_PER_APPEND = 12
TENANT_LEADING_INDEXES = ["events_pkey", "events_tenant_commit_order"]

# Events of `$1` tenant: `$2` tasks of VERSIONS versions each. Their hashes are no chain (the
# test reads them, never verifies them); given, they spare the trigger that chains.
_SEED = f"""
    INSERT INTO events (tenant_id, stream_id, stream_version, event_type, payload_version,
                        data, metadata, recorded_at, hash)
    SELECT $1, 'task' || (i / {VERSIONS}), i % {VERSIONS} + 1, 'TASK_UPDATED', 1,
           '{{}}', '{{}}', now(), '\\x00'
      FROM generate_series(0, $2 * {VERSIONS} - 1) i
"""
_BLOCKS = "SELECT sum(pg_stat_get_blocks_fetched(oid)) FROM pg_class WHERE relname = ANY($1)"


@pytest.fixture(scope="module")
def unseen_database_url(database_url: str) -> Iterator[str]:
    with migrated_database(database_url) as url:
        yield url


async def index_blocks(conn: asyncpg.Connection) -> int:
    """Blocks of the tenant-leading indexes read so far, this session's reads included."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    return int(await conn.fetchval(_BLOCKS, TENANT_LEADING_INDEXES))


async def test_an_append_to_a_task_of_an_unseen_tenant_reads_its_head_by_key(
    unseen_database_url: str,
) -> None:
    conn = await asyncpg.connect(unseen_database_url)
    try:
        for n in range(SEEN_TENANTS):
            await conn.execute(_SEED, f"seen-{n}", 500)
        await conn.execute("ANALYZE events")
        await conn.execute(_SEED, "unseen", UNSEEN_EVENTS // VERSIONS)
        event = creation_events({"title": "Appended"})[0]
        before = await index_blocks(conn)
        for version in range(VERSIONS, VERSIONS + APPENDS):
            await event_log.append(
                conn,
                "unseen",
                "task7",
                version,
                [event],
                {"actor": "test"},
                datetime.now(UTC),
                None,
            )
        read = await index_blocks(conn) - before
    finally:
        await conn.close()
    assert read < APPENDS * BLOCKS_PER_APPEND, f"{read} index blocks for {APPENDS} appends"
