"""A task is reachable only by its id and only by its tenant: anything else is 404."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.task_api import TaskApi

DUE = "2030-04-15T10:00:00Z"
# Every endpoint that names a task, with a body it would accept.
TASK_ENDPOINTS = [
    ("GET", "", None),
    ("GET", "/events", None),
    ("PUT", "", {"title": "Taken over"}),
    ("PATCH", "", {"title": "Taken over"}),
    ("POST", "/complete", {}),
    ("POST", "/snooze", {"newDueDate": DUE}),
    ("POST", "/reassign", {"newOwnerId": "intruder"}),
    ("DELETE", "", None),
]
MALFORMED_IDS = [
    "507F1F77BCF86CD799439011",
    "507f1f77bcf86cd79943901",
    "507f1f77bcf86cd7994390111",
    "507f1f77bcf86cd79943901g",
    "not-an-id",
    "1",
    "x" * 300,
]


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ENDPOINTS)
async def test_another_tenants_task_is_not_found_and_stays_unchanged(
    tasks: TaskApi, other_tasks: TaskApi, method: str, suffix: str, body: Any
) -> None:
    task = await tasks.create(title="Mine", ownerId="agent_1")

    response = await other_tasks.call(method, f"/v1/tasks/{task['_id']}{suffix}", json=body)

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "NotFoundError", "message": "Task not found"}}
    assert await tasks.get(task["_id"]) == task
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED"]


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ENDPOINTS)
@pytest.mark.parametrize("task_id", MALFORMED_IDS)
async def test_a_malformed_task_id_is_not_found(
    tasks: TaskApi, method: str, suffix: str, body: Any, task_id: str
) -> None:
    response = await tasks.call(method, f"/v1/tasks/{task_id}{suffix}", json=body)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFoundError"


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ENDPOINTS)
async def test_a_well_formed_id_of_no_task_is_not_found(
    tasks: TaskApi, method: str, suffix: str, body: Any
) -> None:
    response = await tasks.call(method, f"/v1/tasks/507f1f77bcf86cd799439011{suffix}", json=body)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFoundError"


async def test_lists_show_only_the_tenants_own_tasks(tasks: TaskApi, other_tasks: TaskApi) -> None:
    await tasks.create(title="Mine", relatedCustomerId="cust_1", ownerId="agent_1")
    await other_tasks.create(title="Theirs", relatedCustomerId="cust_1", ownerId="agent_1")

    assert await tasks.titles() == ["Mine"]
    assert await other_tasks.titles() == ["Theirs"]
    assert await tasks.titles("/v1/tasks/customer/cust_1") == ["Mine"]
    assert await tasks.titles(ownerId="agent_1", search="e") == ["Mine"]


async def test_stats_and_analytics_count_only_the_tenants_own_tasks(
    tasks: TaskApi, other_tasks: TaskApi
) -> None:
    await tasks.create(ownerId="agent_1")
    await other_tasks.create(ownerId="agent_1")
    await other_tasks.create(ownerId="agent_1")

    stats = await tasks.list("/v1/tasks/stats")
    analytics = await tasks.list("/v1/tasks/analytics")

    assert stats["total"] == 1
    assert analytics["totalTasks"] == 1
    assert analytics["agentPerformance"] == [
        {"agentId": "agent_1", "agentName": None, "total": 1, "completed": 0}
    ]


async def test_another_tenants_feed_cursor_is_refused(tasks: TaskApi, other_tasks: TaskApi) -> None:
    await tasks.create(title="Mine")
    await other_tasks.create(title="Theirs")
    mine = await tasks.call("GET", "/v1/events")
    cursor = mine.json()["next"]

    theirs = await other_tasks.call("GET", f"/v1/events?after={cursor}")
    again = await tasks.call("GET", f"/v1/events?after={cursor}")

    assert theirs.status_code == 400
    assert theirs.json()["error"]["details"] == ["after: a cursor naming no event of the tenant"]
    assert (again.status_code, again.json()["events"]) == (200, [])
