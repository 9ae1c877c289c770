"""PUT and PATCH: plain field changes, and the completion, reopening and reassignment that
a change of status or ownerId amounts to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from msgspec.structs import replace

from domain.commands import UpdateTask
from domain.decide import decide
from domain.errors import RuleViolation
from domain.events import Change, TaskCompleted, TaskReassigned, TaskUpdated
from domain.task import ClaimStatus, LinkedEntity, Outcome, Priority, Status, Task
from tests.unit.tasks import LATER, NOW, after, complete, created, patch, put

UPDATES = [put, patch]


def changes_of(command: UpdateTask, task: Task) -> dict[str, Change]:
    """The field changes of the one TASK_UPDATED event a command emits."""
    events = decide(command, task, LATER)
    assert len(events) == 1
    assert isinstance(events[0], TaskUpdated)
    return events[0].changes


def completed_task(**body: Any) -> Task:
    return created({"status": "completed", **body})


class TestFieldChanges:
    @pytest.mark.parametrize("update", UPDATES)
    def test_an_update_changes_only_the_fields_it_carries(self, update: Any) -> None:
        task = created({"description": "Old", "priority": "low", "tags": ["a"]})

        updated = after(task, update({"priority": "high"}))

        assert updated.priority == Priority.HIGH
        assert updated == replace(task, priority=Priority.HIGH, updated_at=LATER)

    def test_an_update_records_each_change_from_and_to_in_wire_form(self) -> None:
        task = created({"title": "Old", "dueDate": "2025-03-10T15:00:00Z"})

        changes = changes_of(put({"title": "New", "dueDate": "2025-03-11T15:00:00Z"}), task)

        assert changes == {
            "title": Change(before="Old", after="New"),
            "dueDate": Change(before="2025-03-10T15:00:00Z", after="2025-03-11T15:00:00Z"),
        }

    def test_an_update_moves_updated_at_but_not_created_at(self) -> None:
        updated = after(created(), put({"title": "New"}), at=LATER)

        assert updated.updated_at == LATER
        assert updated.created_at == NOW

    @pytest.mark.parametrize("update", UPDATES)
    def test_an_update_that_changes_nothing_emits_no_event(self, update: Any) -> None:
        body = {
            "title": "Call back",
            "priority": "high",
            "dueDate": "2025-03-10T15:00:00Z",
            "tags": ["a"],
            "metadata": {"k": 1},
            "ownerId": "u1",
            "queueId": "q1",
            "status": "in_progress",
            "linkedEntity": {"type": "deal", "id": "d1"},
        }
        task = created(body)

        assert decide(update(body), task, LATER) == []

    @pytest.mark.parametrize("update", UPDATES)
    def test_an_empty_update_emits_no_event(self, update: Any) -> None:
        assert decide(update({}), created(), LATER) == []

    def test_the_same_due_date_at_another_offset_is_no_change(self) -> None:
        task = created({"dueDate": "2025-03-10T15:00:00Z"})

        assert decide(put({"dueDate": "2025-03-10T17:00:00+02:00"}), task, LATER) == []

    def test_null_clears_a_plain_field(self) -> None:
        task = created({"description": "Old", "dueDate": "2025-03-10T15:00:00Z"})

        updated = after(task, patch({"description": None, "dueDate": None}))

        assert updated.description is None
        assert updated.due_date is None

    @pytest.mark.parametrize("update", UPDATES)
    def test_null_empties_tags_and_collaborators(self, update: Any) -> None:
        task = created({"tags": ["a"], "collaboratorIds": ["u2"]})

        updated = after(task, update({"tags": None, "collaboratorIds": None}))

        assert (updated.tags, updated.collaborator_ids) == ([], [])

    @pytest.mark.parametrize("update", UPDATES)
    def test_tags_are_replaced_wholesale(self, update: Any) -> None:
        updated = after(created({"tags": ["a", "b"]}), update({"tags": ["c"]}))

        assert updated.tags == ["c"]

    @pytest.mark.parametrize("update", UPDATES)
    def test_a_linked_entity_is_replaced_whole(self, update: Any) -> None:
        task = created({"linkedEntity": {"type": "deal", "id": "d1", "pipelineId": "p1"}})

        updated = after(task, update({"linkedEntity": {"type": "lead", "id": "l1"}}))

        assert updated.linked_entity == LinkedEntity(type="lead", id="l1")

    def test_a_changed_metadata_value_of_another_json_type_is_a_change(self) -> None:
        task = created({"metadata": {"flag": 1, "ratio": 0}})

        changes = changes_of(put({"metadata": {"flag": True, "ratio": 0.0}}), task)

        assert changes == {
            "metadata": Change(before={"flag": 1, "ratio": 0}, after={"flag": True, "ratio": 0.0})
        }

    def test_metadata_in_another_key_order_is_no_change(self) -> None:
        task = created({"metadata": {"a": 1, "b": {"x": 1, "y": 2}}})

        assert decide(put({"metadata": {"b": {"y": 2, "x": 1}, "a": 1}}), task, LATER) == []


class TestPutReplacesObjects:
    def test_put_replaces_metadata_wholesale(self) -> None:
        task = created({"metadata": {"a": 1, "b": 2}})

        assert after(task, put({"metadata": {"c": 3}})).metadata == {"c": 3}

    def test_put_keeps_nulls_inside_metadata_as_values(self) -> None:
        task = created({"metadata": {"a": 1}})

        assert after(task, put({"metadata": {"a": None}})).metadata == {"a": None}

    @pytest.mark.parametrize("field", ["autoComplete", "agentReminders"])
    def test_put_replaces_free_form_objects_wholesale(self, field: str) -> None:
        task = created({field: {"a": 1, "b": {"x": 1}}})

        changes = changes_of(put({field: {"b": {"y": 2}}}), task)

        assert changes[field].after == {"b": {"y": 2}}

    def test_put_null_metadata_empties_it(self) -> None:
        assert after(created({"metadata": {"a": 1}}), put({"metadata": None})).metadata == {}


class TestPatchMergesObjects:
    def test_patch_merges_metadata_key_by_key(self) -> None:
        task = created({"metadata": {"a": 1, "b": 2}})

        assert after(task, patch({"metadata": {"b": 3, "c": 4}})).metadata == {
            "a": 1,
            "b": 3,
            "c": 4,
        }

    def test_patch_null_in_metadata_deletes_the_key(self) -> None:
        task = created({"metadata": {"a": 1, "b": 2}})

        assert after(task, patch({"metadata": {"a": None}})).metadata == {"b": 2}

    def test_patch_deleting_an_absent_metadata_key_changes_nothing(self) -> None:
        task = created({"metadata": {"a": 1}})

        assert decide(patch({"metadata": {"zz": None}}), task, LATER) == []

    def test_patch_merges_nested_objects_recursively(self) -> None:
        task = created({"metadata": {"address": {"city": "Oslo", "zip": "0150"}}})

        updated = after(task, patch({"metadata": {"address": {"zip": None, "street": "Main"}}}))

        assert updated.metadata == {"address": {"city": "Oslo", "street": "Main"}}

    def test_patch_replaces_arrays_inside_metadata(self) -> None:
        task = created({"metadata": {"list": [1, 2, 3]}})

        assert after(task, patch({"metadata": {"list": [4]}})).metadata == {"list": [4]}

    def test_patch_null_metadata_empties_it(self) -> None:
        task = created({"metadata": {"a": 1}})

        assert after(task, patch({"metadata": None})).metadata == {}

    @pytest.mark.parametrize("field", ["autoComplete", "agentReminders"])
    def test_patch_merges_free_form_objects_key_by_key(self, field: str) -> None:
        task = created({field: {"a": 1, "b": {"x": 1}}})

        changes = changes_of(patch({field: {"a": None, "b": {"y": 2}}}), task)

        assert changes[field].after == {"b": {"x": 1, "y": 2}}

    @pytest.mark.parametrize("field", ["autoComplete", "agentReminders"])
    def test_patch_null_clears_a_free_form_object(self, field: str) -> None:
        task = created({field: {"a": 1}})

        assert changes_of(patch({field: None}), task)[field] == Change({"a": 1}, None)

    def test_patch_of_an_absent_free_form_object_starts_from_empty(self) -> None:
        changes = changes_of(patch({"autoComplete": {"a": 1, "b": None}}), created())

        assert changes["autoComplete"] == Change(before=None, after={"a": 1})


class TestLimitsAfterMerge:
    def test_metadata_over_50_keys_after_a_patch_merge_is_rejected(self) -> None:
        task = created({"metadata": {f"k{n}": n for n in range(30)}})

        with pytest.raises(RuleViolation, match="metadata"):
            decide(patch({"metadata": {f"j{n}": n for n in range(21)}}), task, LATER)

    def test_metadata_of_exactly_50_keys_after_a_patch_merge_is_accepted(self) -> None:
        task = created({"metadata": {f"k{n}": n for n in range(30)}})

        updated = after(task, patch({"metadata": {f"j{n}": n for n in range(20)}}))

        assert len(updated.metadata) == 50

    def test_a_patch_that_deletes_keys_may_bring_metadata_back_under_50(self) -> None:
        task = created({"metadata": {f"k{n}": n for n in range(50)}})
        body = {"metadata": {"new": 1, "k0": None}}

        assert len(after(task, patch(body)).metadata) == 50

    @pytest.mark.parametrize("field", ["autoComplete", "agentReminders"])
    def test_free_form_objects_over_50_keys_after_a_patch_merge_are_rejected(
        self, field: str
    ) -> None:
        task = created({field: {f"k{n}": n for n in range(30)}})

        with pytest.raises(RuleViolation, match=field):
            decide(patch({field: {f"j{n}": n for n in range(21)}}), task, LATER)

    def test_a_metadata_value_over_1000_characters_after_a_patch_merge_is_rejected(self) -> None:
        task = created({"metadata": {"notes": {"first": "x" * 600}}})

        with pytest.raises(RuleViolation, match=r"metadata\.notes"):
            decide(patch({"metadata": {"notes": {"second": "y" * 600}}}), task, LATER)


class TestCompletingThroughAnUpdate:
    @pytest.mark.parametrize("update", UPDATES)
    def test_setting_status_completed_completes_the_task(self, update: Any) -> None:
        task = created({"status": "in_progress"})

        events = decide(update({"status": "completed"}), task, LATER)

        assert events == [
            TaskCompleted(
                outcome=Outcome.RESOLVED,
                completion_notes=None,
                completed_at=LATER,
                previous_status=Status.IN_PROGRESS,
            )
        ]

    def test_setting_status_completed_records_the_outcome_and_notes_given(self) -> None:
        body = {"status": "completed", "outcome": "escalated", "completionNotes": "To L2"}

        updated = after(created(), put(body))

        assert updated.status == Status.COMPLETED
        assert updated.completed_at == LATER
        assert updated.outcome == Outcome.ESCALATED
        assert updated.completion_notes == "To L2"

    def test_completing_along_with_other_fields_updates_then_completes(self) -> None:
        events = decide(put({"status": "completed", "title": "Done call"}), created(), LATER)

        assert [type(event) for event in events] == [TaskUpdated, TaskCompleted]
        assert isinstance(events[0], TaskUpdated)
        assert set(events[0].changes) == {"title"}

    @pytest.mark.parametrize("update", UPDATES)
    def test_completing_a_deferred_task_through_an_update_is_rejected(self, update: Any) -> None:
        task = created({"status": "deferred"})

        with pytest.raises(RuleViolation, match="deferred"):
            decide(update({"status": "completed"}), task, LATER)

    @pytest.mark.parametrize("update", UPDATES)
    def test_setting_status_completed_on_a_completed_task_is_rejected(self, update: Any) -> None:
        with pytest.raises(RuleViolation, match="already completed"):
            decide(update({"status": "completed", "title": "Again"}), completed_task(), LATER)

    @pytest.mark.parametrize("status", ["not_started", "in_progress", "pending", "deferred"])
    def test_an_outcome_on_an_open_task_is_rejected(self, status: str) -> None:
        task = created({"status": status})

        with pytest.raises(RuleViolation, match="outcome"):
            decide(put({"outcome": "resolved"}), task, LATER)

    def test_completion_notes_on_an_open_task_are_rejected(self) -> None:
        with pytest.raises(RuleViolation):
            decide(patch({"completionNotes": "done"}), created(), LATER)

    def test_an_outcome_with_a_status_that_is_not_completed_is_rejected(self) -> None:
        with pytest.raises(RuleViolation):
            decide(put({"status": "pending", "outcome": "resolved"}), created(), LATER)

    def test_the_outcome_and_notes_of_a_completed_task_can_be_corrected(self) -> None:
        task = completed_task(outcome="no_answer")

        changes = changes_of(put({"outcome": "resolved", "completionNotes": "Got through"}), task)

        assert changes == {
            "outcome": Change(before="no_answer", after="resolved"),
            "completionNotes": Change(before=None, after="Got through"),
        }


class TestReopening:
    @pytest.mark.parametrize("status", ["not_started", "in_progress", "pending", "deferred"])
    def test_another_status_on_a_completed_task_reopens_it(self, status: str) -> None:
        task = completed_task(outcome="escalated", completionNotes="To L2")

        updated = after(task, put({"status": status}))

        assert updated.status == Status(status)
        assert updated.completed_at is None
        assert updated.outcome is None
        assert updated.completion_notes is None

    def test_reopening_records_the_cleared_completion_fields(self) -> None:
        task = completed_task(outcome="escalated")

        changes = changes_of(patch({"status": "pending"}), task)

        assert changes == {
            "status": Change(before="completed", after="pending"),
            "completedAt": Change(before="2025-03-03T09:00:00Z", after=None),
            "outcome": Change(before="escalated", after=None),
        }

    def test_a_reopened_task_can_be_completed_again(self) -> None:
        reopened = after(completed_task(), put({"status": "in_progress"}))

        completed = after(reopened, complete(), at=LATER.replace(hour=12))

        assert completed.status == Status.COMPLETED
        assert completed.completed_at == LATER.replace(hour=12)


class TestReassigningThroughAnUpdate:
    @pytest.mark.parametrize("update", UPDATES)
    def test_changing_owner_id_is_a_reassignment_recording_the_previous_owner(
        self, update: Any
    ) -> None:
        task = created({"ownerId": "u1", "ownerName": "Ann"})

        events = decide(update({"ownerId": "u2", "ownerName": "Bo"}), task, LATER)

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

    def test_a_reassignment_through_an_update_claims_the_task_for_the_new_owner(self) -> None:
        updated = after(created({"queueId": "q1"}), put({"ownerId": "u2"}))

        assert updated.owner_id == "u2"
        assert updated.claim_status == ClaimStatus.CLAIMED
        assert updated.claimed_by == "u2"
        assert updated.claimed_at == LATER

    def test_a_new_owner_without_a_name_leaves_the_owner_name_empty(self) -> None:
        updated = after(created({"ownerId": "u1", "ownerName": "Ann"}), put({"ownerId": "u2"}))

        assert updated.owner_name is None

    def test_reassigning_along_with_other_fields_updates_then_reassigns(self) -> None:
        events = decide(put({"ownerId": "u2", "priority": "high"}), created(), LATER)

        assert [type(event) for event in events] == [TaskUpdated, TaskReassigned]
        assert isinstance(events[0], TaskUpdated)
        assert set(events[0].changes) == {"priority"}

    def test_the_current_owner_id_again_is_no_reassignment(self) -> None:
        task = created({"ownerId": "u1"})

        assert decide(put({"ownerId": "u1"}), task, LATER) == []

    def test_changing_only_the_owner_name_is_a_plain_update(self) -> None:
        task = created({"ownerId": "u1", "ownerName": "Ann"})

        changes = changes_of(put({"ownerId": "u1", "ownerName": "Ann B."}), task)

        assert changes == {"ownerName": Change(before="Ann", after="Ann B.")}

    def test_clearing_the_owner_of_a_queued_task_puts_it_back_in_its_queue(self) -> None:
        task = created({"ownerId": "u1", "queueId": "q1"})

        updated = after(task, patch({"ownerId": None}))

        assert updated.owner_id is None
        assert updated.claim_status == ClaimStatus.QUEUED
        assert (updated.claimed_at, updated.claimed_by) == (None, None)

    def test_clearing_the_owner_of_a_task_without_queue_unassigns_it(self) -> None:
        events = decide(patch({"ownerId": None}), created({"ownerId": "u1"}), LATER)

        assert events == [
            TaskReassigned(
                previous_owner_id="u1",
                previous_owner_name=None,
                new_owner_id=None,
                new_owner_name=None,
                claim_status=ClaimStatus.UNASSIGNED,
                claimed_at=None,
            )
        ]

    def test_clearing_the_owner_and_setting_a_queue_queues_the_task(self) -> None:
        task = created({"ownerId": "u1"})

        updated = after(task, put({"ownerId": None, "queueId": "q2"}))

        assert updated.queue_id == "q2"
        assert updated.claim_status == ClaimStatus.QUEUED


class TestQueueChanges:
    def test_queueing_an_unowned_task_makes_it_queued(self) -> None:
        updated = after(created(), put({"queueId": "q1"}))

        assert updated.claim_status == ClaimStatus.QUEUED

    def test_moving_an_unowned_task_to_another_queue_keeps_it_queued(self) -> None:
        changes = changes_of(put({"queueId": "q2"}), created({"queueId": "q1"}))

        assert changes == {"queueId": Change(before="q1", after="q2")}

    def test_clearing_the_queue_of_an_unowned_task_unassigns_it(self) -> None:
        updated = after(created({"queueId": "q1"}), patch({"queueId": None}))

        assert updated.queue_id is None
        assert updated.claim_status == ClaimStatus.UNASSIGNED

    def test_changing_the_queue_of_an_owned_task_keeps_its_claim(self) -> None:
        task = created({"ownerId": "u1", "queueId": "q1"})

        updated = after(task, put({"queueId": None}))

        assert updated.claim_status == ClaimStatus.CLAIMED
        assert updated.claimed_by == "u1"
        assert updated.claimed_at == NOW


def test_an_update_is_decided_at_the_time_given() -> None:
    moment = datetime(2030, 1, 1, tzinfo=UTC)

    updated = after(created(), put({"ownerId": "u9"}), at=moment)

    assert updated.claimed_at == moment
    assert updated.updated_at == moment
