"""The facts a task's history is made of: exactly the reference's audit events.

Each event says what changed, from what to what, so that the log alone rebuilds every
read model and answers an auditor. On the wire an event is tagged by its audit name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from domain.task import ClaimStatus, Outcome, Status, Task


class Event(msgspec.Struct, frozen=True, kw_only=True, rename="camel", tag_field="type"):
    """Base of every event; `type` on the wire is the audit event name."""


# Each event repeats frozen=True: msgspec inherits it, but type checkers read it per class.


class TaskCreated(Event, tag="TASK_CREATED", frozen=True):
    task: Task


class Change(msgspec.Struct, frozen=True, rename={"before": "from", "after": "to"}):
    """One field's value before and after, in its wire form."""

    before: Any
    after: Any


class TaskUpdated(Event, tag="TASK_UPDATED", frozen=True):
    """Fields set to new values, keyed by their wire names."""

    changes: dict[str, Change]


class TaskCompleted(Event, tag="TASK_COMPLETED", frozen=True):
    outcome: Outcome
    completion_notes: str | None
    completed_at: datetime
    previous_status: Status


class TaskReassigned(Event, tag="TASK_REASSIGNED", frozen=True):
    previous_owner_id: str | None
    previous_owner_name: str | None
    new_owner_id: str | None
    new_owner_name: str | None
    claim_status: ClaimStatus
    claimed_at: datetime | None


class TaskSnoozed(Event, tag="TASK_SNOOZED", frozen=True):
    previous_due_date: datetime | None
    new_due_date: datetime
    snooze_count: int
    # Present only when the reminders moved with the due date.
    agent_reminders: dict[str, Any] | None = None


class TaskDeleted(Event, tag="TASK_DELETED", frozen=True):
    title: str


TaskEvent = TaskCreated | TaskUpdated | TaskCompleted | TaskReassigned | TaskSnoozed | TaskDeleted

EVENT_TYPES: dict[str, type[TaskEvent]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (TaskCreated, TaskUpdated, TaskCompleted, TaskReassigned, TaskSnoozed, TaskDeleted)
}


def event_type(event: TaskEvent) -> str:
    """The audit name of an event, e.g. TASK_SNOOZED."""
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
