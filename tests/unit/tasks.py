"""Tasks built the way the service builds them: commands decoded from wire bodies, decided
at a given time, and their events folded. No database, no clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from app.http.json_document import decode_command
from domain.commands import (
    CompleteTask,
    CreateTask,
    ReassignTask,
    SnoozeTask,
    TaskChanges,
    TaskCommand,
    UpdateTask,
)
from domain.decide import create, decide
from domain.events import TaskEvent
from domain.evolve import evolve, fold
from domain.task import Task

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
TASK_ID = "67c57140aa00000000000001"

CommandType = TypeVar("CommandType")


def decoded(command_type: type[CommandType], body: dict[str, Any]) -> CommandType:
    """A command decoded from a JSON request body, as the HTTP layer decodes it."""
    return decode_command(msgspec.json.encode(body), command_type)


def put(body: dict[str, Any]) -> UpdateTask:
    return UpdateTask(decoded(TaskChanges, body), merge=False)


def patch(body: dict[str, Any]) -> UpdateTask:
    return UpdateTask(decoded(TaskChanges, body), merge=True)


def complete(body: dict[str, Any] | None = None) -> CompleteTask:
    return decoded(CompleteTask, body or {})


def snooze(new_due_date: datetime, **body: Any) -> SnoozeTask:
    return decoded(SnoozeTask, {"newDueDate": new_due_date.isoformat(), **body})


def reassign(new_owner_id: str, new_owner_name: str | None = None) -> ReassignTask:
    return decoded(ReassignTask, {"newOwnerId": new_owner_id, "newOwnerName": new_owner_name})


def creation_events(body: dict[str, Any], now: datetime = NOW) -> list[TaskEvent]:
    return create(decoded(CreateTask, {"title": "Call back", **body}), TASK_ID, now)


def created(body: dict[str, Any] | None = None, now: datetime = NOW) -> Task:
    """A task created from a body (title "Call back" unless given) at `now`."""
    task = fold((event, now) for event in creation_events(body or {}, now))
    assert task is not None
    return task


def applied(task: Task, events: Sequence[TaskEvent], at: datetime = LATER) -> Task | None:
    """The task after events recorded at `at`."""
    result: Task | None = task
    for event in events:
        result = evolve(result, event, at)
    return result


def after(task: Task, command: TaskCommand, at: datetime = LATER) -> Task:
    """The task once a command decided at `at` has been carried out; it must still exist."""
    result = applied(task, decide(command, task, at), at)
    assert result is not None
    return result
