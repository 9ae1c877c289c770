"""Creating a task: defaults, the claim, and a task created as completed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.errors import RuleViolation
from domain.events import TaskCompleted, TaskCreated
from domain.task import ClaimStatus, LinkedEntity, Outcome, Priority, Status, Task, TitleType
from tests.unit.tasks import NOW, TASK_ID, created, creation_events


def test_creating_a_task_emits_one_task_created_event_holding_the_task() -> None:
    events = creation_events({"title": "Call back"})

    assert len(events) == 1
    assert isinstance(events[0], TaskCreated)
    assert events[0].task == created({"title": "Call back"})


def test_a_task_created_with_only_a_title_has_the_reference_defaults() -> None:
    task = created({"title": "Call back"})

    assert task == Task(
        id=TASK_ID,
        title="Call back",
        title_type=TitleType.OTHER,
        status=Status.NOT_STARTED,
        priority=Priority.NORMAL,
        tags=[],
        metadata={},
        collaborator_ids=[],
        snooze_count=0,
        claim_status=ClaimStatus.UNASSIGNED,
        created_at=NOW,
        updated_at=NOW,
    )
    assert task.description is None
    assert task.due_date is None
    assert task.outcome is None
    assert task.completed_at is None
    assert task.snoozed_until is None


def test_a_new_task_is_created_and_updated_at_the_time_given() -> None:
    task = created(now=NOW)

    assert task.created_at == NOW
    assert task.updated_at == NOW


def test_the_title_of_a_new_task_is_trimmed() -> None:
    assert created({"title": "  Call back  "}).title == "Call back"


def test_every_field_given_at_creation_is_kept() -> None:
    task = created(
        {
            "title": "Renewal call",
            "titleType": "callback",
            "description": "Ask about the renewal",
            "status": "in_progress",
            "priority": "urgent",
            "dueDate": "2025-03-10T15:00:00Z",
            "ownerId": "u1",
            "ownerName": "Ann",
            "queueId": "q1",
            "relatedCustomerId": "c1",
            "relatedCustomerName": "ACME",
            "relatedConversationId": "conv1",
            "collaboratorIds": ["u2", "u3"],
            "tags": ["renewal", "vip"],
            "metadata": {"source": "web", "score": 3, "nested": {"a": [1, None]}},
            "linkedEntity": {"type": "deal", "id": "d1", "pipelineId": "p1"},
            "autoComplete": {"onReply": True},
            "agentReminders": {"reminders": [{"remindAt": "2025-03-10T14:00:00Z"}]},
        }
    )

    assert task.title_type == TitleType.CALLBACK
    assert task.description == "Ask about the renewal"
    assert task.status == Status.IN_PROGRESS
    assert task.priority == Priority.URGENT
    assert task.due_date == datetime(2025, 3, 10, 15, tzinfo=UTC)
    assert (task.owner_id, task.owner_name, task.queue_id) == ("u1", "Ann", "q1")
    assert task.related_customer_id == "c1"
    assert task.related_customer_name == "ACME"
    assert task.related_conversation_id == "conv1"
    assert task.collaborator_ids == ["u2", "u3"]
    assert task.tags == ["renewal", "vip"]
    assert task.metadata == {"source": "web", "score": 3, "nested": {"a": [1, None]}}
    assert task.linked_entity == LinkedEntity(type="deal", id="d1", pipeline_id="p1")
    assert task.auto_complete == {"onReply": True}
    assert task.agent_reminders == {"reminders": [{"remindAt": "2025-03-10T14:00:00Z"}]}


def test_null_lists_and_metadata_at_creation_become_empty() -> None:
    task = created({"tags": None, "collaboratorIds": None, "metadata": None})

    assert (task.tags, task.collaborator_ids, task.metadata) == ([], [], {})


def test_null_free_form_objects_at_creation_stay_null() -> None:
    task = created({"autoComplete": None, "agentReminders": None, "linkedEntity": None})

    assert (task.auto_complete, task.agent_reminders, task.linked_entity) == (None, None, None)


class TestClaim:
    def test_a_task_created_with_an_owner_is_claimed_by_that_owner_now(self) -> None:
        task = created({"ownerId": "u1"})

        assert task.claim_status == ClaimStatus.CLAIMED
        assert task.claimed_at == NOW
        assert task.claimed_by == "u1"

    def test_a_task_created_with_an_owner_and_a_queue_is_claimed(self) -> None:
        task = created({"ownerId": "u1", "queueId": "q1"})

        assert task.claim_status == ClaimStatus.CLAIMED
        assert task.claimed_by == "u1"
        assert task.queue_id == "q1"

    def test_a_task_created_with_a_queue_but_no_owner_is_queued(self) -> None:
        task = created({"queueId": "q1"})

        assert task.claim_status == ClaimStatus.QUEUED
        assert task.claimed_at is None
        assert task.claimed_by is None

    def test_a_task_created_with_neither_owner_nor_queue_is_unassigned(self) -> None:
        task = created({"ownerId": None, "queueId": None})

        assert task.claim_status == ClaimStatus.UNASSIGNED
        assert task.claimed_at is None
        assert task.claimed_by is None

    def test_an_owner_name_without_an_owner_id_claims_nothing(self) -> None:
        task = created({"ownerName": "Ann"})

        assert task.owner_name == "Ann"
        assert task.claim_status == ClaimStatus.UNASSIGNED


class TestCreatedAsCompleted:
    def test_a_task_created_as_completed_is_created_open_and_then_completed(self) -> None:
        events = creation_events({"status": "completed"})

        assert [type(event) for event in events] == [TaskCreated, TaskCompleted]
        assert isinstance(events[0], TaskCreated)
        assert events[0].task.status == Status.NOT_STARTED
        assert events[1] == TaskCompleted(
            outcome=Outcome.RESOLVED,
            completion_notes=None,
            completed_at=NOW,
            previous_status=Status.NOT_STARTED,
        )

    def test_a_task_created_as_completed_is_completed_now_with_outcome_resolved(self) -> None:
        task = created({"status": "completed"})

        assert task.status == Status.COMPLETED
        assert task.completed_at == NOW
        assert task.outcome == Outcome.RESOLVED
        assert task.updated_at == NOW

    def test_a_task_created_as_completed_keeps_its_outcome_and_notes(self) -> None:
        task = created(
            {"status": "completed", "outcome": "no_answer", "completionNotes": "Rang twice"}
        )

        assert task.outcome == Outcome.NO_ANSWER
        assert task.completion_notes == "Rang twice"

    def test_a_null_outcome_on_a_task_created_as_completed_means_resolved(self) -> None:
        assert created({"status": "completed", "outcome": None}).outcome == Outcome.RESOLVED


class TestCompletionFieldsOnOpenTasks:
    @pytest.mark.parametrize("status", ["not_started", "in_progress", "pending", "deferred"])
    def test_an_outcome_on_a_task_not_created_completed_is_rejected(self, status: str) -> None:
        with pytest.raises(RuleViolation, match="outcome"):
            creation_events({"status": status, "outcome": "resolved"})

    def test_an_outcome_without_a_status_is_rejected(self) -> None:
        with pytest.raises(RuleViolation):
            creation_events({"outcome": "resolved"})

    def test_completion_notes_on_a_task_not_created_completed_are_rejected(self) -> None:
        with pytest.raises(RuleViolation, match="completionNotes"):
            creation_events({"completionNotes": "Done"})

    def test_null_completion_fields_on_an_open_task_are_accepted(self) -> None:
        task = created({"outcome": None, "completionNotes": None})

        assert task.outcome is None
        assert task.completion_notes is None
