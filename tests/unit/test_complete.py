"""Completing a task."""

from __future__ import annotations

import pytest

from domain.decide import decide
from domain.errors import RuleViolation
from domain.events import TaskCompleted
from domain.task import Outcome, Status
from tests.unit.tasks import LATER, NOW, after, complete, created, put


def test_completing_emits_task_completed_with_the_time_and_previous_status() -> None:
    events = decide(complete(), created({"status": "pending"}), LATER)

    assert events == [
        TaskCompleted(
            outcome=Outcome.RESOLVED,
            completion_notes=None,
            completed_at=LATER,
            previous_status=Status.PENDING,
        )
    ]


def test_completing_sets_status_completed_and_completed_at() -> None:
    task = after(created(), complete())

    assert task.status == Status.COMPLETED
    assert task.completed_at == LATER
    assert task.updated_at == LATER
    assert task.created_at == NOW


def test_completing_without_an_outcome_records_resolved() -> None:
    assert after(created(), complete()).outcome == Outcome.RESOLVED


@pytest.mark.parametrize("outcome", list(Outcome))
def test_completing_records_the_outcome_given(outcome: Outcome) -> None:
    assert after(created(), complete({"outcome": outcome.value})).outcome == outcome


def test_completing_records_the_completion_notes() -> None:
    task = after(created(), complete({"completionNotes": "Left a voicemail"}))

    assert task.completion_notes == "Left a voicemail"


@pytest.mark.parametrize("status", ["not_started", "in_progress", "pending"])
def test_any_open_status_but_deferred_can_be_completed(status: str) -> None:
    assert after(created({"status": status}), complete()).status == Status.COMPLETED


def test_completing_a_completed_task_is_rejected() -> None:
    task = after(created(), complete())

    with pytest.raises(RuleViolation, match="already completed"):
        decide(complete(), task, LATER)


def test_completing_a_deferred_task_is_rejected() -> None:
    with pytest.raises(RuleViolation, match="deferred"):
        decide(complete(), created({"status": "deferred"}), LATER)


def test_completing_leaves_every_other_field_as_it_was() -> None:
    task = created({"ownerId": "u1", "tags": ["a"], "metadata": {"k": 1}, "priority": "high"})

    completed = after(task, complete())

    assert (completed.owner_id, completed.tags, completed.metadata) == ("u1", ["a"], {"k": 1})
    assert completed.priority == task.priority
    assert completed.claimed_at == task.claimed_at


def test_a_task_reopened_and_completed_again_holds_the_latest_completion() -> None:
    first = after(created(), complete({"outcome": "no_answer", "completionNotes": "x"}))
    reopened = after(first, put({"status": "in_progress"}))

    again = after(reopened, complete({"outcome": "resolved"}), at=LATER.replace(hour=15))

    assert again.outcome == Outcome.RESOLVED
    assert again.completion_notes is None
    assert again.completed_at == LATER.replace(hour=15)
