"""Folding events into a task: each event's facts applied, at the time it was recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from domain.events import (
    Change,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskEvent,
    TaskReassigned,
    TaskSnoozed,
    TaskUpdated,
    event_type,
)
from domain.evolve import evolve, fold
from domain.task import ClaimStatus, Outcome, Priority, Status
from tests.unit.tasks import LATER, NOW, created

RECORDED = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)


def test_task_created_yields_the_task_it_carries() -> None:
    task = created({"title": "Call back", "priority": "high"})

    assert evolve(None, TaskCreated(task=task), RECORDED) == task


def test_task_created_keeps_the_task_times_rather_than_the_recording_time() -> None:
    task = created(now=NOW)

    folded = evolve(None, TaskCreated(task=task), RECORDED)

    assert folded is not None
    assert (folded.created_at, folded.updated_at) == (NOW, NOW)


def test_task_updated_sets_each_changed_field_from_its_wire_value() -> None:
    event = TaskUpdated(
        changes={
            "title": Change("Call back", "Call again"),
            "priority": Change("normal", "urgent"),
            "dueDate": Change(None, "2025-03-10T15:00:00Z"),
            "metadata": Change({}, {"k": [1, 2]}),
            "linkedEntity": Change(None, {"type": "deal", "id": "d1"}),
        }
    )

    task = evolve(created(), event, RECORDED)

    assert task is not None
    assert task.title == "Call again"
    assert task.priority == Priority.URGENT
    assert task.due_date == datetime(2025, 3, 10, 15, tzinfo=UTC)
    assert task.metadata == {"k": [1, 2]}
    assert task.linked_entity is not None
    assert task.linked_entity.id == "d1"
    assert task.updated_at == RECORDED


def test_task_updated_leaves_fields_it_does_not_name() -> None:
    task = created({"description": "Keep me", "tags": ["a"]})

    updated = evolve(task, TaskUpdated(changes={"title": Change("Call back", "X")}), RECORDED)

    assert updated is not None
    assert (updated.description, updated.tags) == ("Keep me", ["a"])


def test_task_completed_completes_with_its_outcome_notes_and_time() -> None:
    event = TaskCompleted(
        outcome=Outcome.ESCALATED,
        completion_notes="To L2",
        completed_at=LATER,
        previous_status=Status.PENDING,
    )

    task = evolve(created({"status": "pending"}), event, RECORDED)

    assert task is not None
    assert task.status == Status.COMPLETED
    assert (task.outcome, task.completion_notes) == (Outcome.ESCALATED, "To L2")
    assert task.completed_at == LATER
    assert task.updated_at == RECORDED


def test_task_reassigned_sets_the_owner_and_the_claim() -> None:
    event = TaskReassigned(
        previous_owner_id=None,
        previous_owner_name=None,
        new_owner_id="u2",
        new_owner_name="Bo",
        claim_status=ClaimStatus.CLAIMED,
        claimed_at=LATER,
    )

    task = evolve(created(), event, RECORDED)

    assert task is not None
    assert (task.owner_id, task.owner_name) == ("u2", "Bo")
    assert (task.claim_status, task.claimed_at, task.claimed_by) == (
        ClaimStatus.CLAIMED,
        LATER,
        "u2",
    )
    assert task.updated_at == RECORDED


def test_task_reassigned_to_nobody_releases_the_claim() -> None:
    event = TaskReassigned(
        previous_owner_id="u1",
        previous_owner_name=None,
        new_owner_id=None,
        new_owner_name=None,
        claim_status=ClaimStatus.QUEUED,
        claimed_at=None,
    )

    task = evolve(created({"ownerId": "u1", "queueId": "q1"}), event, RECORDED)

    assert task is not None
    assert (task.owner_id, task.claimed_by, task.claimed_at) == (None, None, None)
    assert task.claim_status == ClaimStatus.QUEUED


def test_task_snoozed_sets_due_date_snoozed_until_and_count() -> None:
    new_due = LATER + timedelta(days=1)
    event = TaskSnoozed(previous_due_date=None, new_due_date=new_due, snooze_count=3)

    task = evolve(created(), event, RECORDED)

    assert task is not None
    assert (task.due_date, task.snoozed_until, task.snooze_count) == (new_due, new_due, 3)
    assert task.updated_at == RECORDED


def test_task_snoozed_without_reminders_keeps_the_tasks_reminders() -> None:
    task = created({"agentReminders": {"reminders": []}})
    event = TaskSnoozed(previous_due_date=None, new_due_date=LATER, snooze_count=1)

    snoozed = evolve(task, event, RECORDED)

    assert snoozed is not None
    assert snoozed.agent_reminders == {"reminders": []}


def test_task_snoozed_with_reminders_replaces_them() -> None:
    moved = {"reminders": [{"remindAt": "2025-03-11T00:00:00Z"}]}
    event = TaskSnoozed(
        previous_due_date=NOW, new_due_date=LATER, snooze_count=1, agent_reminders=moved
    )

    snoozed = evolve(created({"agentReminders": {"reminders": []}}), event, RECORDED)

    assert snoozed is not None
    assert snoozed.agent_reminders == moved


def test_task_deleted_leaves_no_task() -> None:
    assert evolve(created(), TaskDeleted(title="Call back"), RECORDED) is None


@pytest.mark.parametrize(
    "event",
    [
        TaskUpdated(changes={}),
        TaskSnoozed(previous_due_date=None, new_due_date=LATER, snooze_count=1),
        TaskCompleted(
            outcome=Outcome.RESOLVED,
            completion_notes=None,
            completed_at=LATER,
            previous_status=Status.NOT_STARTED,
        ),
    ],
)
def test_an_event_before_the_task_was_created_is_refused(event: TaskEvent) -> None:
    with pytest.raises(ValueError, match="before the task was created"):
        evolve(None, event, RECORDED)


def test_an_empty_history_folds_to_no_task() -> None:
    assert fold([]) is None


def test_a_history_folds_in_order_each_event_at_its_own_time() -> None:
    task = created()
    history: list[tuple[TaskEvent, datetime]] = [
        (TaskCreated(task=task), NOW),
        (TaskUpdated(changes={"title": Change("Call back", "One")}), NOW + timedelta(minutes=1)),
        (TaskUpdated(changes={"title": Change("One", "Two")}), NOW + timedelta(minutes=2)),
    ]

    folded = fold(history)

    assert folded is not None
    assert folded.title == "Two"
    assert folded.updated_at == NOW + timedelta(minutes=2)


def test_a_history_ending_in_deletion_folds_to_no_task() -> None:
    history: list[tuple[TaskEvent, datetime]] = [
        (TaskCreated(task=created()), NOW),
        (TaskDeleted(title="Call back"), LATER),
    ]

    assert fold(history) is None


EVERY_EVENT: list[TaskEvent] = [
    TaskCreated(
        task=created(
            {
                "dueDate": "2025-03-10T15:00:00Z",
                "ownerId": "u1",
                "linkedEntity": {"type": "deal", "id": "d1"},
                "metadata": {"k": {"nested": [1, None, True]}},
            }
        )
    ),
    TaskUpdated(
        changes={"title": Change("a", "b"), "dueDate": Change(None, "2025-03-10T15:00:00Z")}
    ),
    TaskCompleted(
        outcome=Outcome.NO_ANSWER,
        completion_notes="n",
        completed_at=LATER,
        previous_status=Status.IN_PROGRESS,
    ),
    TaskReassigned(
        previous_owner_id="u1",
        previous_owner_name="Ann",
        new_owner_id="u2",
        new_owner_name=None,
        claim_status=ClaimStatus.CLAIMED,
        claimed_at=LATER,
    ),
    TaskSnoozed(
        previous_due_date=NOW,
        new_due_date=LATER,
        snooze_count=2,
        agent_reminders={"reminders": [{"remindAt": "2025-03-03T10:00:00Z"}]},
    ),
    TaskDeleted(title="Call back"),
]


@pytest.mark.parametrize("event", EVERY_EVENT, ids=event_type)
def test_every_event_survives_its_stored_json_form(event: TaskEvent) -> None:
    stored = msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(event)))

    assert stored["type"] == event_type(event)
    assert msgspec.convert(stored, TaskEvent) == event


def test_a_change_is_stored_as_from_and_to() -> None:
    assert msgspec.to_builtins(Change("a", "b")) == {"from": "a", "to": "b"}
