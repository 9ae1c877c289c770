"""Who may call, what an error looks like, and the request id every response carries."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app import tenants
from tests.api.task_api import TaskApi
from tests.conftest import Tenant

SOME_ID = "507f1f77bcf86cd799439011"
EVERY_ENDPOINT = [
    ("POST", "/v1/tasks"),
    ("GET", "/v1/tasks"),
    ("GET", "/v1/tasks/stats"),
    ("GET", "/v1/tasks/analytics"),
    ("GET", "/v1/tasks/customer/cust_1"),
    ("GET", f"/v1/tasks/{SOME_ID}"),
    ("GET", f"/v1/tasks/{SOME_ID}/events"),
    ("PUT", f"/v1/tasks/{SOME_ID}"),
    ("PATCH", f"/v1/tasks/{SOME_ID}"),
    ("POST", f"/v1/tasks/{SOME_ID}/complete"),
    ("POST", f"/v1/tasks/{SOME_ID}/snooze"),
    ("POST", f"/v1/tasks/{SOME_ID}/reassign"),
    ("DELETE", f"/v1/tasks/{SOME_ID}"),
]
BODIES = {"POST": {"title": "x"}, "PUT": {"title": "x"}, "PATCH": {"title": "x"}}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the one error envelope with this status and code; its error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "details"}
    if "details" in error:
        assert all(isinstance(detail, str) for detail in error["details"])
    return error


async def request(client: AsyncTestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    return await client.request(method, path, headers=headers, json=BODIES.get(method))


@pytest.mark.parametrize(("method", "path"), EVERY_ENDPOINT)
async def test_a_request_without_an_api_key_is_unauthenticated(
    client: AsyncTestClient, method: str, path: str
) -> None:
    response = await request(client, method, path, {})

    assert_error(response, 401, "AuthenticationError")


@pytest.mark.parametrize(
    "query", ["colour=red", "limit=5&limit=6", "ownerId=a%00b", "limit=all", "status=done"]
)
@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/tasks/customer/cust_1"])
async def test_a_request_without_an_api_key_is_unauthenticated_whatever_its_query(
    client: AsyncTestClient, path: str, query: str
) -> None:
    response = await request(client, "GET", f"{path}?{query}", {})

    assert_error(response, 401, "AuthenticationError")


@pytest.mark.parametrize(("method", "path"), EVERY_ENDPOINT)
async def test_a_request_with_an_unknown_api_key_is_unauthenticated(
    client: AsyncTestClient, method: str, path: str
) -> None:
    response = await request(client, method, path, {"x-tenant-api-key": "tk_not-a-key"})

    assert_error(response, 401, "AuthenticationError")


async def test_an_empty_api_key_is_unauthenticated(client: AsyncTestClient) -> None:
    response = await client.get("/v1/tasks", headers={"x-tenant-api-key": ""})

    assert_error(response, 401, "AuthenticationError")


async def test_a_revoked_api_key_is_unauthenticated(
    client: AsyncTestClient, engine: AsyncEngine, tenant: Tenant
) -> None:
    assert (await client.get("/v1/tasks", headers=tenant.headers)).status_code == 200
    async with engine.begin() as conn:
        assert await tenants.revoke_key(conn, tenant.key_id)

    response = await client.get("/v1/tasks", headers=tenant.headers)

    assert_error(response, 401, "AuthenticationError")


async def test_another_key_of_the_same_tenant_sees_the_same_tasks(
    client: AsyncTestClient, engine: AsyncEngine, tasks: TaskApi, tenant: Tenant
) -> None:
    task = await tasks.create()
    async with engine.begin() as conn:
        second = await tenants.create_key(conn, tenant.tenant_id)

    response = await client.get(
        f"/v1/tasks/{task['_id']}", headers={"x-tenant-api-key": second.api_key}
    )

    assert response.json() == task


async def test_blanks_around_a_header_value_are_no_part_of_it(
    client: AsyncTestClient, tasks: TaskApi, tenant: Tenant
) -> None:
    task = await tasks.create()

    response = await client.get(
        f"/v1/tasks/{task['_id']}", headers={"x-tenant-api-key": f" {tenant.api_key}\t "}
    )

    assert response.status_code == 200
    assert response.json() == task


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing"),
        ("GET", "/tasks"),
        ("GET", "/v2/tasks"),
        ("GET", f"/v1/tasks/{SOME_ID}/history"),
        ("POST", f"/v1/tasks/{SOME_ID}/archive"),
    ],
)
async def test_an_unknown_route_is_not_found(tasks: TaskApi, method: str, path: str) -> None:
    response = await tasks.call(method, path)

    assert_error(response, 404, "NotFoundError")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/tasks"),
        ("DELETE", "/v1/tasks"),
        ("POST", f"/v1/tasks/{SOME_ID}"),
        ("GET", f"/v1/tasks/{SOME_ID}/complete"),
        ("DELETE", f"/v1/tasks/{SOME_ID}/events"),
        ("POST", "/v1/tasks/stats"),
    ],
)
async def test_a_wrong_method_is_not_allowed(tasks: TaskApi, method: str, path: str) -> None:
    response = await tasks.call(method, path)

    assert_error(response, 405, "MethodNotAllowedError")


async def test_head_answers_as_get_without_the_body(
    client: AsyncTestClient, tasks: TaskApi, tenant: Tenant
) -> None:
    task = await tasks.create()
    path = f"/v1/tasks/{task['_id']}"
    got = await client.get(path, headers=tenant.headers)

    head = await client.head(path, headers=tenant.headers)

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["ETag"] == got.headers["ETag"]
    assert head.headers["content-length"] == str(len(got.content))
    assert (
        await client.head("/v1/tasks/6b0000000000000000000000", headers=tenant.headers)
    ).status_code == 404
    refused = await client.head(f"{path}/complete", headers=tenant.headers)
    assert (refused.status_code, refused.content) == (405, b"")


async def test_a_validation_error_names_the_fields_in_details(tasks: TaskApi) -> None:
    response = await tasks.call("POST", "/v1/tasks", json={"title": "x", "priority": "p0"})

    error = assert_error(response, 400, "ValidationError")
    assert error["message"] == "Validation failed"
    assert any("priority" in detail for detail in error["details"])


async def test_a_missing_task_is_not_found_with_the_reference_message(tasks: TaskApi) -> None:
    response = await tasks.call("GET", f"/v1/tasks/{SOME_ID}")

    error = assert_error(response, 404, "NotFoundError")
    assert error["message"] == "Task not found"


async def test_a_client_request_id_is_echoed(tasks: TaskApi) -> None:
    response = await tasks.call("GET", "/v1/tasks", headers={"x-request-id": "req-42.a:b_c"})

    assert response.headers["x-request-id"] == "req-42.a:b_c"


async def test_a_request_id_is_generated_when_none_is_sent(tasks: TaskApi) -> None:
    first = await tasks.call("GET", "/v1/tasks")
    second = await tasks.call("GET", "/v1/tasks")

    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_an_unusable_request_id_is_replaced_by_a_generated_one(tasks: TaskApi) -> None:
    response = await tasks.call("GET", "/v1/tasks", headers={"x-request-id": "a b<script>"})

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_error_responses_carry_the_request_id_too(client: AsyncTestClient) -> None:
    response = await client.get("/v1/tasks", headers={"x-request-id": "req-401"})

    assert response.status_code == 401
    assert response.headers["x-request-id"] == "req-401"


async def test_the_request_id_is_recorded_in_the_events_it_causes(tasks: TaskApi) -> None:
    created = await tasks.call(
        "POST", "/v1/tasks", json={"title": "x"}, headers={"x-request-id": "req-create"}
    )
    task_id = created.json()["task"]["_id"]
    completed = await tasks.call("POST", f"/v1/tasks/{task_id}/complete", json={})

    events = await tasks.events(task_id)

    assert [event["metadata"]["requestId"] for event in events] == [
        "req-create",
        completed.headers["x-request-id"],
    ]


async def test_the_actor_of_an_event_is_the_api_key_that_caused_it(
    tasks: TaskApi, tenant: Tenant
) -> None:
    task = await tasks.create()

    events = await tasks.events(task["_id"])

    assert events[0]["metadata"]["actor"] == tenant.key_id
