"""The rules of a task's life: each command, given the task and the time, becomes events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from domain.commands import (
    OBJECT_KEYS_MAX,
    CompleteTask,
    CreateTask,
    DeleteTask,
    ReassignTask,
    SnoozeTask,
    TaskChanges,
    TaskCommand,
    UpdateTask,
    metadata_value_problem,
)
from domain.errors import RuleViolation
from domain.events import (
    Change,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskEvent,
    TaskReassigned,
    TaskSnoozed,
    TaskUpdated,
)
from domain.evolve import with_wire_fields
from domain.task import Outcome, Status, Task, claim_fields

# Free-form objects that PATCH merges key by key; linkedEntity is typed and replaced whole.
MERGEABLE_FIELDS = ("metadata", "autoComplete", "agentReminders")
EMPTY_WHEN_NULL: dict[str, Any] = {"tags": [], "collaboratorIds": [], "metadata": {}}
COMPLETION_FIELDS = ("outcome", "completionNotes")


def create(command: CreateTask, task_id: str, now: datetime) -> list[TaskEvent]:
    """A new task from the fields given; a task created as completed is completed at once."""
    values = _with_empty_collections(command.provided())
    status = values.pop("status", Status.NOT_STARTED)
    completion = {name: values.pop(name) for name in COMPLETION_FIELDS if name in values}
    if status != Status.COMPLETED and any(v is not None for v in completion.values()):
        raise RuleViolation("outcome and completionNotes can only be set on a completed task")
    values.update(claim_fields(values.get("ownerId"), values.get("queueId"), now))
    if status != Status.COMPLETED:
        values["status"] = status
    blank = Task(id=task_id, title=command.title, created_at=now, updated_at=now)
    events: list[TaskEvent] = [TaskCreated(task=with_wire_fields(blank, values))]
    if status == Status.COMPLETED:
        events.append(_completion(Status.NOT_STARTED, completion, now))
    return events


def decide(command: TaskCommand, task: Task, now: datetime) -> list[TaskEvent]:
    """The events that carry out a command on an existing task, or RuleViolation."""
    match command:
        case UpdateTask():
            return _update(task, command.changes, command.merge, now)
        case CompleteTask():
            _ensure_completable(task)
            completion = {"outcome": command.outcome, "completionNotes": command.completion_notes}
            return [_completion(task.status, completion, now)]
        case SnoozeTask():
            return [_snooze(task, command, now)]
        case ReassignTask():
            # Reassigned to the owner it has, with no name given, it keeps the name it knows.
            kept = command.new_owner_id == task.owner_id and command.new_owner_name is None
            name = task.owner_name if kept else command.new_owner_name
            return [_reassignment(task, command.new_owner_id, name, now)]
        case DeleteTask():
            return [TaskDeleted(title=task.title)]
    raise TypeError(f"unknown command {command!r}")


def _ensure_completable(task: Task) -> None:
    if task.status == Status.COMPLETED:
        raise RuleViolation("Task is already completed")
    if task.status == Status.DEFERRED:
        raise RuleViolation("A deferred task cannot be completed")


def _completion(previous: Status, completion: dict[str, Any], now: datetime) -> TaskCompleted:
    return TaskCompleted(
        outcome=completion.get("outcome") or Outcome.RESOLVED,
        completion_notes=completion.get("completionNotes"),
        completed_at=now,
        previous_status=previous,
    )


def _snooze(task: Task, command: SnoozeTask, now: datetime) -> TaskSnoozed:
    if task.status == Status.COMPLETED:
        raise RuleViolation("A completed task cannot be snoozed")
    if command.new_due_date <= now:
        raise RuleViolation("newDueDate must be in the future")
    reminders = None
    if command.adjust_reminders and task.due_date is not None and task.agent_reminders:
        shift = command.new_due_date - task.due_date
        reminders = _shift_reminders(task.agent_reminders, shift)
    return TaskSnoozed(
        previous_due_date=task.due_date,
        new_due_date=command.new_due_date,
        snooze_count=task.snooze_count + 1,
        agent_reminders=reminders,
    )


def _shift_reminders(agent_reminders: dict[str, Any], shift: timedelta) -> dict[str, Any] | None:
    """agentReminders with every reminders[].remindAt moved by `shift`; None if none moved."""
    reminders = agent_reminders.get("reminders")
    if not isinstance(reminders, list):
        return None
    moved = []
    for reminder in reminders:
        remind_at = _parse_time(reminder.get("remindAt")) if isinstance(reminder, dict) else None
        if remind_at is None:
            moved.append(reminder)
        else:
            moved.append({**reminder, "remindAt": msgspec.to_builtins(_moved(remind_at, shift))})
    return {**agent_reminders, "reminders": moved}


def _moved(remind_at: datetime, shift: timedelta) -> datetime:
    try:
        return remind_at + shift
    except OverflowError:
        raise RuleViolation("Snoozing would move a reminder out of the years 1 to 9999") from None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        return None


def _reassignment(
    task: Task, owner_id: str | None, owner_name: str | None, now: datetime
) -> TaskReassigned:
    claim = claim_fields(owner_id, task.queue_id, now)
    return TaskReassigned(
        previous_owner_id=task.owner_id,
        previous_owner_name=task.owner_name,
        new_owner_id=owner_id,
        new_owner_name=owner_name,
        claim_status=claim["claimStatus"],
        claimed_at=claim["claimedAt"],
    )


def _update(task: Task, changes: TaskChanges, merge: bool, now: datetime) -> list[TaskEvent]:
    """PUT and PATCH: plain field changes, and the reassignment, completion or reopening
    that a change of ownerId or status amounts to."""
    values = changes.provided()
    current = msgspec.to_builtins(task)
    if merge:
        for name in MERGEABLE_FIELDS:
            if isinstance(values.get(name), dict):
                values[name] = merge_patch(current[name], values[name])
                _ensure_within_limits(name, values[name])
    # Only now: a null metadata clears it rather than merging as an empty patch.
    values = _with_empty_collections(values)

    requested_status = values.pop("status", None)
    status = requested_status or task.status
    owner_changes = {name: values.pop(name) for name in ("ownerId", "ownerName") if name in values}
    reassigning = "ownerId" in owner_changes and owner_changes["ownerId"] != task.owner_id
    if not reassigning and "ownerName" in owner_changes:
        values["ownerName"] = owner_changes["ownerName"]
    # Asking for completed completes, by /complete's rules: a completed task is refused.
    completing = requested_status == Status.COMPLETED
    completion = {name: values.pop(name) for name in COMPLETION_FIELDS if name in values}
    if task.status == Status.COMPLETED and status != Status.COMPLETED:
        values.update(status=status, completedAt=None, outcome=None, completionNotes=None)
    elif not completing:
        values["status"] = status
        if task.status == Status.COMPLETED:
            values.update(completion)
        elif any(v is not None for v in completion.values()):
            raise RuleViolation("outcome and completionNotes can only be set on a completed task")
    if "queueId" in values and not reassigning and task.owner_id is None:
        values.update(claim_fields(None, values["queueId"], now))

    events: list[TaskEvent] = []
    changed = {
        name: Change(before=current[name], after=after)
        for name, after in msgspec.to_builtins(values).items()
        if not _same_json(current[name], after)
    }
    if changed:
        events.append(TaskUpdated(changes=changed))
    if reassigning:
        queued = with_wire_fields(task, {"queueId": values.get("queueId", task.queue_id)})
        events.append(
            _reassignment(queued, owner_changes["ownerId"], owner_changes.get("ownerName"), now)
        )
    if completing:
        _ensure_completable(task)
        events.append(_completion(task.status, completion, now))
    return events


def _same_json(before: Any, after: Any) -> bool:
    """Equal as JSON, key order aside; plain == would take true for 1 and miss that change."""
    return msgspec.json.encode(before, order="sorted") == msgspec.json.encode(after, order="sorted")


def _ensure_within_limits(name: str, merged: dict[str, Any]) -> None:
    """A merge can grow an object past the limits that the patch and the task each kept to."""
    if len(merged) > OBJECT_KEYS_MAX:
        raise RuleViolation(f"{name} must have at most {OBJECT_KEYS_MAX} keys")
    if name == "metadata" and (problem := metadata_value_problem(merged)):
        raise RuleViolation(problem)


def _with_empty_collections(values: dict[str, Any]) -> dict[str, Any]:
    """null for a list or metadata empties it."""
    return {
        name: EMPTY_WHEN_NULL[name] if value is None and name in EMPTY_WHEN_NULL else value
        for name, value in values.items()
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, null removes a key."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
