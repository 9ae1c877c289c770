"""The OpenAPI document at /schema: every endpoint, the API-key scheme, the error envelope."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from jsonschema_rs import validator_for
from litestar.testing import AsyncTestClient

from domain.commands import CompleteTask, CreateTask, ReassignTask, SnoozeTask, TaskChanges

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
    ("get", "/v1/events"),
]
# The commands that take a body, and the body each takes.
BODIES = {
    "createTask": CreateTask,
    "updateTask": TaskChanges,
    "patchTask": TaskChanges,
    "completeTask": CompleteTask,
    "snoozeTask": SnoozeTask,
    "reassignTask": ReassignTask,
}
# Every operation can meet a bad request, a bad key, the rate limit and the database.
EVERY_ERROR = {"400", "401", "429", "500", "503"}
# What each operation can fail with besides: a task its path names may not exist (an unknown
# customer has an empty page); a command reads a body and may conflict; one on a task may find
# If-Match stale.
MORE_ERRORS = {
    "createTask": {"409", "413"},
    "listTasks": set(),
    "getTask": {"404"},
    "updateTask": {"404", "409", "412", "413"},
    "patchTask": {"404", "409", "412", "413"},
    "completeTask": {"404", "409", "412", "413"},
    "reassignTask": {"404", "409", "412", "413"},
    "snoozeTask": {"404", "409", "412", "413"},
    "deleteTask": {"404", "409", "412", "413"},
    "getTaskStats": set(),
    "getTaskAnalytics": set(),
    "listCustomerTasks": set(),
    "getTaskEvents": {"404"},
    "listEvents": set(),
}


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


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_endpoint_is_in_the_schema(openapi: dict[str, Any]) -> None:
    assert {(method, path) for method, path, _ in operations(openapi)} == set(ENDPOINTS)


async def test_every_operation_has_a_summary_and_a_description(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        assert operation.get("summary"), (method, path)
        assert len(operation.get("description", "")) > 40, (method, path)


async def test_every_command_documents_its_body_with_an_example_it_accepts(
    openapi: dict[str, Any],
) -> None:
    for method, path, operation in operations(openapi):
        command = BODIES.get(operation["operationId"])
        if command is None:
            assert "requestBody" not in operation, (method, path)
            continue
        media = operation["requestBody"]["content"]["application/json"]
        schema = resolve(openapi, media["schema"]["allOf"][0])
        assert schema["title"] == command.__name__
        [example] = media["schema"]["examples"]
        # The example is a body the API decodes into the command.
        assert msgspec.convert(example, command), (method, path)


async def test_the_examples_are_the_references(openapi: dict[str, Any]) -> None:
    def example(path: str, method: str) -> Any:
        body = openapi["paths"][path][method]["requestBody"]["content"]["application/json"]
        return body["schema"]["examples"][0]

    assert example("/v1/tasks", "post")["title"] == "Follow up with customer"
    assert example("/v1/tasks/{task_id}", "put")["title"] == "Updated title"
    assert example("/v1/tasks/{task_id}/complete", "post")["outcome"] == "resolved"
    assert example("/v1/tasks/{task_id}/snooze", "post")["newDueDate"] == "2026-04-16T10:00:00Z"
    assert example("/v1/tasks/{task_id}/reassign", "post")["newOwnerId"] == "agent_002"


async def test_every_operation_documents_its_answer_with_an_example_of_its_schema(
    openapi: dict[str, Any],
) -> None:
    for method, path, operation in operations(openapi):
        [status] = [status for status in operation["responses"] if status.startswith("2")]
        content = operation["responses"][status]["content"]["application/json"]
        [example] = content["examples"].values()
        # The schema's references resolve against the document's components.
        schema = {**content["schema"], "components": openapi["components"]}
        errors = [error.message for error in validator_for(schema).iter_errors(example["value"])]
        assert errors == [], (method, path)


async def test_the_create_answer_is_the_references(openapi: dict[str, Any]) -> None:
    answer = openapi["paths"]["/v1/tasks"]["post"]["responses"]["201"]
    [example] = answer["content"]["application/json"]["examples"].values()

    assert example["value"]["message"] == "Task created successfully"
    assert example["value"]["task"]["_id"] == "507f1f77bcf86cd799439011"
    assert example["value"]["task"]["claimStatus"] == "claimed"
    assert example["value"]["task"]["created_at"] == "2026-04-10T12:00:00Z"


async def test_every_operation_documents_each_error_it_can_answer_and_no_other(
    openapi: dict[str, Any],
) -> None:
    for method, path, operation in operations(openapi):
        errors = {status for status in operation["responses"] if status >= "400"}
        assert errors == EVERY_ERROR | MORE_ERRORS[operation["operationId"]], (method, path)
        for status in errors:
            content = operation["responses"][status]["content"]["application/json"]
            [example] = content["examples"].values()
            code = example["value"]["error"]["code"]
            assert operation["responses"][status]["description"].startswith(code)


@pytest.mark.parametrize(
    ("page", "viewer"),
    [("/schema", "@scalar/api-reference"), ("/schema/swagger", "SwaggerUIBundle")],
)
async def test_the_schema_is_an_interactive_page(
    client: AsyncTestClient, page: str, viewer: str
) -> None:
    response = await client.get(page)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert viewer in response.text


@pytest.mark.parametrize("path", sorted({path for _, path in ENDPOINTS}))
async def test_options_allows_every_method_the_document_declares_for_the_path_as_405_does(
    client: AsyncTestClient, openapi: dict[str, Any], path: str
) -> None:
    url = path.format(task_id="6b0b16356b0b6c831b300789", customer_id="cust_1")
    declared = {method.upper() for method in openapi["paths"][path]} | {"OPTIONS"}

    options = await client.options(url)
    refused = await client.request("TRACE", url)

    assert options.status_code == 204
    assert set(options.headers["Allow"].split(", ")) == declared
    assert refused.status_code == 405
    assert set(refused.headers["Allow"].split(", ")) == declared
