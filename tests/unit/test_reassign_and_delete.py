"""Reassigning and deleting a task."""

from __future__ import annotations

import pytest

from domain.commands import DeleteTask
from domain.decide import decide
from domain.events import TaskDeleted, TaskReassigned
from domain.evolve import evolve
from domain.task import ClaimStatus, Status
from tests.unit.tasks import LATER, after, applied, complete, created, reassign


class TestReassign:
    def test_reassigning_records_the_previous_and_the_new_owner(self) -> None:
        task = created({"ownerId": "u1", "ownerName": "Ann"})

        events = decide(reassign("u2", "Bo"), task, LATER)

        assert events == [
            TaskReassigned(
                previous_owner_id="u1",
                previous_owner_name="Ann",
                new_owner_id="u2",
                new_owner_name="Bo",
                claim_status=ClaimStatus.CLAIMED,
                claimed_at=LATER,
            )
        ]

    def test_reassigning_sets_the_owner_and_claims_the_task_now(self) -> None:
        task = after(created({"ownerId": "u1"}), reassign("u2", "Bo"))

        assert (task.owner_id, task.owner_name) == ("u2", "Bo")
        assert task.claim_status == ClaimStatus.CLAIMED
        assert task.claimed_by == "u2"
        assert task.claimed_at == LATER
        assert task.updated_at == LATER

    def test_reassigning_an_unowned_task_records_no_previous_owner(self) -> None:
        [event] = decide(reassign("u2"), created(), LATER)

        assert isinstance(event, TaskReassigned)
        assert (event.previous_owner_id, event.previous_owner_name) == (None, None)

    def test_reassigning_a_queued_task_claims_it_and_keeps_its_queue(self) -> None:
        task = after(created({"queueId": "q1"}), reassign("u2"))

        assert task.claim_status == ClaimStatus.CLAIMED
        assert task.queue_id == "q1"

    def test_reassigning_without_a_name_leaves_the_owner_name_empty(self) -> None:
        task = after(created({"ownerId": "u1", "ownerName": "Ann"}), reassign("u2"))

        assert task.owner_name is None

    def test_reassigning_to_the_same_owner_renews_the_claim(self) -> None:
        task = after(created({"ownerId": "u1"}), reassign("u1"))

        assert task.claimed_at == LATER

    def test_reassigning_to_the_same_owner_without_a_name_keeps_the_name(self) -> None:
        task = after(created({"ownerId": "u1", "ownerName": "Ann"}), reassign("u1"))

        assert (task.owner_id, task.owner_name) == ("u1", "Ann")

    def test_reassigning_to_the_same_owner_with_a_name_renames_the_owner(self) -> None:
        task = after(created({"ownerId": "u1", "ownerName": "Ann"}), reassign("u1", "Annie"))

        assert task.owner_name == "Annie"

    def test_a_completed_task_can_be_reassigned(self) -> None:
        task = after(after(created(), complete()), reassign("u2"))

        assert task.owner_id == "u2"
        assert task.status == Status.COMPLETED


class TestDelete:
    def test_deleting_emits_task_deleted_with_the_title(self) -> None:
        assert decide(DeleteTask(), created({"title": "Call back"}), LATER) == [
            TaskDeleted(title="Call back")
        ]

    @pytest.mark.parametrize("body", [{}, {"status": "completed"}, {"status": "deferred"}])
    def test_a_task_in_any_state_can_be_deleted(self, body: dict[str, str]) -> None:
        task = created(body)

        assert applied(task, decide(DeleteTask(), task, LATER)) is None

    def test_nothing_can_happen_to_a_deleted_task(self) -> None:
        task = created()
        deleted = applied(task, decide(DeleteTask(), task, LATER))

        with pytest.raises(ValueError, match="before the task was created"):
            evolve(deleted, decide(reassign("u2"), task, LATER)[0], LATER)
