"""Appending to the event log: a stream's new events, the task view they leave and the
command's answer, in one statement (the function append_to_stream, migration 0012)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
import msgspec
from asyncpg.exceptions import ObjectNotInPrerequisiteStateError, UniqueViolationError

from domain.events import TaskEvent, event_type
from domain.task import Task
from projections.log import payload_version
from projections.task_view import row_of

# How long a command's answer is replayed to retries of its Idempotency-Key.
ANSWERS_KEPT = timedelta(hours=24)

# The task's row travels as JSON text, whatever codec the connection has for jsonb.
_APPEND = (
    "SELECT append_to_stream($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, "
    "$11, $12, $13, $14, $15, $16)"
)


class Head(NamedTuple):
    """A stream's latest version and the hash of its event there, which the stream's next
    event chains from."""

    version: int
    # None for a stream whose head was neither given nor appended to.
    hash: bytes | None


class VersionConflict(Exception):
    """Another writer appended to the stream since it was read."""


class TenantMoving(Exception):
    """The tenant's cell refuses its writes: it is being moved to another cell, or has been
    (and this process has not heard yet). Worth a retry in a moment, on the target."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(tenant_id)
        self.tenant_id = tenant_id


class AlreadyAnswered(Exception):
    """A live answer is recorded for the Idempotency-Key: another request with it came first."""


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """A command's answer, recorded with its Idempotency-Key and replayed to its retries.
    `fingerprint` is what the request asked for: the same key with another request is a
    conflict."""

    key: str
    fingerprint: bytes
    status_code: int
    body: bytes
    etag: str | None


async def append(
    conn: asyncpg.Connection,
    tenant_id: str,
    stream_id: str,
    expected_version: int,
    new_events: Sequence[TaskEvent],
    metadata: dict[str, Any],
    recorded_at: datetime,
    task: Task | None,
    answer: RecordedAnswer | None = None,
    *,
    head: bytes | None = None,
) -> Head:
    """Append events after `expected_version`, the first chained to `head` (the hash read
    with that version; None: read here), and make the task view hold `task` (None: the task
    is deleted), recording `answer` with them; the stream's new head. VersionConflict when
    another writer took the version first, AlreadyAnswered when the answer's key has one,
    TenantMoving when the cell refuses the tenant's writes (app/moves.py).
    Outside a transaction, the statement is its own, and commits; inside one, it joins it."""
    version = expected_version + len(new_events)
    names = [event_type(event) for event in new_events]
    row = None if task is None else msgspec.json.encode(row_of(tenant_id, version, task)).decode()
    try:
        new_head = await conn.fetchval(
            _APPEND,
            tenant_id,
            stream_id,
            expected_version,
            head,
            names,
            [payload_version(name) for name in names],
            [msgspec.json.encode(event).decode() for event in new_events],
            msgspec.json.encode(metadata).decode(),
            recorded_at,
            row,
            *_answer_arguments(answer, recorded_at),
        )
    except UniqueViolationError as error:
        if error.constraint_name == "events_stream_version":
            raise VersionConflict(stream_id) from error
        if error.constraint_name == "idempotency_records_pkey":
            raise AlreadyAnswered(answer.key if answer else "") from error
        raise
    except ObjectNotInPrerequisiteStateError as error:
        if error.constraint_name == "tenant_fences":
            raise TenantMoving(tenant_id) from error
        raise
    return Head(version, new_head if new_events else head)


def _answer_arguments(answer: RecordedAnswer | None, now: datetime) -> list[Any]:
    if answer is None:
        return [None] * 6
    return [
        answer.key,
        answer.fingerprint,
        answer.status_code,
        answer.body,
        answer.etag,
        now - ANSWERS_KEPT,
    ]
