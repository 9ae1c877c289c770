"""Folding events into a task: no rules here, only the facts applied."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from domain.events import (
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskEvent,
    TaskReassigned,
    TaskSnoozed,
    TaskUpdated,
)
from domain.task import Status, Task


def with_wire_fields(task: Task, values: dict[str, Any]) -> Task:
    """The task with the given fields, named and shaped as on the wire, replaced."""
    return msgspec.convert({**msgspec.to_builtins(task), **msgspec.to_builtins(values)}, Task)


def evolve(task: Task | None, event: TaskEvent, recorded_at: datetime) -> Task | None:
    """The task after one event recorded at `recorded_at`; None once it is deleted."""
    if isinstance(event, TaskCreated):
        return event.task
    if isinstance(event, TaskDeleted):
        return None
    if task is None:
        raise ValueError(f"{type(event).__name__} before the task was created")
    replace = msgspec.structs.replace
    match event:
        case TaskUpdated(changes=changes):
            values = {name: change.after for name, change in changes.items()}
            return replace(with_wire_fields(task, values), updated_at=recorded_at)
        case TaskCompleted():
            return replace(
                task,
                status=Status.COMPLETED,
                outcome=event.outcome,
                completion_notes=event.completion_notes,
                completed_at=event.completed_at,
                updated_at=recorded_at,
            )
        case TaskReassigned():
            return replace(
                task,
                owner_id=event.new_owner_id,
                owner_name=event.new_owner_name,
                claim_status=event.claim_status,
                claimed_at=event.claimed_at,
                claimed_by=event.new_owner_id,
                updated_at=recorded_at,
            )
        case TaskSnoozed():
            reminders = task.agent_reminders
            if event.agent_reminders is not None:
                reminders = event.agent_reminders
            return replace(
                task,
                due_date=event.new_due_date,
                snoozed_until=event.new_due_date,
                snooze_count=event.snooze_count,
                agent_reminders=reminders,
                updated_at=recorded_at,
            )
    raise TypeError(f"unknown event {event!r}")


def fold(history: Iterable[tuple[TaskEvent, datetime]]) -> Task | None:
    """The task that a history of (event, recorded_at) pairs leaves behind."""
    task: Task | None = None
    for event, recorded_at in history:
        task = evolve(task, event, recorded_at)
    return task
