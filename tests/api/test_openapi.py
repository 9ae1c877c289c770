"""The OpenAPI document at /schema: every endpoint, the API-key scheme, the error envelope."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

ENDPOINTS = [
    ("post", "/v1/tasks"),
    ("get", "/v1/tasks"),
    ("get", "/v1/tasks/{task_id}"),
    ("put", "/v1/tasks/{task_id}"),
    ("patch", "/v1/tasks/{task_id}"),
    ("post", "/v1/tasks/{task_id}/complete"),
    ("post", "/v1/tasks/{task_id}/reassign"),
    ("post", "/v1/tasks/{task_id}/snooze"),
    ("delete", "/v1/tasks/{task_id}"),
    ("get", "/v1/tasks/stats"),
    ("get", "/v1/tasks/analytics"),
    ("get", "/v1/tasks/customer/{customer_id}"),
    ("get", "/v1/tasks/{task_id}/events"),
]


@pytest.fixture(scope="module")
async def openapi(client: AsyncTestClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


async def test_the_schema_is_served_without_an_api_key(client: AsyncTestClient) -> None:
    response = await client.get("/schema/openapi.json")

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_the_schema_documents_every_endpoint(
    openapi: dict[str, Any], method: str, path: str
) -> None:
    operation = openapi["paths"][path][method]

    assert operation["operationId"]
    assert operation["summary"]


async def test_the_schema_documents_the_api_key_scheme(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]

    [(name, scheme)] = schemes.items()
    assert scheme == {"type": "apiKey", "name": "x-tenant-api-key", "in": "header"}
    assert openapi["security"] == [{name: []}]


async def test_the_schema_documents_the_list_query_parameters(openapi: dict[str, Any]) -> None:
    parameters = {p["name"] for p in openapi["paths"]["/v1/tasks"]["get"]["parameters"]}

    assert parameters >= {
        "page",
        "limit",
        "sort",
        "sortDirection",
        "ownerId",
        "queueId",
        "status",
        "priority",
        "relatedCustomerId",
        "linkedEntityType",
        "linkedEntityId",
        "linkedPipelineId",
        "dueBefore",
        "dueAfter",
        "overdue",
        "search",
    }


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_the_schema_documents_the_error_envelope(
    openapi: dict[str, Any], method: str, path: str
) -> None:
    responses = openapi["paths"][path][method]["responses"]

    for status in ("400", "401"):
        schema = resolve(openapi, responses[status]["content"]["application/json"]["schema"])
        assert schema["required"] == ["error"]
        error = resolve(openapi, schema["properties"]["error"])
        assert set(error["properties"]) == {"code", "message", "details"}
