"""Idempotent retries: the first answer to a command sent with an Idempotency-Key is recorded
in the statement that appends the command's events, and replayed to every retry for 24 hours.

A retry that arrives while the first request is still running waits on the record's key until
that request commits, then replays its answer: however many retries race, the work is done
once. A retry that arrives later does the command's reading and deciding again, and finds the
answer recorded as it would append: nothing is appended twice, and no request pays a lookup
before its work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from app import clock
from app.database import Database
from app.service import CommandResult, Recorder, StaleVersion, TaskNotFound
from app.store.event_log import ANSWERS_KEPT, AlreadyAnswered, RecordedAnswer, VersionConflict
from domain.errors import RuleViolation
from store.tenant import tenant_transaction

KEY_MAX = 255


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    tenant_id: str
    key: str
    # What the request asked for: the same key with another request is a conflict.
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    """What a command answers its client; `replayed` when it is an earlier request's."""

    status_code: int
    body: bytes
    etag: str | None
    replayed: bool = False


class KeyReused(Exception):
    """The Idempotency-Key answered another request (another endpoint or body)."""


# The command to carry out, given what records its answer (None: nothing to record).
Command = Callable[[Recorder | None], Awaitable[CommandResult]]


async def answer_once(
    db: Database,
    request: IdempotentRequest | None,
    command: Command,
    render: Callable[[CommandResult], Answer],
) -> Answer:
    """The command's answer, or the one recorded for the request's key by an earlier request
    with it; KeyReused when that request was another."""
    if request is None:
        return render(await command(None))
    answers: list[Answer] = []

    def record(result: CommandResult) -> RecordedAnswer:
        answers.append(answer := render(result))
        return RecordedAnswer(
            request.key, request.fingerprint, answer.status_code, answer.body, answer.etag
        )

    try:
        await command(record)
    except (AlreadyAnswered, RuleViolation, StaleVersion, TaskNotFound, VersionConflict):
        # The first request with this key committed while this one ran: it recorded its
        # answer first, or this one, having waited on the task's lock, found its work done
        # (the task completed, deleted) and was refused. Either way the first's answer is
        # this one's.
        if (earlier := await recorded(db.pool, request)) is not None:
            return earlier
        raise
    return answers[-1]


_RECORDED = (
    "SELECT fingerprint, status_code, body, etag FROM idempotency_records"
    " WHERE tenant_id = $1 AND idempotency_key = $2 AND created_at > $3"
)


async def recorded(pool: asyncpg.Pool, request: IdempotentRequest) -> Answer | None:
    """The answer recorded for the request's key within the last 24 hours; KeyReused if it
    answered another request."""
    async with tenant_transaction(pool, request.tenant_id) as conn:
        row = await conn.fetchrow(
            _RECORDED, request.tenant_id, request.key, clock.now() - ANSWERS_KEPT
        )
    if row is None:
        return None
    if row["fingerprint"] != request.fingerprint:
        raise KeyReused(request.key)
    return Answer(row["status_code"], row["body"], row["etag"], replayed=True)
