"""Appending to and reading from the event log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from asyncpg.exceptions import UniqueViolationError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tenant_scope import driver_errors
from domain.events import TaskEvent, event_type
from domain.task import Task
from projections import task_view
from projections.driver import driver_connection
from projections.log import payload_version


class VersionConflict(Exception):
    """Another writer appended to the stream since it was read."""


# A stream's new events, one array element each: one statement whatever their number.
_INSERT_EVENTS = (
    "INSERT INTO events (tenant_id, stream_id, stream_version, event_type, payload_version, "
    "data, metadata, recorded_at) "
    "SELECT $1, $2, version, type, payload_version, data::jsonb, $3::text::jsonb, $4 "
    "FROM unnest($5::int[], $6::text[], $7::smallint[], $8::text[]) "
    "AS e(version, type, payload_version, data)"
)
_APPEND_AND_VIEW = f"WITH appended AS ({_INSERT_EVENTS}) {task_view.view_sql(9)}"
_APPEND_AND_FORGET = (
    f"WITH appended AS ({_INSERT_EVENTS}) "
    "DELETE FROM task_view WHERE tenant_id = $1 AND task_id = $2"
)


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
    arguments = _event_arguments(
        tenant_id, stream_id, expected_version, new_events, metadata, recorded_at
    )
    await _execute(conn, stream_id, _INSERT_EVENTS, arguments)
    return expected_version + len(new_events)


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
    version = expected_version + len(new_events)
    arguments = _event_arguments(
        tenant_id, stream_id, expected_version, new_events, metadata, recorded_at
    )
    if task is None:
        await _execute(conn, stream_id, _APPEND_AND_FORGET, arguments)
    else:
        view = task_view.view_parameters(tenant_id, version, task)
        await _execute(conn, stream_id, _APPEND_AND_VIEW, [*arguments, *view])
    return version


def _event_arguments(
    tenant_id: str,
    stream_id: str,
    expected_version: int,
    new_events: Sequence[TaskEvent],
    metadata: dict[str, Any],
    recorded_at: datetime,
) -> list[Any]:
    names = [event_type(event) for event in new_events]
    return [
        tenant_id,
        stream_id,
        msgspec.json.encode(metadata).decode(),
        recorded_at,
        list(range(expected_version + 1, expected_version + len(new_events) + 1)),
        names,
        [payload_version(name) for name in names],
        [msgspec.json.encode(event).decode() for event in new_events],
    ]


async def _execute(conn: AsyncConnection, stream_id: str, sql: str, arguments: list[Any]) -> None:
    # On the driver's own connection, inside the transaction SQLAlchemy began: SQLAlchemy's
    # work per statement was a measurable share of a command's time.
    driver = await driver_connection(conn)
    try:
        async with driver_errors(conn):
            await driver.execute(sql, *arguments)
    except UniqueViolationError as error:
        if error.constraint_name == "events_stream_version":
            raise VersionConflict(stream_id) from error
        raise
