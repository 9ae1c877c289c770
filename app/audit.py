"""Audit tooling over the log: export a tenant's events, import an export into another
database's log, replay a task to a moment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import clock
from app.copied_events import append_copies
from app.published_events import AuditEvent
from app.store.tables import tenants
from domain.events import event_type
from domain.task import Task
from projections.log import Checkpoint, RecordedEvent, checkpoint_of, read_after, replay_at, stream
from projections.log_digest import Digest
from projections.tables import events

EXPORT_BATCH = 1000
IMPORT_BATCH = 1000


def export_line(event: RecordedEvent) -> bytes:
    """An event as an export's NDJSON line: the feed's shape, its payload as the log stores
    it (see AuditEvent)."""
    return msgspec.json.encode(AuditEvent.of(event, as_stored=True)) + b"\n"


async def export_events(
    engine: AsyncEngine,
    tenant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    task_id: str | None = None,
) -> AsyncIterator[RecordedEvent]:
    """The tenant's events in commit order, a batch in memory at a time: every event
    committed when the export began, read from that one snapshot. (A follower of the log
    stops at the oldest transaction in flight anywhere in the cluster; a snapshot has no
    event committing late to wait for.)"""
    checkpoint = Checkpoint()
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        # The snapshot is read-only and may wait on a slow reader of the output.
        await conn.execute(sa.text("SET LOCAL idle_in_transaction_session_timeout = 0"))
        while True:
            batch = await read_after(
                conn, checkpoint, EXPORT_BATCH, tenant_id=tenant_id, horizon=False
            )
            for event in batch:
                if _selected(event, since, until, task_id):
                    yield event
            if len(batch) < EXPORT_BATCH:
                return
            checkpoint = checkpoint_of(batch[-1])


def _selected(
    event: RecordedEvent, since: datetime | None, until: datetime | None, task_id: str | None
) -> bool:
    return (
        (since is None or event.recorded_at >= since)
        and (until is None or event.recorded_at <= until)
        and (task_id is None or event.stream_id == task_id)
    )


@dataclass(frozen=True)
class TaskAt:
    """A task at a moment, as its whole history tells it: the task, or why there was none."""

    task: Task | None
    # When the task was created; None when the tenant has no task of that id.
    created_at: datetime | None
    # When it was deleted, if that was at or before the moment.
    deleted_at: datetime | None


async def task_at(engine: AsyncEngine, tenant_id: str, task_id: str, moment: datetime) -> TaskAt:
    """The task as it stood at `moment`, replayed from its events recorded up to then."""
    async with engine.connect() as conn:
        history = await stream(conn, tenant_id, task_id)
    until = [event for event in history if event.recorded_at <= moment]
    deletions = [event.recorded_at for event in until if event.type == "TASK_DELETED"]
    return TaskAt(
        task=replay_at(until),
        created_at=history[0].recorded_at if history else None,
        deleted_at=deletions[-1] if deletions else None,
    )


class ImportRefused(Exception):
    """The export cannot be appended to this log as it is; nothing of it was kept."""


@dataclass
class Imported:
    events: int = 0
    created_tenants: list[str] = field(default_factory=list)
    # The imported events' hashes folded in the export's order, as `audit export` prints it.
    digest: Digest = field(default_factory=Digest)


@dataclass(frozen=True)
class _Line:
    number: int
    event: AuditEvent
    recorded: RecordedEvent


async def import_events(
    engine: AsyncEngine,
    lines: Iterable[bytes],
    tenant_name: str | None = None,
    expected_digest: bytes | None = None,
) -> Imported:
    """Append an export's events to this database's log, in the export's order and in one
    transaction, a batch in memory at a time. Each gets a new position and transaction id;
    tenant, task, version, type, data, metadata and recorded time are kept.

    A tenant this database lacks is created with the same id, named `tenant_name` (else its
    id), without API keys. The import is refused whole (ImportRefused) at an event that is
    not a valid one, whose task here already has that version or lacks the one before, or
    whose hash differs from the one its content and its task's chain give here; and, given
    the digest `audit export` printed, when the events do not fold to it: an event was
    removed (a task's last ones too, which no chain shows), added or moved."""
    imported = Imported()
    async with engine.begin() as conn:
        # One transaction that waits on its input between statements, however slow it is.
        await conn.execute(sa.text("SET LOCAL idle_in_transaction_session_timeout = 0"))
        for batch in _batches(lines):
            await _create_missing_tenants(conn, batch, tenant_name, imported)
            await _check_versions_follow(conn, batch)
            await _append(conn, batch)
            imported.events += len(batch)
            imported.digest = imported.digest.extended(line.recorded for line in batch)
        if expected_digest is not None and imported.digest.value != expected_digest:
            raise ImportRefused(
                f"its {imported.events} events fold to the digest "
                f"{imported.digest.value.hex()}, not to {expected_digest.hex()}: events were "
                "removed, added or moved since the export"
            )
    return imported


def _batches(lines: Iterable[bytes]) -> Iterable[list[_Line]]:
    decoder = msgspec.json.Decoder(AuditEvent)
    batch: list[_Line] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = decoder.decode(line)
            recorded = event.recorded()
            payload = recorded.decode()
        except (msgspec.MsgspecError, KeyError) as error:
            raise ImportRefused(f"line {number}: not an exported event ({error})") from None
        if event_type(payload) != event.type:
            raise ImportRefused(f"line {number}: a {event.type} whose data is another event's")
        batch.append(_Line(number, event, recorded))
        if len(batch) == IMPORT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _create_missing_tenants(
    conn: AsyncConnection, batch: Sequence[_Line], name: str | None, imported: Imported
) -> None:
    for tenant_id in sorted({line.event.tenant_id for line in batch}):
        created = await conn.execute(
            insert(tenants)
            .values(
                tenant_id=tenant_id,
                name=name or tenant_id,
                tier="starter",
                created_at=clock.now(),
            )
            .on_conflict_do_nothing()
        )
        if created.rowcount:
            imported.created_tenants.append(tenant_id)


async def _check_versions_follow(conn: AsyncConnection, batch: Sequence[_Line]) -> None:
    """Each event's version is the one after its task's last here (0 for a new task): this
    log keeps every stream's versions gapless, and never takes a version twice."""
    keys = {(line.event.tenant_id, line.event.task_id) for line in batch}
    c = events.c
    rows = await conn.execute(
        sa.select(c.tenant_id, c.stream_id, sa.func.max(c.stream_version))
        .where(sa.tuple_(c.tenant_id, c.stream_id).in_(sorted(keys)))
        .group_by(c.tenant_id, c.stream_id)
    )
    last = {(tenant_id, task_id): version for tenant_id, task_id, version in rows}
    for line in batch:
        event, key = line.event, (line.event.tenant_id, line.event.task_id)
        had = last.get(key, 0)
        if event.version <= had:
            raise ImportRefused(
                f"line {line.number}: task {event.task_id} of tenant {event.tenant_id} "
                f"already has version {event.version} in this database"
            )
        if event.version != had + 1:
            raise ImportRefused(
                f"line {line.number}: task {event.task_id} of tenant {event.tenant_id} "
                f"has version {event.version} but not version {had + 1} in this database "
                "(was the export cut by --since, --until or --task?)"
            )
        last[key] = event.version


async def _append(conn: AsyncConnection, batch: Sequence[_Line]) -> None:
    try:
        altered = await append_copies(conn, [line.recorded for line in batch])
    except IntegrityError as error:
        raise ImportRefused(f"lines {batch[0].number}-{batch[-1].number}: {error.orig}") from None
    if altered is not None:
        line = batch[altered]
        raise ImportRefused(
            f"line {line.number}: version {line.event.version} of task {line.event.task_id} "
            f"of tenant {line.event.tenant_id} does not match its hash: the export was "
            "altered there, or at an earlier version of that task"
        )
