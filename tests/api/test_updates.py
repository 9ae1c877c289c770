"""PUT and PATCH: only the fields carried change; PUT replaces objects, PATCH merges them;
status and owner changes are completions, reopenings and reassignments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.task_api import TaskApi, moment, now

BOTH = pytest.mark.parametrize("method", ["PUT", "PATCH"])


@BOTH
async def test_an_update_answers_success_message_and_task(tasks: TaskApi, method: str) -> None:
    task = await tasks.create()

    response = await tasks.call(method, f"/v1/tasks/{task['_id']}", json={"priority": "urgent"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "message", "task"}
    assert (body["success"], body["message"]) == (True, "Task updated successfully")
    assert body["task"] == await tasks.get(task["_id"])


@BOTH
async def test_an_update_changes_only_the_fields_it_carries(tasks: TaskApi, method: str) -> None:
    task = await tasks.create(
        title="Old",
        description="Keep me",
        priority="high",
        tags=["keep"],
        metadata={"keep": True},
        dueDate="2030-01-01T00:00:00Z",
    )

    updated = await tasks.update(method, task["_id"], {"title": "New", "status": "in_progress"})

    unchanged = {name: value for name, value in task.items() if name != "updated_at"}
    assert updated == {
        **unchanged,
        "title": "New",
        "status": "in_progress",
        "updated_at": updated["updated_at"],
    }
    assert moment(updated["updated_at"]) > moment(task["updated_at"])


@BOTH
async def test_an_update_is_recorded_as_task_updated_with_before_and_after(
    tasks: TaskApi, method: str
) -> None:
    task = await tasks.create(title="Old", priority="low")

    await tasks.update(method, task["_id"], {"title": "New", "priority": "low"})

    events = await tasks.events(task["_id"])
    assert [event["type"] for event in events] == ["TASK_CREATED", "TASK_UPDATED"]
    assert events[1]["data"]["changes"] == {"title": {"from": "Old", "to": "New"}}


@BOTH
async def test_an_update_that_changes_nothing_records_no_event(tasks: TaskApi, method: str) -> None:
    task = await tasks.create(title="Same")

    updated = await tasks.update(method, task["_id"], {"title": "Same"})

    assert updated == task
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED"]


@BOTH
async def test_an_update_without_a_body_is_refused_naming_it(tasks: TaskApi, method: str) -> None:
    task = await tasks.create()

    response = await tasks.call(method, f"/v1/tasks/{task['_id']}")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == ["body: required (a JSON object)"]
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED"]


@BOTH
async def test_an_empty_object_is_an_update_that_changes_nothing(
    tasks: TaskApi, method: str
) -> None:
    task = await tasks.create(priority="high", metadata={"keep": True})

    updated = await tasks.update(method, task["_id"], {})

    assert updated == task
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED"]


async def test_put_replaces_metadata_wholesale(tasks: TaskApi) -> None:
    task = await tasks.create(metadata={"a": 1, "b": {"x": 1}})

    updated = await tasks.update("PUT", task["_id"], {"metadata": {"b": {"y": 2}}})

    assert updated["metadata"] == {"b": {"y": 2}}


async def test_patch_merges_metadata_key_by_key(tasks: TaskApi) -> None:
    task = await tasks.create(metadata={"a": 1, "b": {"x": 1}})

    updated = await tasks.update("PATCH", task["_id"], {"metadata": {"b": {"y": 2}, "c": 3}})

    assert updated["metadata"] == {"a": 1, "b": {"x": 1, "y": 2}, "c": 3}


async def test_patch_with_a_null_metadata_value_deletes_that_key(tasks: TaskApi) -> None:
    task = await tasks.create(metadata={"a": 1, "b": {"x": 1, "y": 2}})

    updated = await tasks.update("PATCH", task["_id"], {"metadata": {"a": None, "b": {"x": None}}})

    assert updated["metadata"] == {"b": {"y": 2}}


async def test_patch_merges_agent_reminders_and_auto_complete(tasks: TaskApi) -> None:
    task = await tasks.create(agentReminders={"enabled": True}, autoComplete={"onReply": True})

    updated = await tasks.update(
        "PATCH",
        task["_id"],
        {"agentReminders": {"channel": "sms"}, "autoComplete": {"onReply": None}},
    )

    assert updated["agentReminders"] == {"enabled": True, "channel": "sms"}
    assert updated["autoComplete"] == {}


async def test_put_replaces_agent_reminders_wholesale(tasks: TaskApi) -> None:
    task = await tasks.create(agentReminders={"enabled": True})

    updated = await tasks.update("PUT", task["_id"], {"agentReminders": {"channel": "sms"}})

    assert updated["agentReminders"] == {"channel": "sms"}


@BOTH
async def test_tags_and_linked_entity_are_replaced_whole(tasks: TaskApi, method: str) -> None:
    task = await tasks.create(
        tags=["a", "b"], linkedEntity={"type": "deal", "id": "d1", "pipelineId": "p1"}
    )

    updated = await tasks.update(
        method, task["_id"], {"tags": ["c"], "linkedEntity": {"type": "lead", "id": "l1"}}
    )

    assert updated["tags"] == ["c"]
    assert updated["linkedEntity"] == {"type": "lead", "id": "l1", "pipelineId": None, "name": None}


@BOTH
async def test_null_clears_a_field(tasks: TaskApi, method: str) -> None:
    task = await tasks.create(
        description="text",
        dueDate="2030-01-01T00:00:00Z",
        linkedEntity={"type": "deal", "id": "d1"},
        autoComplete={"onReply": True},
    )

    updated = await tasks.update(
        method,
        task["_id"],
        {"description": None, "dueDate": None, "linkedEntity": None, "autoComplete": None},
    )

    cleared = ("description", "dueDate", "linkedEntity", "autoComplete")
    assert {name: updated[name] for name in cleared} == dict.fromkeys(cleared)


@BOTH
async def test_null_empties_tags_and_metadata(tasks: TaskApi, method: str) -> None:
    task = await tasks.create(tags=["a"], metadata={"a": 1}, collaboratorIds=["agent_2"])

    updated = await tasks.update(
        method, task["_id"], {"tags": None, "metadata": None, "collaboratorIds": None}
    )

    assert (updated["tags"], updated["metadata"], updated["collaboratorIds"]) == ([], {}, [])


@BOTH
async def test_setting_status_completed_completes_the_task(tasks: TaskApi, method: str) -> None:
    task = await tasks.create(status="in_progress")

    updated = await tasks.update(
        method,
        task["_id"],
        {"status": "completed", "outcome": "no_answer", "completionNotes": "voicemail"},
    )

    assert updated["status"] == "completed"
    assert (updated["outcome"], updated["completionNotes"]) == ("no_answer", "voicemail")
    assert moment(updated["completedAt"]) >= moment(task["created_at"])
    events = await tasks.events(task["_id"])
    assert events[-1]["type"] == "TASK_COMPLETED"
    assert events[-1]["data"]["previousStatus"] == "in_progress"


@BOTH
async def test_completing_through_an_update_defaults_the_outcome_to_resolved(
    tasks: TaskApi, method: str
) -> None:
    task = await tasks.create()

    updated = await tasks.update(method, task["_id"], {"status": "completed"})

    assert updated["outcome"] == "resolved"


@BOTH
async def test_completing_a_deferred_task_through_an_update_is_rejected(
    tasks: TaskApi, method: str
) -> None:
    task = await tasks.create(status="deferred")

    response = await tasks.call(method, f"/v1/tasks/{task['_id']}", json={"status": "completed"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ValidationError"
    assert await tasks.get(task["_id"]) == task


@BOTH
async def test_another_status_on_a_completed_task_reopens_it(tasks: TaskApi, method: str) -> None:
    task = await tasks.create()
    await tasks.act(task["_id"], "complete", {"outcome": "escalated", "completionNotes": "n"})

    updated = await tasks.update(method, task["_id"], {"status": "in_progress"})

    assert updated["status"] == "in_progress"
    assert (updated["completedAt"], updated["outcome"], updated["completionNotes"]) == (
        None,
        None,
        None,
    )
    assert await tasks.event_types(task["_id"]) == [
        "TASK_CREATED",
        "TASK_COMPLETED",
        "TASK_UPDATED",
    ]


async def test_a_reopened_task_can_be_completed_again(tasks: TaskApi) -> None:
    task = await tasks.create()
    await tasks.act(task["_id"], "complete")
    await tasks.update("PATCH", task["_id"], {"status": "pending"})

    result = await tasks.act(task["_id"], "complete", {"outcome": "other"})

    assert (result["task"]["status"], result["task"]["outcome"]) == ("completed", "other")


@BOTH
async def test_outcome_on_an_open_task_is_rejected(tasks: TaskApi, method: str) -> None:
    task = await tasks.create()

    response = await tasks.call(method, f"/v1/tasks/{task['_id']}", json={"outcome": "resolved"})

    assert response.status_code == 400
    assert "outcome" in response.json()["error"]["details"][0]


@BOTH
async def test_completing_a_completed_task_through_an_update_is_rejected(
    tasks: TaskApi, method: str
) -> None:
    task = (await tasks.act((await tasks.create())["_id"], "complete"))["task"]

    response = await tasks.call(
        method, f"/v1/tasks/{task['_id']}", json={"status": "completed", "title": "Again"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("ValidationError", "Task is already completed")
    assert await tasks.get(task["_id"]) == task


async def test_the_notes_of_a_completed_task_can_be_corrected(tasks: TaskApi) -> None:
    task = await tasks.create()
    await tasks.act(task["_id"], "complete", {"completionNotes": "typo"})

    updated = await tasks.update("PATCH", task["_id"], {"completionNotes": "fixed"})

    assert (updated["status"], updated["completionNotes"]) == ("completed", "fixed")


@BOTH
async def test_changing_the_owner_is_a_reassignment(tasks: TaskApi, method: str) -> None:
    task = await tasks.create(ownerId="agent_1", ownerName="Ann")
    before = now()

    updated = await tasks.update(method, task["_id"], {"ownerId": "agent_2", "ownerName": "Bob"})

    assert (updated["ownerId"], updated["ownerName"]) == ("agent_2", "Bob")
    assert (updated["claimStatus"], updated["claimedBy"]) == ("claimed", "agent_2")
    assert moment(updated["claimedAt"]) >= before - timedelta(seconds=1)
    events = await tasks.events(task["_id"])
    assert [event["type"] for event in events] == ["TASK_CREATED", "TASK_REASSIGNED"]
    assert events[1]["data"]["previousOwnerId"] == "agent_1"
    assert events[1]["data"]["previousOwnerName"] == "Ann"


async def test_renaming_the_owner_alone_is_an_update(tasks: TaskApi) -> None:
    task = await tasks.create(ownerId="agent_1", ownerName="Ann")

    updated = await tasks.update("PATCH", task["_id"], {"ownerName": "Ann Lee"})

    assert (updated["ownerId"], updated["ownerName"]) == ("agent_1", "Ann Lee")
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED", "TASK_UPDATED"]


async def test_removing_the_owner_of_a_queued_task_puts_it_back_in_the_queue(
    tasks: TaskApi,
) -> None:
    task = await tasks.create(ownerId="agent_1", queueId="queue_1")

    updated = await tasks.update("PATCH", task["_id"], {"ownerId": None})

    assert updated["ownerId"] is None
    assert (updated["claimStatus"], updated["claimedAt"], updated["claimedBy"]) == (
        "queued",
        None,
        None,
    )


async def test_queueing_an_unowned_task_makes_it_queued(tasks: TaskApi) -> None:
    task = await tasks.create()

    updated = await tasks.update("PATCH", task["_id"], {"queueId": "queue_1"})

    assert (updated["queueId"], updated["claimStatus"]) == ("queue_1", "queued")


async def test_an_update_and_a_reassignment_and_a_completion_in_one_request(
    tasks: TaskApi,
) -> None:
    task = await tasks.create(ownerId="agent_1")

    updated = await tasks.update(
        "PATCH", task["_id"], {"title": "All at once", "ownerId": "agent_2", "status": "completed"}
    )

    assert (updated["title"], updated["ownerId"], updated["status"]) == (
        "All at once",
        "agent_2",
        "completed",
    )
    assert await tasks.event_types(task["_id"]) == [
        "TASK_CREATED",
        "TASK_UPDATED",
        "TASK_REASSIGNED",
        "TASK_COMPLETED",
    ]
