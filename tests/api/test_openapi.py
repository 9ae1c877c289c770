"""The OpenAPI document at /schema: every endpoint, the API-key scheme, the error envelope."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from jsonschema_rs import validator_for
from litestar.testing import AsyncTestClient
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from app.http import examples
from domain.commands import CompleteTask, CreateTask, ReassignTask, SnoozeTask, TaskChanges
from tests.api.task_api import TASK_OBJECT_FIELDS, TaskApi

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
# The schemas of request bodies, and of what they hold.
BODY_SCHEMAS = [
    "CreateTask",
    "TaskChanges",
    "CompleteTask",
    "SnoozeTask",
    "ReassignTask",
    "LinkedEntity-Input",
]
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


def parameters(document: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    """The operation's parameters, those the document's components hold among them."""
    found = operation.get("parameters", [])
    return [
        document["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
        for p in found
    ]


def query_parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in operation["parameters"] if p.get("in") == "query"}


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
    parameters = set(query_parameters(openapi["paths"]["/v1/tasks"]["get"]))

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
            codes = {example["value"]["error"]["code"] for example in content["examples"].values()}
            [code] = codes
            assert operation["responses"][status]["description"].startswith(code)


@pytest.mark.parametrize(
    ("page", "viewer"),
    [("/schema", "/schema/assets/scalar/standalone.js"), ("/schema/swagger", "SwaggerUIBundle")],
)
async def test_the_schema_is_an_interactive_page(
    client: AsyncTestClient, page: str, viewer: str
) -> None:
    response = await client.get(page)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert viewer in response.text


@pytest.mark.parametrize("path", sorted({path for _, path in ENDPOINTS}))
async def test_options_allows_every_method_the_document_declares_and_head_as_405_does(
    client: AsyncTestClient, openapi: dict[str, Any], path: str
) -> None:
    url = path.format(task_id="6b0b16356b0b6c831b300789", customer_id="cust_1")
    declared = {method.upper() for method in openapi["paths"][path]} | {"OPTIONS"}
    if "GET" in declared:
        declared.add("HEAD")

    options = await client.options(url)
    refused = await client.request("TRACE", url)

    assert options.status_code == 204
    assert set(options.headers["Allow"].split(", ")) == declared
    assert refused.status_code == 405
    assert set(refused.headers["Allow"].split(", ")) == declared


# The request headers each operation honours, beside X-Request-Id, which every one does.
HONOURED = {
    "createTask": {"Idempotency-Key"},
    "getTask": {"If-None-Match"},
    **{
        command: {"If-Match", "Idempotency-Key"}
        for command in (
            "updateTask",
            "patchTask",
            "completeTask",
            "snoozeTask",
            "reassignTask",
            "deleteTask",
        )
    },
}
# The operations whose success carries a task, and so its version as the ETag.
TAGGED = {
    "createTask",
    "getTask",
    "updateTask",
    "patchTask",
    "completeTask",
    "snoozeTask",
    "reassignTask",
}
# The task's fields the API may send as null.
NULLABLE_TASK_FIELDS = {
    "description",
    "outcome",
    "dueDate",
    "completedAt",
    "ownerId",
    "ownerName",
    "queueId",
    "claimedAt",
    "claimedBy",
    "relatedCustomerId",
    "relatedCustomerName",
    "relatedConversationId",
    "completionNotes",
    "linkedEntity",
    "autoComplete",
    "agentReminders",
    "snoozedUntil",
}


def test_the_document_is_valid_openapi(openapi: dict[str, Any]) -> None:
    errors = [error.message for error in OpenAPIV31SpecValidator(openapi).iter_errors()]

    assert errors == []


def examples_with_their_schemas(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Every example in the document, with the schema it illustrates and where it is: those of
    media types, parameters and headers, and a schema's own `examples`."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from examples_with_their_schemas(item, f"{path}/{index}")
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("schema"), dict):
        for name, example in (node.get("examples") or {}).items():
            yield f"{path}/examples/{name}", example["value"], node["schema"]
    if isinstance(node.get("examples"), list) and "schema" not in node:
        for index, value in enumerate(node["examples"]):
            yield f"{path}/examples/{index}", value, node
    for key, value in node.items():
        yield from examples_with_their_schemas(value, f"{path}/{key}")


def test_every_example_in_the_document_is_valid_against_its_schema(
    openapi: dict[str, Any],
) -> None:
    found = list(examples_with_their_schemas(openapi))

    invalid = {
        where: [error.message for error in validator_for(schema).iter_errors(value)]
        for where, value, schema in (
            (where, value, {**schema, "components": openapi["components"]})
            for where, value, schema in found
        )
    }
    assert {where: errors for where, errors in invalid.items() if errors} == {}
    # Request bodies, answers, errors and headers, each with examples.
    assert len(found) > 60


def test_every_operation_declares_the_request_headers_it_honours(
    openapi: dict[str, Any],
) -> None:
    for method, path, operation in operations(openapi):
        declared = {p["name"] for p in parameters(openapi, operation) if p["in"] == "header"}
        expected = HONOURED.get(operation["operationId"], set()) | {"X-Request-Id"}
        assert declared == expected, (method, path)


def test_every_answer_declares_the_headers_it_carries(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        operation_id = operation["operationId"]
        for status, answer in operation["responses"].items():
            counted = status not in ("500", "503")
            expected = {"X-Request-Id": True, "RateLimit-Policy": counted, "RateLimit": counted}
            if status in ("429", "503"):
                expected["Retry-After"] = True
            if status in ("304", "412") or (status < "300" and operation_id in TAGGED):
                expected["ETag"] = True
            if status < "300" and "Idempotency-Key" in HONOURED.get(operation_id, ()):
                expected["Idempotent-Replayed"] = False
            declared = {name: header["required"] for name, header in answer["headers"].items()}
            assert declared == expected, (method, path, status)


def test_the_task_schema_requires_every_field_the_api_sends(openapi: dict[str, Any]) -> None:
    task = openapi["components"]["schemas"]["Task"]

    nullable = {
        name
        for name, field in task["properties"].items()
        if {"type": "null"} in field.get("anyOf", [])
    }
    assert set(task["required"]) == set(task["properties"]) == TASK_OBJECT_FIELDS
    assert nullable == NULLABLE_TASK_FIELDS


def test_a_linked_entity_is_sent_whole_and_may_be_given_in_part(
    openapi: dict[str, Any],
) -> None:
    schemas = openapi["components"]["schemas"]

    assert schemas["LinkedEntity-Output"]["required"] == ["type", "id", "pipelineId", "name"]
    assert schemas["LinkedEntity-Input"]["required"] == ["type", "id"]
    assert "LinkedEntity" not in schemas


@pytest.mark.parametrize("command", sorted(BODIES))
def test_a_commands_body_refuses_fields_it_does_not_name(
    openapi: dict[str, Any], command: str
) -> None:
    operation = next(op for _, _, op in operations(openapi) if op["operationId"] == command)
    body = operation["requestBody"]

    schema = resolve(openapi, body["content"]["application/json"]["schema"]["allOf"][0])
    assert schema["additionalProperties"] is False
    assert body["required"] is (command != "completeTask")


def test_the_title_is_documented_as_trimmed(openapi: dict[str, Any]) -> None:
    for command in ("CreateTask", "TaskChanges"):
        title = openapi["components"]["schemas"][command]["properties"]["title"]
        title = next(option for option in title.get("anyOf", [title]) if "pattern" in option)
        assert "Trimmed" in title["description"]
        assert re.search(title["pattern"], "  Call back  ")
        assert not re.search(title["pattern"], " \t ")
        assert not re.search(title["pattern"], "t" * 501)


@pytest.mark.parametrize(
    ("name", "accepted", "refused"),
    [
        ("status", ["pending", "not_started,in_progress"], ["done", "pending,", " pending", ""]),
        ("priority", ["urgent", "low,high"], ["critical", "low, high"]),
    ],
)
def test_the_choice_filters_take_their_values_separated_by_commas(
    openapi: dict[str, Any], name: str, accepted: list[str], refused: list[str]
) -> None:
    schema = query_parameters(openapi["paths"]["/v1/tasks"]["get"])[name]

    assert [value for value in accepted if re.search(schema["pattern"], value)] == accepted
    assert [value for value in refused if re.search(schema["pattern"], value)] == []


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/tasks", "dueBefore"),
        ("/v1/tasks", "dueAfter"),
        ("/v1/tasks/{task_id}", "asOf"),
        ("/v1/tasks/analytics", "startDate"),
        ("/v1/tasks/analytics", "endDate"),
    ],
)
def test_a_time_parameter_is_a_date_time_or_a_date_in_the_years_kept(
    openapi: dict[str, Any], path: str, name: str
) -> None:
    schema = query_parameters(openapi["paths"][path]["get"])[name]

    assert {option["format"] for option in schema["anyOf"]} == {"date-time", "date"}
    for option in schema["anyOf"]:
        assert re.search(option["pattern"], "0002-01-01")
        assert not re.search(option["pattern"], "0001-12-31")
        assert not re.search(option["pattern"], "9999-01-01")


def test_the_events_cursor_is_two_numbers(openapi: dict[str, Any]) -> None:
    after = query_parameters(openapi["paths"]["/v1/events"]["get"])["after"]

    assert re.search(after["pattern"], "7311.1042")
    assert not re.search(after["pattern"], "7311")
    assert not re.search(after["pattern"], "1" * 19 + ".1")


def test_customer_tasks_take_the_lists_filters(openapi: dict[str, Any]) -> None:
    listed = query_parameters(openapi["paths"]["/v1/tasks"]["get"])
    customers = query_parameters(openapi["paths"]["/v1/tasks/customer/{customer_id}"]["get"])

    shared = {"status", "priority", "ownerId", "dueBefore", "dueAfter", "overdue", "search"}
    assert set(customers) == shared | {"page", "limit", "sort", "sortDirection"}
    assert {name: customers[name] for name in customers} == {
        name: listed[name] for name in customers
    }


def test_every_string_a_request_carries_is_declared_without_the_nul_character(
    openapi: dict[str, Any],
) -> None:
    def strings(schema: Any) -> Iterator[dict[str, Any]]:
        if isinstance(schema, list):
            for item in schema:
                yield from strings(item)
        elif isinstance(schema, dict):
            if schema.get("type") == "string" and not {"enum", "anyOf", "oneOf"} & set(schema):
                yield schema
            for value in schema.values():
                yield from strings(value)

    requests = [
        *(openapi["components"]["schemas"][name] for name in BODY_SCHEMAS),
        *(
            p["schema"]
            for _, _, operation in operations(openapi)
            for p in operation.get("parameters", [])
            if p.get("in") in ("query", "path")
        ),
    ]

    found = list(strings(requests))
    assert [schema for schema in found if re.search(schema["pattern"], "a\x00b")] == []
    assert len(found) > 30


async def breaking(tasks: TaskApi, rule: str) -> tuple[str, httpx.Response]:
    """The operation id of a command that breaks `rule` on a task's state, and its answer."""
    task = (await tasks.create(dueDate="2030-01-01T00:00:00Z"))["_id"]
    completed = (await tasks.create(status="completed"))["_id"]
    deferred = (await tasks.create(status="deferred"))["_id"]
    full = (await tasks.create(metadata={f"key{n}": n for n in range(50)}))["_id"]
    late = {"reminders": [{"remindAt": "9998-06-01T00:00:00Z"}]}
    reminded = (await tasks.create(dueDate="2030-01-01T00:00:00Z", agentReminders=late))["_id"]
    command, path, body = {
        examples.ALREADY_COMPLETED: ("completeTask", f"{completed}/complete", {}),
        examples.DEFERRED: ("completeTask", f"{deferred}/complete", {}),
        examples.COMPLETION_ON_OPEN_TASK: ("updateTask", task, {"outcome": "resolved"}),
        examples.TOO_MANY_KEYS: ("patchTask", full, {"metadata": {"one": "more"}}),
        examples.COMPLETED_NOT_SNOOZED: (
            "snoozeTask",
            f"{completed}/snooze",
            {"newDueDate": "2040-01-01T00:00:00Z"},
        ),
        examples.NOT_IN_FUTURE: (
            "snoozeTask",
            f"{task}/snooze",
            {"newDueDate": "2001-01-01T00:00:00Z"},
        ),
        examples.REMINDER_OUT_OF_CALENDAR: (
            "snoozeTask",
            f"{reminded}/snooze",
            {"newDueDate": "2032-01-01T00:00:00Z"},
        ),
    }[rule]
    method = {"updateTask": "PUT", "patchTask": "PATCH"}.get(command, "POST")
    return command, await tasks.call(method, f"/v1/tasks/{path}", json=body)


@pytest.mark.parametrize(
    "rule",
    [
        examples.ALREADY_COMPLETED,
        examples.DEFERRED,
        examples.COMPLETION_ON_OPEN_TASK,
        examples.TOO_MANY_KEYS,
        examples.COMPLETED_NOT_SNOOZED,
        examples.NOT_IN_FUTURE,
        examples.REMINDER_OUT_OF_CALENDAR,
    ],
)
async def test_a_rule_on_the_tasks_state_is_documented_as_the_api_answers_it(
    openapi: dict[str, Any], tasks: TaskApi, rule: str
) -> None:
    command, response = await breaking(tasks, rule)

    operation = next(op for _, _, op in operations(openapi) if op["operationId"] == command)
    documented = operation["responses"]["400"]["content"]["application/json"]["examples"]
    assert response.status_code == 400
    assert response.json() in [example["value"] for example in documented.values()]
