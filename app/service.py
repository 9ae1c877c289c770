"""The use cases: each command runs as one short transaction that appends its events and
projects the task view. A writer that loses a race on the stream version reloads and retries,
so no update is lost."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import clock, ids, metrics
from app.store import append_notices, event_log
from app.store.tenant_scope import tenant_connection
from app.tenants import Principal
from domain import decide as rules
from domain.commands import CreateTask, TaskCommand
from domain.events import TaskEvent, event_type
from domain.evolve import evolve
from domain.task import Task
from projections import task_view

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


# Work that must commit or roll back with the command, e.g. recording its response.
BeforeCommit = Callable[[AsyncConnection, CommandResult], Awaitable[None]]


async def create_task(
    engine: AsyncEngine,
    caller: Caller,
    command: CreateTask,
    before_commit: BeforeCommit | None = None,
) -> CommandResult:
    task_id = ids.new_id()
    now = clock.now()
    new_events = rules.create(command, task_id, now)
    async with tenant_connection(engine, caller.principal.tenant_id) as conn:
        result = await _append(conn, caller, task_id, None, 0, new_events, now, before_commit)
    _appended(engine, caller, task_id, 0, new_events)
    return result


async def run(
    engine: AsyncEngine,
    caller: Caller,
    task_id: str,
    command: TaskCommand,
    if_match: Collection[int] | None = None,
    before_commit: BeforeCommit | None = None,
) -> CommandResult:
    """Carry out a command on a task: TaskNotFound, StaleVersion or RuleViolation otherwise.
    With `if_match`, only while the task's version is one of those it names."""
    for attempt in range(MAX_ATTEMPTS):
        if attempt > 0:
            metrics.COMMAND_RETRIES.inc()
        try:
            return await _attempt(engine, caller, task_id, command, if_match, before_commit)
        except event_log.VersionConflict:
            metrics.VERSION_CONFLICTS.inc()
            continue
    raise event_log.VersionConflict(task_id)


async def _attempt(
    engine: AsyncEngine,
    caller: Caller,
    task_id: str,
    command: TaskCommand,
    if_match: Collection[int] | None,
    before_commit: BeforeCommit | None,
) -> CommandResult:
    # Holding the task's stream lock, the command reads the task as the last one left it.
    tenant_id = caller.principal.tenant_id
    async with tenant_connection(engine, tenant_id, stream_id=task_id) as conn:
        current = await task_view.load(conn, tenant_id, task_id)
        if current is None:
            raise TaskNotFound(task_id)
        task, version = current
        if if_match is not None and version not in if_match:
            raise StaleVersion(version)
        now = clock.now()
        new_events = rules.decide(command, task, now)
        if not new_events:
            result = CommandResult(task, version)
            if before_commit is not None:
                await before_commit(conn, result)
            return result
        result = await _append(conn, caller, task_id, task, version, new_events, now, before_commit)
    _appended(engine, caller, task_id, version, new_events)
    return result


async def _append(
    conn: AsyncConnection,
    caller: Caller,
    task_id: str,
    task: Task | None,
    version: int,
    new_events: list[TaskEvent],
    now: datetime,
    before_commit: BeforeCommit | None,
) -> CommandResult:
    tenant_id = caller.principal.tenant_id
    for event in new_events:
        task = evolve(task, event, now)
    new_version = await event_log.append_and_project(
        conn, tenant_id, task_id, version, new_events, caller.event_metadata(), now, task
    )
    result = CommandResult(task, new_version)
    if before_commit is not None:
        await before_commit(conn, result)
    return result


def _appended(
    engine: AsyncEngine, caller: Caller, task_id: str, version: int, new_events: list[TaskEvent]
) -> None:
    """What follows a command's commit: the runners told, the audit log and metrics."""
    append_notices.appended(engine)
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
        audit_log.info(name, extra={"fields": fields})
        metrics.EVENTS_APPENDED.labels(name).inc()
