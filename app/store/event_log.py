"""Appending to and reading from the event log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from asyncpg.exceptions import UniqueViolationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import TaskEvent, event_type
from projections.tables import events

PAYLOAD_VERSION = 1


class VersionConflict(Exception):
    """Another writer appended to the stream since it was read."""


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the log holds it."""

    position: int
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    def decode(self) -> TaskEvent:
        return msgspec.convert(self.data, TaskEvent)  # type: ignore[arg-type]


async def append(
    conn: AsyncConnection,
    tenant_id: str,
    stream_id: str,
    expected_version: int,
    new_events: Sequence[TaskEvent],
    metadata: dict[str, Any],
    recorded_at: datetime,
) -> int:
    """Append events after `expected_version`; the stream's new version, or VersionConflict."""
    rows = [
        {
            "tenant_id": tenant_id,
            "stream_id": stream_id,
            "stream_version": expected_version + offset,
            "event_type": event_type(event),
            "payload_version": PAYLOAD_VERSION,
            "data": msgspec.to_builtins(event),
            "metadata": metadata,
            "recorded_at": recorded_at,
        }
        for offset, event in enumerate(new_events, start=1)
    ]
    try:
        await conn.execute(events.insert(), rows)
    except IntegrityError as error:
        if _is_version_clash(error):
            raise VersionConflict(stream_id) from error
        raise
    return expected_version + len(rows)


def _is_version_clash(error: IntegrityError) -> bool:
    cause = error.orig.__cause__ if error.orig is not None else None
    return (
        isinstance(cause, UniqueViolationError) and cause.constraint_name == "events_stream_version"
    )


async def stream(
    conn: AsyncConnection, tenant_id: str, stream_id: str, *, until: datetime | None = None
) -> list[RecordedEvent]:
    """A stream's events, oldest first; with `until`, those recorded up to that time."""
    query = (
        sa.select(
            events.c.global_position,
            events.c.stream_version,
            events.c.event_type,
            events.c.data,
            events.c.metadata,
            events.c.recorded_at,
        )
        .where(events.c.tenant_id == tenant_id, events.c.stream_id == stream_id)
        .order_by(events.c.stream_version)
    )
    if until is not None:
        query = query.where(events.c.recorded_at <= until)
    return [RecordedEvent(*row) for row in await conn.execute(query)]
