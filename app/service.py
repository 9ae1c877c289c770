"""The use cases: each command reads its task, decides, and appends its events with the task
view they leave in one statement. A command is two round trips (a new task's, one), none of
them inside a transaction held open while Python decides.

A command that loses a race on its task's version (another command appended first) goes
again, this time queued on the task's stream lock in a transaction that reads and appends
under it, so no update is lost however many race, and no writer is starved."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app import clock, ids, metrics
from app.database import Database
from app.logs import log_info
from app.store import event_log
from app.store.event_log import RecordedAnswer
from app.tenants import Principal
from domain import decide as rules
from domain.commands import CreateTask, TaskCommand
from domain.events import TaskEvent, event_type
from domain.evolve import evolve
from domain.task import Task
from projections import task_view
from store.pool import connection
from store.tenant import tenant_transaction

# Attempts at a command before it is answered 409: the first without the stream lock, the
# rest under it (only a writer that does not queue on the lock can make them conflict).
MAX_ATTEMPTS = 5

audit_log = logging.getLogger("tasks_api.audit")


class TaskNotFound(Exception):
    pass


class StaleVersion(Exception):
    """If-Match named a version the task has moved past."""

    def __init__(self, current_version: int) -> None:
        super().__init__(current_version)
        self.current_version = current_version


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    request_id: str

    def event_metadata(self) -> dict[str, str]:
        return {
            "actor": self.principal.key_id,
            "requestId": self.request_id,
            "correlationId": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A task after a command (None once deleted) and its version."""

    task: Task | None
    version: int


# The answer to record with the command's events for its Idempotency-Key, made from its result.
Recorder = Callable[[CommandResult], RecordedAnswer]


async def create_task(
    db: Database, caller: Caller, command: CreateTask, record: Recorder | None = None
) -> CommandResult:
    """A new task: one round trip."""
    task_id, now = ids.new_id(), clock.now()
    new_events = rules.create(command, task_id, now)
    result = _after(None, 0, new_events, now)
    async with connection(db.pool) as conn:
        await event_log.append(
            conn,
            caller.principal.tenant_id,
            task_id,
            0,
            new_events,
            caller.event_metadata(),
            now,
            result.task,
            None if record is None else record(result),
        )
    _appended(db, caller, task_id, 0, new_events)
    return result


async def run(
    db: Database,
    caller: Caller,
    task_id: str,
    command: TaskCommand,
    if_match: Collection[int] | None = None,
    record: Recorder | None = None,
) -> CommandResult:
    """Carry out a command on a task: TaskNotFound, StaleVersion or RuleViolation otherwise.
    With `if_match`, only while the task's version is one of those it names."""
    attempt = _Attempt(caller, task_id, command, if_match, record)
    try:
        async with connection(db.pool) as conn:
            result, new_events = await attempt.on(conn)
    except event_log.VersionConflict:
        metrics.VERSION_CONFLICTS.inc()
        result, new_events = await _queued(db.pool, attempt)
    if new_events:
        _appended(db, caller, task_id, result.version - len(new_events), new_events)
    return result


async def _queued(pool: asyncpg.Pool, attempt: _Attempt) -> tuple[CommandResult, list[TaskEvent]]:
    tenant_id = attempt.caller.principal.tenant_id
    for _ in range(MAX_ATTEMPTS - 1):
        metrics.COMMAND_RETRIES.inc()
        try:
            async with tenant_transaction(pool, tenant_id, stream_id=attempt.task_id) as conn:
                return await attempt.on(conn)
        except event_log.VersionConflict:
            metrics.VERSION_CONFLICTS.inc()
    raise event_log.VersionConflict(attempt.task_id)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """A command on a task, to be tried on a connection: the task read, the rules applied,
    the events appended; the result and the events, or VersionConflict."""

    caller: Caller
    task_id: str
    command: TaskCommand
    if_match: Collection[int] | None
    record: Recorder | None

    async def on(self, conn: asyncpg.Connection) -> tuple[CommandResult, list[TaskEvent]]:
        tenant_id = self.caller.principal.tenant_id
        current = await task_view.load(conn, tenant_id, self.task_id)
        if current is None:
            raise TaskNotFound(self.task_id)
        task, version, head = current
        if self.if_match is not None and version not in self.if_match:
            raise StaleVersion(version)
        now = clock.now()
        new_events = rules.decide(self.command, task, now)
        result = _after(task, version, new_events, now)
        if new_events or self.record is not None:
            await event_log.append(
                conn,
                tenant_id,
                self.task_id,
                version,
                new_events,
                self.caller.event_metadata(),
                now,
                result.task,
                None if self.record is None else self.record(result),
                head=head,
            )
        return result, new_events


def _after(
    task: Task | None, version: int, new_events: list[TaskEvent], now: datetime
) -> CommandResult:
    for event in new_events:
        task = evolve(task, event, now)
    return CommandResult(task, version + len(new_events))


def _appended(
    db: Database, caller: Caller, task_id: str, version: int, new_events: list[TaskEvent]
) -> None:
    """What follows a command's commit: the runners told, the audit log and metrics."""
    db.notices.appended()
    for offset, event in enumerate(new_events, start=1):
        name = event_type(event)
        fields = {
            "type": name,
            "tenantId": caller.principal.tenant_id,
            "taskId": task_id,
            "version": version + offset,
            "actor": caller.principal.key_id,
            "requestId": caller.request_id,
        }
        log_info(audit_log, name, fields)
        metrics.EVENTS_APPENDED.labels(name).inc()
