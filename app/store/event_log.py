"""Appending to and reading from the event log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from asyncpg.exceptions import UniqueViolationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tenant_scope import driver_errors
from domain.events import TaskEvent, event_type
from domain.task import Task
from projections import task_view
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


# The events, as arrays of one row each, appended by the first part of the statement.
_APPEND = (
    "WITH appended AS (INSERT INTO events (tenant_id, stream_id, stream_version, event_type, "
    "payload_version, data, metadata, recorded_at) "
    "SELECT $1, $2, version, type, payload_version, data::jsonb, $3::text::jsonb, $4 "
    "FROM unnest($5::int[], $6::text[], $7::smallint[], $8::text[]) "
    "AS e(version, type, payload_version, data)) "
)
_APPEND_AND_VIEW = _APPEND + task_view.view_sql(9)
_APPEND_AND_FORGET = _APPEND + "DELETE FROM task_view WHERE tenant_id = $1 AND task_id = $2"


async def append_and_project(
    conn: AsyncConnection,
    tenant_id: str,
    stream_id: str,
    expected_version: int,
    new_events: Sequence[TaskEvent],
    metadata: dict[str, Any],
    recorded_at: datetime,
    task: Task | None,
) -> int:
    """`append`, and the task view made to hold `task` (None: deleted), in one statement:
    the command's one round trip between entering the tenant and committing."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    names = [event_type(event) for event in new_events]
    version = expected_version + len(new_events)
    arguments = [
        tenant_id,
        stream_id,
        msgspec.json.encode(metadata).decode(),
        recorded_at,
        list(range(expected_version + 1, version + 1)),
        names,
        [payload_version(name) for name in names],
        [msgspec.json.encode(event).decode() for event in new_events],
    ]
    try:
        async with driver_errors(conn):
            if task is None:
                await driver.execute(_APPEND_AND_FORGET, *arguments)
            else:
                view = task_view.view_parameters(tenant_id, version, task)
                await driver.execute(_APPEND_AND_VIEW, *arguments, *view)
    except UniqueViolationError as error:
        if error.constraint_name == "events_stream_version":
            raise VersionConflict(stream_id) from error
        raise
    return version


def _is_version_clash(error: IntegrityError) -> bool:
    cause = error.orig.__cause__ if error.orig is not None else None
    return (
        isinstance(cause, UniqueViolationError) and cause.constraint_name == "events_stream_version"
    )
