"""Optimistic concurrency: ETags, If-None-Match, If-Match, and no update lost without them."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import Tenant


async def create(client: AsyncTestClient, tenant: Tenant) -> tuple[str, str]:
    response = await client.post("/v1/tasks", json={"title": "Versioned"}, headers=tenant.headers)
    return response.json()["task"]["_id"], response.headers["ETag"]


async def test_every_response_carrying_a_task_carries_its_version_as_etag(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    task_id, created_tag = await create(client, tenant)
    patched = await client.patch(
        f"/v1/tasks/{task_id}", json={"priority": "high"}, headers=tenant.headers
    )
    fetched = await client.get(f"/v1/tasks/{task_id}", headers=tenant.headers)

    assert created_tag == '"1"'
    assert patched.headers["ETag"] == fetched.headers["ETag"] == '"2"'


async def test_get_with_the_current_etag_is_not_modified(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    task_id, tag = await create(client, tenant)

    response = await client.get(
        f"/v1/tasks/{task_id}", headers={**tenant.headers, "If-None-Match": tag}
    )

    assert response.status_code == 304
    assert response.content == b""


async def test_get_with_an_old_etag_returns_the_task(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    task_id, tag = await create(client, tenant)
    await client.patch(f"/v1/tasks/{task_id}", json={"priority": "low"}, headers=tenant.headers)

    response = await client.get(
        f"/v1/tasks/{task_id}", headers={**tenant.headers, "If-None-Match": tag}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "", {"title": "New"}),
        ("PATCH", "", {"title": "New"}),
        ("POST", "/complete", {}),
        ("POST", "/snooze", {"newDueDate": "2040-01-01T00:00:00Z"}),
        ("POST", "/reassign", {"newOwnerId": "agent_9"}),
        ("DELETE", "", None),
    ],
)
async def test_a_stale_if_match_is_refused_with_the_current_version(
    client: AsyncTestClient, tenant: Tenant, method: str, path: str, body: object
) -> None:
    task_id, stale = await create(client, tenant)
    await client.patch(f"/v1/tasks/{task_id}", json={"priority": "low"}, headers=tenant.headers)

    response = await client.request(
        method,
        f"/v1/tasks/{task_id}{path}",
        json=body,
        headers={**tenant.headers, "If-Match": stale},
    )

    assert response.status_code == 412
    error = response.json()["error"]
    assert error["code"] == "PreconditionFailedError"
    assert error["details"] == ["current version: 2"]
    events = await client.get(f"/v1/tasks/{task_id}/events", headers=tenant.headers)
    assert len(events.json()) == 2


async def test_a_current_if_match_lets_the_write_through(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    task_id, tag = await create(client, tenant)

    response = await client.put(
        f"/v1/tasks/{task_id}", json={"title": "New"}, headers={**tenant.headers, "If-Match": tag}
    )

    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'


@pytest.mark.parametrize("if_match", ['"999", "2"', '"2","999"', 'W/"1" , "2"', '"abc", "2"', "*"])
async def test_an_if_match_list_lets_the_write_through_when_any_tag_is_current(
    client: AsyncTestClient, tenant: Tenant, if_match: str
) -> None:
    task_id, _ = await create(client, tenant)
    await client.patch(f"/v1/tasks/{task_id}", json={"priority": "low"}, headers=tenant.headers)

    response = await client.put(
        f"/v1/tasks/{task_id}",
        json={"title": "New"},
        headers={**tenant.headers, "If-Match": if_match},
    )

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"3"'


@pytest.mark.parametrize("if_match", ['W/"2"', '"02"', '"999", "1"', '"2x"', "", " , "])
async def test_an_if_match_naming_no_current_version_strongly_is_refused(
    client: AsyncTestClient, tenant: Tenant, if_match: str
) -> None:
    task_id, _ = await create(client, tenant)
    await client.patch(f"/v1/tasks/{task_id}", json={"priority": "low"}, headers=tenant.headers)

    response = await client.put(
        f"/v1/tasks/{task_id}",
        json={"title": "New"},
        headers={**tenant.headers, "If-Match": if_match},
    )

    assert response.status_code == 412
    assert response.headers["ETag"] == '"2"'


@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
@pytest.mark.parametrize(
    "value", ["2", '"2', "W/2", '"2";"3"', '"2", *', '"a"b"', " ," * 4000 + "!"]
)
async def test_a_header_that_is_no_list_of_entity_tags_is_refused_naming_it(
    client: AsyncTestClient, tenant: Tenant, header: str, value: str
) -> None:
    task_id, _ = await create(client, tenant)
    method = "PUT" if header == "If-Match" else "GET"

    response = await client.request(
        method,
        f"/v1/tasks/{task_id}",
        json={"title": "New"} if method == "PUT" else None,
        headers={**tenant.headers, header: value},
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"][0].startswith(f"{header}:")


async def test_an_if_none_match_list_naming_the_version_weakly_is_not_modified(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    task_id, _ = await create(client, tenant)

    response = await client.get(
        f"/v1/tasks/{task_id}", headers={**tenant.headers, "If-None-Match": '"7", W/"1"'}
    )

    assert response.status_code == 304


async def test_concurrent_snoozes_without_if_match_lose_no_update(
    client: AsyncTestClient, racing_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    task_id, _ = await create(client, tenant)

    responses = await asyncio.gather(
        *(
            racing_client.post(
                f"/v1/tasks/{task_id}/snooze",
                json={"newDueDate": f"2040-01-01T{hour // 60:02d}:{hour % 60:02d}:00Z"},
                headers=tenant.headers,
            )
            for hour in range(50)
        )
    )

    accepted = sum(1 for response in responses if response.status_code == 200)
    task = (await client.get(f"/v1/tasks/{task_id}", headers=tenant.headers)).json()
    events = (await client.get(f"/v1/tasks/{task_id}/events", headers=tenant.headers)).json()
    assert len(responses) == 50
    assert task["snoozeCount"] == accepted
    assert [event["type"] for event in events].count("TASK_SNOOZED") == accepted
    assert accepted > 0
