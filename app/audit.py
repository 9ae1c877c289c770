"""Audit tooling over the log: export a tenant's events, replay a task to a moment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.task import Task
from projections.log import Checkpoint, RecordedEvent, checkpoint_of, read_after, replay_at, stream

EXPORT_BATCH = 1000


class ExportedEvent(msgspec.Struct, rename="camel"):
    """One line of an export: the event as the log holds it."""

    tenant_id: str
    task_id: str
    version: int
    position: int
    transaction_id: int
    type: str
    payload_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime


async def export_events(
    engine: AsyncEngine,
    tenant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    task_id: str | None = None,
) -> AsyncIterator[bytes]:
    """The tenant's events in commit order as NDJSON lines, a batch in memory at a time."""
    checkpoint = Checkpoint()
    while True:
        async with engine.connect() as conn:
            batch = await read_after(conn, checkpoint, EXPORT_BATCH, tenant_id=tenant_id)
        for event in batch:
            if _selected(event, since, until, task_id):
                yield msgspec.json.encode(_exported(event)) + b"\n"
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


def _exported(event: RecordedEvent) -> ExportedEvent:
    return ExportedEvent(
        tenant_id=event.tenant_id,
        task_id=event.stream_id,
        version=event.version,
        position=event.position,
        transaction_id=event.transaction_id,
        type=event.type,
        payload_version=event.payload_version,
        data=event.data,
        metadata=event.metadata,
        recorded_at=event.recorded_at,
    )


async def task_at(
    engine: AsyncEngine, tenant_id: str, task_id: str, moment: datetime
) -> Task | None:
    """The task as it stood at `moment`; None if it did not exist then."""
    async with engine.connect() as conn:
        return replay_at(await stream(conn, tenant_id, task_id, until=moment))
