"""Idempotent retries: a retried request never does its work twice."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import Tenant


def with_key(tenant: Tenant, key: str) -> dict[str, str]:
    return {**tenant.headers, "Idempotency-Key": key}


async def events_of(client: AsyncTestClient, tenant: Tenant, task_id: str) -> list[str]:
    response = await client.get(f"/v1/tasks/{task_id}/events", headers=tenant.headers)
    return [event["type"] for event in response.json()]


async def test_a_retried_create_replays_the_first_response_and_creates_one_task(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    body = {"title": "Call back"}
    first = await client.post("/v1/tasks", json=body, headers=with_key(tenant, "create-1"))
    retry = await client.post("/v1/tasks", json=body, headers=with_key(tenant, "create-1"))

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert retry.headers["ETag"] == first.headers["ETag"]
    listed = await client.get("/v1/tasks", headers=tenant.headers)
    assert listed.json()["total"] == 1


async def test_concurrent_retries_create_exactly_one_task(
    client: AsyncTestClient, racing_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = {"title": "Only once"}
    responses = await asyncio.gather(
        *(
            racing_client.post("/v1/tasks", json=body, headers=with_key(tenant, "racing"))
            for _ in range(10)
        )
    )

    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["task"]["_id"] for response in responses}) == 1
    listed = await client.get("/v1/tasks", headers=tenant.headers)
    assert listed.json()["total"] == 1


@pytest.mark.parametrize(
    ("method", "action", "event"),
    [("POST", "/complete", "TASK_COMPLETED"), ("DELETE", "", "TASK_DELETED")],
)
async def test_concurrent_retries_of_a_command_all_get_its_answer(
    client: AsyncTestClient,
    racing_client: httpx.AsyncClient,
    tenant: Tenant,
    method: str,
    action: str,
    event: str,
) -> None:
    # Each retry waits for the first; the task it then finds is done, and its answer is the
    # first's, not a refusal of the command done again.
    created = await client.post("/v1/tasks", json={"title": "A"}, headers=tenant.headers)
    task_id = created.json()["task"]["_id"]
    headers = with_key(tenant, f"racing-{method}")
    responses = await asyncio.gather(
        *(
            racing_client.request(method, f"/v1/tasks/{task_id}{action}", headers=headers)
            for _ in range(10)
        )
    )

    assert [response.status_code for response in responses] == [200] * 10
    assert sum("Idempotent-Replayed" not in response.headers for response in responses) == 1
    assert len({response.content for response in responses}) == 1
    assert await events_of(client, tenant, task_id) == ["TASK_CREATED", event]


async def test_the_same_key_with_another_body_is_a_conflict(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    await client.post("/v1/tasks", json={"title": "A"}, headers=with_key(tenant, "reused"))

    other = await client.post("/v1/tasks", json={"title": "B"}, headers=with_key(tenant, "reused"))

    assert other.status_code == 409
    assert other.json()["error"]["code"] == "ConflictError"


async def test_a_retry_serialised_again_is_the_same_request(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    headers = {**with_key(tenant, "reserialised"), "Content-Type": "application/json"}
    first = await client.post(
        "/v1/tasks", content=b'{"title":"A","priority":"high"}', headers=headers
    )

    retry = await client.post(
        "/v1/tasks", content=b'{ "priority": "high",\n  "title": "A" }', headers=headers
    )

    assert first.status_code == retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()


async def test_a_delete_with_a_body_no_command_reads_replays_whatever_the_body(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    created = await client.post("/v1/tasks", json={"title": "A"}, headers=tenant.headers)
    path = f"/v1/tasks/{created.json()['task']['_id']}"
    deep = b"[" * 100_000 + b"]" * 100_000

    first = await client.request(
        "DELETE", path, content=deep, headers=with_key(tenant, "deleted-deep")
    )
    retry = await client.request(
        "DELETE", path, content=deep, headers=with_key(tenant, "deleted-deep")
    )

    assert first.status_code == retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"


async def test_the_same_key_on_another_endpoint_is_a_conflict(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    created = await client.post("/v1/tasks", json={"title": "A"}, headers=tenant.headers)
    task_id = created.json()["task"]["_id"]
    await client.post(
        f"/v1/tasks/{task_id}/complete", json={}, headers=with_key(tenant, "endpoint")
    )

    other = await client.post(
        f"/v1/tasks/{task_id}/snooze",
        json={"newDueDate": "2040-01-01T00:00:00Z"},
        headers=with_key(tenant, "endpoint"),
    )

    assert other.status_code == 409


async def test_a_retried_snooze_snoozes_once(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await client.post("/v1/tasks", json={"title": "A"}, headers=tenant.headers)
    task_id = created.json()["task"]["_id"]
    body = {"newDueDate": "2040-01-01T00:00:00Z"}

    for _ in range(3):
        response = await client.post(
            f"/v1/tasks/{task_id}/snooze", json=body, headers=with_key(tenant, "snooze")
        )
        assert response.status_code == 200
        assert response.json()["snoozeCount"] == 1

    assert await events_of(client, tenant, task_id) == ["TASK_CREATED", "TASK_SNOOZED"]


async def test_a_retried_delete_replays_its_success(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    created = await client.post("/v1/tasks", json={"title": "A"}, headers=tenant.headers)
    task_id = created.json()["task"]["_id"]

    first = await client.delete(f"/v1/tasks/{task_id}", headers=with_key(tenant, "delete"))
    retry = await client.delete(f"/v1/tasks/{task_id}", headers=with_key(tenant, "delete"))
    plain = await client.delete(f"/v1/tasks/{task_id}", headers=tenant.headers)

    assert first.status_code == retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert plain.status_code == 404


async def test_keys_belong_to_their_tenant(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    body = {"title": "Mine"}
    mine = await client.post("/v1/tasks", json=body, headers=with_key(tenant, "shared-key"))
    theirs = await client.post("/v1/tasks", json=body, headers=with_key(other_tenant, "shared-key"))

    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["task"]["_id"] != mine.json()["task"]["_id"]


async def test_a_key_longer_than_255_characters_is_rejected(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/tasks", json={"title": "A"}, headers=with_key(tenant, "k" * 256)
    )

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["details"][0]


async def test_a_failed_request_is_not_recorded(client: AsyncTestClient, tenant: Tenant) -> None:
    invalid = await client.post("/v1/tasks", json={"title": ""}, headers=with_key(tenant, "fix"))
    assert invalid.status_code == 400

    corrected = await client.post("/v1/tasks", json={"title": ""}, headers=with_key(tenant, "fix"))

    assert corrected.status_code == 400
    assert "Idempotent-Replayed" not in corrected.headers
