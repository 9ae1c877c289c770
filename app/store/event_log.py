"""Appending to and reading from the event log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from asyncpg.exceptions import UniqueViolationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import TaskEvent, event_type
from projections.log import payload_version
from projections.tables import events


class VersionConflict(Exception):
    """Another writer appended to the stream since it was read."""


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
            "payload_version": payload_version(event_type(event)),
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
