"""POST /v1/tasks and GET /v1/tasks/{id}: the task object, its defaults, ids and times."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.api.task_api import RFC3339_UTC, TASK_OBJECT_FIELDS, TaskApi, moment, now

EVERY_SETTABLE_FIELD = {
    "title": "Follow up with customer",
    "titleType": "followup",
    "description": "Customer inquired about order #12345",
    "priority": "high",
    "dueDate": "2030-04-15T10:00:00Z",
    "ownerId": "agent_001",
    "ownerName": "John Doe",
    "queueId": "queue_1",
    "relatedCustomerId": "cust_123",
    "relatedCustomerName": "Jane Smith",
    "relatedConversationId": "conv_9",
    "collaboratorIds": ["agent_002"],
    "tags": ["followup", "urgent"],
    "metadata": {"orderId": "ord_12345", "nested": {"n": 1}},
    "linkedEntity": {"type": "deal", "id": "deal_1", "pipelineId": "pipe_1", "name": "Big deal"},
    "autoComplete": {"onReply": True},
    "agentReminders": {"reminders": [{"remindAt": "2030-04-15T09:00:00Z"}]},
}


async def test_creating_a_task_answers_201_with_success_message_and_task(tasks: TaskApi) -> None:
    response = await tasks.call("POST", "/v1/tasks", json={"title": "Call back"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"success", "message", "task"}
    assert body["success"] is True
    assert body["message"] == "Task created successfully"
    assert set(body["task"]) == TASK_OBJECT_FIELDS


async def test_a_task_created_with_only_a_title_has_the_documented_defaults(
    tasks: TaskApi,
) -> None:
    task = await tasks.create(title="Call back")

    assert task == {
        "_id": task["_id"],
        "title": "Call back",
        "titleType": "other",
        "description": None,
        "status": "not_started",
        "priority": "normal",
        "outcome": None,
        "dueDate": None,
        "completedAt": None,
        "ownerId": None,
        "ownerName": None,
        "queueId": None,
        "claimStatus": "unassigned",
        "claimedAt": None,
        "claimedBy": None,
        "relatedCustomerId": None,
        "relatedCustomerName": None,
        "relatedConversationId": None,
        "collaboratorIds": [],
        "completionNotes": None,
        "tags": [],
        "metadata": {},
        "linkedEntity": None,
        "autoComplete": None,
        "agentReminders": None,
        "snoozedUntil": None,
        "snoozeCount": 0,
        "created_at": task["created_at"],
        "updated_at": task["created_at"],
    }


async def test_every_field_given_at_creation_is_kept(tasks: TaskApi) -> None:
    task = await tasks.create(**EVERY_SETTABLE_FIELD)

    assert {name: task[name] for name in EVERY_SETTABLE_FIELD} == EVERY_SETTABLE_FIELD


async def test_the_title_is_trimmed(tasks: TaskApi) -> None:
    task = await tasks.create(title="  Call back \n")

    assert task["title"] == "Call back"


async def test_getting_a_task_answers_the_task_object_itself(tasks: TaskApi) -> None:
    created = await tasks.create(**EVERY_SETTABLE_FIELD)

    fetched = await tasks.get(created["_id"])

    assert fetched == created


async def test_a_task_with_an_owner_is_claimed_by_that_owner_now(tasks: TaskApi) -> None:
    before = now()
    task = await tasks.create(ownerId="agent_001", queueId="queue_1")

    assert task["claimStatus"] == "claimed"
    assert task["claimedBy"] == "agent_001"
    assert before - timedelta(seconds=1) <= moment(task["claimedAt"]) <= now()


async def test_a_task_with_a_queue_and_no_owner_is_queued(tasks: TaskApi) -> None:
    task = await tasks.create(queueId="queue_1")

    assert (task["claimStatus"], task["claimedAt"], task["claimedBy"]) == ("queued", None, None)


async def test_a_task_without_owner_or_queue_is_unassigned(tasks: TaskApi) -> None:
    task = await tasks.create()

    assert (task["claimStatus"], task["claimedAt"], task["claimedBy"]) == ("unassigned", None, None)


async def test_a_task_created_as_completed_is_completed_at_once(tasks: TaskApi) -> None:
    task = await tasks.create(status="completed", completionNotes="done on the phone")

    assert task["status"] == "completed"
    assert task["outcome"] == "resolved"
    assert task["completionNotes"] == "done on the phone"
    assert task["completedAt"] is not None
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED", "TASK_COMPLETED"]


async def test_a_task_can_be_created_in_any_open_status(tasks: TaskApi) -> None:
    for status in ("not_started", "in_progress", "pending", "deferred"):
        assert (await tasks.create(status=status))["status"] == status


async def test_task_ids_are_24_lowercase_hex_characters(tasks: TaskApi) -> None:
    task = await tasks.create()

    assert re.fullmatch(r"[0-9a-f]{24}", task["_id"])


async def test_task_ids_are_ordered_by_creation_time(tasks: TaskApi) -> None:
    created = [await tasks.create(title=f"task {n}") for n in range(5)]

    ids = [task["_id"] for task in created]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for task in created:
        # Like a MongoDB ObjectId, the id opens with its creation time in seconds.
        seconds = int(task["_id"][:8], 16)
        assert abs(seconds - moment(task["created_at"]).timestamp()) <= 1


async def test_timestamps_are_written_in_utc_with_z(tasks: TaskApi) -> None:
    task = await tasks.create(ownerId="agent_1", dueDate="2030-04-15T12:00:00+02:00")

    for name in ("dueDate", "claimedAt", "created_at", "updated_at"):
        assert re.fullmatch(RFC3339_UTC, task[name]), (name, task[name])
    assert task["dueDate"] == "2030-04-15T10:00:00Z"


async def test_a_time_without_an_offset_is_refused_naming_the_field(tasks: TaskApi) -> None:
    response = await tasks.call(
        "POST", "/v1/tasks", json={"title": "x", "dueDate": "2030-04-15T10:00:00"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        "dueDate must give its offset from UTC (Z or +hh:mm)"
    ]


async def test_created_at_is_the_time_of_creation(tasks: TaskApi) -> None:
    before = now()
    task = await tasks.create()

    assert before - timedelta(seconds=1) <= moment(task["created_at"]) <= now()
