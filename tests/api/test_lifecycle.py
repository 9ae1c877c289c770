"""Complete, snooze, reassign and delete, and the audit history they leave."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest

from tests.api.task_api import RFC3339_UTC, TaskApi, moment, now, timestamp
from tests.conftest import Tenant

DUE = "2030-04-15T10:00:00Z"


def assert_rejected(response: httpx.Response, status: int = 400) -> None:
    assert response.status_code == status, response.text
    code = {400: "ValidationError", 404: "NotFoundError"}[status]
    assert response.json()["error"]["code"] == code


async def test_completing_a_task_answers_success_message_and_task(tasks: TaskApi) -> None:
    task = await tasks.create(status="in_progress")
    before = now()

    body = await tasks.act(task["_id"], "complete", {"completionNotes": "Customer satisfied"})

    assert set(body) == {"success", "message", "task"}
    assert (body["success"], body["message"]) == (True, "Task completed successfully")
    completed = body["task"]
    assert (completed["status"], completed["outcome"]) == ("completed", "resolved")
    assert completed["completionNotes"] == "Customer satisfied"
    assert before - timedelta(seconds=1) <= moment(completed["completedAt"]) <= now()
    assert completed == await tasks.get(task["_id"])


async def test_completing_without_a_body_resolves_the_task(tasks: TaskApi) -> None:
    task = await tasks.create()

    response = await tasks.call("POST", f"/v1/tasks/{task['_id']}/complete")

    assert response.status_code == 200
    assert response.json()["task"]["outcome"] == "resolved"


@pytest.mark.parametrize(
    "path", ["/v1/tasks", "/v1/tasks/{task_id}/snooze", "/v1/tasks/{task_id}/reassign"]
)
async def test_a_command_that_takes_a_body_is_refused_without_one(
    tasks: TaskApi, path: str
) -> None:
    task = await tasks.create()

    response = await tasks.call("POST", path.format(task_id=task["_id"]))

    assert response.status_code == 400
    assert response.json()["error"]["details"] == ["body: required (a JSON object)"]
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED"]


@pytest.mark.parametrize(
    "outcome",
    ["resolved", "no_answer", "callback_scheduled", "escalated", "auto_completed", "other"],
)
async def test_a_task_completes_with_any_outcome(tasks: TaskApi, outcome: str) -> None:
    task = await tasks.create()

    body = await tasks.act(task["_id"], "complete", {"outcome": outcome})

    assert body["task"]["outcome"] == outcome


async def test_completing_a_completed_task_is_rejected(tasks: TaskApi) -> None:
    task = await tasks.create()
    completed = (await tasks.act(task["_id"], "complete"))["task"]

    response = await tasks.call("POST", f"/v1/tasks/{task['_id']}/complete", json={})

    assert_rejected(response)
    assert await tasks.get(task["_id"]) == completed


async def test_completing_a_deferred_task_is_rejected(tasks: TaskApi) -> None:
    task = await tasks.create(status="deferred")

    response = await tasks.call("POST", f"/v1/tasks/{task['_id']}/complete", json={})

    assert_rejected(response)
    assert (await tasks.get(task["_id"]))["status"] == "deferred"


async def test_completion_is_recorded_as_task_completed(tasks: TaskApi) -> None:
    task = await tasks.create(status="pending")

    await tasks.act(task["_id"], "complete", {"outcome": "escalated", "completionNotes": "n"})

    event = (await tasks.events(task["_id"]))[-1]
    assert event["type"] == "TASK_COMPLETED"
    assert event["data"]["outcome"] == "escalated"
    assert event["data"]["completionNotes"] == "n"
    assert event["data"]["previousStatus"] == "pending"


async def test_snoozing_answers_success_message_snooze_count_and_task(tasks: TaskApi) -> None:
    task = await tasks.create(dueDate=DUE)
    new_due = "2030-04-16T10:00:00Z"

    response = await tasks.call(
        "POST", f"/v1/tasks/{task['_id']}/snooze", json={"newDueDate": new_due}
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "message", "snoozeCount", "task"}
    assert (body["success"], body["message"], body["snoozeCount"]) == (
        True,
        "Task snoozed successfully",
        1,
    )
    snoozed = body["task"]
    assert (snoozed["dueDate"], snoozed["snoozedUntil"], snoozed["snoozeCount"]) == (
        new_due,
        new_due,
        1,
    )
    assert snoozed == await tasks.get(task["_id"])


async def test_every_snooze_adds_one_to_the_snooze_count(tasks: TaskApi) -> None:
    task = await tasks.create()

    counts = [
        (await tasks.act(task["_id"], "snooze", {"newDueDate": f"2030-0{n}-01T00:00:00Z"}))[
            "snoozeCount"
        ]
        for n in (1, 2, 3)
    ]

    assert counts == [1, 2, 3]


async def test_snoozing_is_recorded_as_task_snoozed(tasks: TaskApi) -> None:
    task = await tasks.create(dueDate=DUE)

    await tasks.act(task["_id"], "snooze", {"newDueDate": "2030-04-16T10:00:00Z"})

    event = (await tasks.events(task["_id"]))[-1]
    assert event["type"] == "TASK_SNOOZED"
    assert event["data"]["previousDueDate"] == DUE
    assert event["data"]["newDueDate"] == "2030-04-16T10:00:00Z"
    assert event["data"]["snoozeCount"] == 1


async def test_a_snooze_time_without_an_offset_is_refused(tasks: TaskApi) -> None:
    task = await tasks.create()

    response = await tasks.call(
        "POST", f"/v1/tasks/{task['_id']}/snooze", json={"newDueDate": "2030-04-16T10:00:00"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        "newDueDate must give its offset from UTC (Z or +hh:mm)"
    ]
    assert await tasks.get(task["_id"]) == task


async def test_a_snooze_to_a_date_alone_is_to_its_first_instant_in_utc(tasks: TaskApi) -> None:
    task = await tasks.create(dueDate=DUE)

    snoozed = await tasks.act(task["_id"], "snooze", {"newDueDate": "2031-01-02"})

    assert snoozed["task"]["dueDate"] == "2031-01-02T00:00:00Z"


async def test_snoozing_into_the_past_is_rejected(tasks: TaskApi) -> None:
    task = await tasks.create(dueDate=DUE)
    past = timestamp(now() - timedelta(minutes=1))

    response = await tasks.call(
        "POST", f"/v1/tasks/{task['_id']}/snooze", json={"newDueDate": past}
    )

    assert_rejected(response)
    assert "newDueDate" in response.json()["error"]["details"][0]
    assert await tasks.get(task["_id"]) == task


async def test_snoozing_a_completed_task_is_rejected(tasks: TaskApi) -> None:
    task = await tasks.create(status="completed")

    response = await tasks.call("POST", f"/v1/tasks/{task['_id']}/snooze", json={"newDueDate": DUE})

    assert_rejected(response)
    assert (await tasks.get(task["_id"]))["snoozeCount"] == 0


async def test_snoozing_moves_the_reminders_with_the_due_date(tasks: TaskApi) -> None:
    task = await tasks.create(
        dueDate=DUE,
        agentReminders={
            "enabled": True,
            "reminders": [
                {"remindAt": "2030-04-15T09:00:00Z", "channel": "sms"},
                {"remindAt": "2030-04-14T10:00:00+02:00"},
            ],
        },
    )

    body = await tasks.act(task["_id"], "snooze", {"newDueDate": "2030-04-17T12:30:00Z"})

    reminders = body["task"]["agentReminders"]
    assert reminders["enabled"] is True
    assert [moment(r["remindAt"]) for r in reminders["reminders"]] == [
        moment("2030-04-17T11:30:00Z"),
        moment("2030-04-16T10:30:00Z"),
    ]
    assert reminders["reminders"][0]["channel"] == "sms"


async def test_snoozing_without_adjusting_reminders_leaves_them(tasks: TaskApi) -> None:
    reminders = {"reminders": [{"remindAt": "2030-04-15T09:00:00Z"}]}
    task = await tasks.create(dueDate=DUE, agentReminders=reminders)

    body = await tasks.act(
        task["_id"], "snooze", {"newDueDate": "2030-04-17T10:00:00Z", "adjustReminders": False}
    )

    assert body["task"]["agentReminders"] == reminders
    assert body["task"]["dueDate"] == "2030-04-17T10:00:00Z"


async def test_snoozing_a_deferred_task_is_allowed(tasks: TaskApi) -> None:
    task = await tasks.create(status="deferred")

    body = await tasks.act(task["_id"], "snooze", {"newDueDate": DUE})

    assert body["snoozeCount"] == 1


async def test_reassigning_answers_success_message_and_task(tasks: TaskApi) -> None:
    task = await tasks.create(ownerId="agent_001", ownerName="John Doe")
    before = now()

    response = await tasks.call(
        "POST",
        f"/v1/tasks/{task['_id']}/reassign",
        json={"newOwnerId": "agent_002", "newOwnerName": "Jane Smith"},
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "message", "task"}
    assert (body["success"], body["message"]) == (True, "Task reassigned successfully")
    reassigned = body["task"]
    assert (reassigned["ownerId"], reassigned["ownerName"]) == ("agent_002", "Jane Smith")
    assert (reassigned["claimStatus"], reassigned["claimedBy"]) == ("claimed", "agent_002")
    assert before - timedelta(seconds=1) <= moment(reassigned["claimedAt"]) <= now()
    assert reassigned == await tasks.get(task["_id"])


async def test_reassigning_an_unassigned_task_claims_it(tasks: TaskApi) -> None:
    task = await tasks.create(queueId="queue_1")

    body = await tasks.act(task["_id"], "reassign", {"newOwnerId": "agent_9"})

    reassigned = body["task"]
    assert (reassigned["ownerId"], reassigned["ownerName"]) == ("agent_9", None)
    assert (reassigned["claimStatus"], reassigned["claimedBy"]) == ("claimed", "agent_9")


async def test_the_reassignment_event_records_the_previous_owner(tasks: TaskApi) -> None:
    task = await tasks.create(ownerId="agent_001", ownerName="John Doe")

    await tasks.act(task["_id"], "reassign", {"newOwnerId": "agent_002", "newOwnerName": "Jane"})

    event = (await tasks.events(task["_id"]))[-1]
    assert event["type"] == "TASK_REASSIGNED"
    assert event["data"]["previousOwnerId"] == "agent_001"
    assert event["data"]["previousOwnerName"] == "John Doe"
    assert event["data"]["newOwnerId"] == "agent_002"
    assert event["data"]["newOwnerName"] == "Jane"


async def test_deleting_answers_success_and_message(tasks: TaskApi) -> None:
    task = await tasks.create()

    response = await tasks.call("DELETE", f"/v1/tasks/{task['_id']}")

    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Task deleted successfully"}


async def test_a_deleted_task_is_not_found_anywhere(tasks: TaskApi) -> None:
    task = await tasks.create(relatedCustomerId="cust_1")
    task_id = task["_id"]
    await tasks.call("DELETE", f"/v1/tasks/{task_id}")

    for method, path, body in [
        ("GET", f"/v1/tasks/{task_id}", None),
        ("PUT", f"/v1/tasks/{task_id}", {"title": "x"}),
        ("PATCH", f"/v1/tasks/{task_id}", {"title": "x"}),
        ("POST", f"/v1/tasks/{task_id}/complete", {}),
        ("POST", f"/v1/tasks/{task_id}/snooze", {"newDueDate": DUE}),
        ("POST", f"/v1/tasks/{task_id}/reassign", {"newOwnerId": "agent_2"}),
        ("DELETE", f"/v1/tasks/{task_id}", None),
    ]:
        assert_rejected(await tasks.call(method, path, json=body), 404)
    assert (await tasks.list())["total"] == 0
    assert (await tasks.list("/v1/tasks/customer/cust_1"))["total"] == 0
    assert (await tasks.list("/v1/tasks/stats"))["total"] == 0


async def test_a_deleted_task_keeps_its_history(tasks: TaskApi) -> None:
    task = await tasks.create(title="Short-lived")
    await tasks.act(task["_id"], "complete")
    await tasks.call("DELETE", f"/v1/tasks/{task['_id']}")

    events = await tasks.events(task["_id"])

    assert [event["type"] for event in events] == [
        "TASK_CREATED",
        "TASK_COMPLETED",
        "TASK_DELETED",
    ]
    assert events[-1]["data"]["title"] == "Short-lived"


async def test_the_history_lists_every_event_oldest_first(tasks: TaskApi, tenant: Tenant) -> None:
    task = await tasks.create(title="Audited", ownerId="agent_1")
    await tasks.update("PATCH", task["_id"], {"priority": "high"})
    await tasks.act(task["_id"], "snooze", {"newDueDate": DUE})
    await tasks.act(task["_id"], "reassign", {"newOwnerId": "agent_2"})
    await tasks.act(task["_id"], "complete")
    await tasks.call("DELETE", f"/v1/tasks/{task['_id']}")

    events = await tasks.events(task["_id"])

    assert [event["type"] for event in events] == [
        "TASK_CREATED",
        "TASK_UPDATED",
        "TASK_SNOOZED",
        "TASK_REASSIGNED",
        "TASK_COMPLETED",
        "TASK_DELETED",
    ]
    assert [event["version"] for event in events] == [1, 2, 3, 4, 5, 6]
    positions = [event["position"] for event in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    recorded = [moment(event["recordedAt"]) for event in events]
    assert recorded == sorted(recorded)
    for event in events:
        assert {"type", "version", "position", "recordedAt", "metadata", "data"} <= set(event)
        assert re.fullmatch(RFC3339_UTC, event["recordedAt"])
        assert event["metadata"]["actor"] == tenant.key_id
        assert "type" not in event["data"], "the type is said once, beside the data"
    assert events[0]["data"]["task"]["title"] == "Audited"


async def test_the_history_of_an_unknown_task_is_not_found(tasks: TaskApi) -> None:
    response = await tasks.call("GET", "/v1/tasks/507f1f77bcf86cd799439011/events")

    assert_rejected(response, 404)


async def test_concurrent_commands_on_one_task_lose_no_update(
    tasks: TaskApi, racing_client: httpx.AsyncClient
) -> None:
    task = await tasks.create()
    due_dates = [f"2030-01-{day:02d}T00:00:00Z" for day in range(1, 9)]

    responses = await asyncio.gather(
        *(
            racing_client.post(
                f"/v1/tasks/{task['_id']}/snooze",
                json={"newDueDate": due},
                headers=tasks.tenant.headers,
            )
            for due in due_dates
        )
    )

    assert [response.status_code for response in responses] == [200] * len(due_dates)
    assert (await tasks.get(task["_id"]))["snoozeCount"] == len(due_dates)
    events = await tasks.events(task["_id"])
    assert [event["version"] for event in events] == list(range(1, len(due_dates) + 2))
    assert sorted(event["data"]["snoozeCount"] for event in events[1:]) == list(
        range(1, len(due_dates) + 1)
    )
