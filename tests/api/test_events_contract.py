"""docs/events.md is the contract of the log's consumers: its payload schemas are the OpenAPI
document's, the events the API writes match them, each call produces the events the page
says, and the export's event is the feed's."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema_rs import validator_for
from litestar.testing import AsyncTestClient

from app.cli import main
from app.published_events import payload_schema
from domain.events import EVENT_TYPES
from tests.api.task_api import TaskApi, now, timestamp
from tests.conftest import Tenant
from tests.integration.projection_support import wait_until

EVENTS_PAGE = Path(__file__).parents[2] / "docs" / "events.md"
SCHEMA_BLOCK = re.compile(r"^```json schema (\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def documented_schemas() -> dict[str, Any]:
    """The payload schema docs/events.md gives for each event type."""
    return {name: json.loads(body) for name, body in SCHEMA_BLOCK.findall(EVENTS_PAGE.read_text())}


def component(document: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][reference["$ref"].rsplit("/")[-1]]
    return schema


@pytest.fixture(scope="module")
async def openapi(client: AsyncTestClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


async def write_every_kind_of_event(tasks: TaskApi) -> str:
    """A task through every event type, reopened and completed again; its id."""
    task = await tasks.create(
        title="Every event", ownerId="agent_1", ownerName="Ann", dueDate=timestamp(now())
    )
    task_id = task["_id"]
    await tasks.act(task_id, "snooze", {"newDueDate": timestamp(now() + timedelta(days=1))})
    await tasks.update("PATCH", task_id, {"priority": "high", "ownerId": "agent_2"})
    await tasks.update("PATCH", task_id, {"status": "completed"})
    await tasks.update("PATCH", task_id, {"status": "in_progress"})
    await tasks.act(task_id, "complete", {"outcome": "escalated"})
    assert (await tasks.call("DELETE", f"/v1/tasks/{task_id}")).status_code == 200
    return task_id


def test_the_page_gives_the_payload_schema_of_every_event_type() -> None:
    documented = documented_schemas()

    assert list(documented) == list(EVENT_TYPES)
    for name, schema in documented.items():
        assert schema == payload_schema(name), name


def test_each_payload_schema_leaves_the_type_to_the_event() -> None:
    for name in EVENT_TYPES:
        assert "type" not in payload_schema(name)["properties"], name


async def test_the_feeds_item_in_the_openapi_document_has_the_same_payload_schemas(
    openapi: dict[str, Any],
) -> None:
    answer = openapi["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
    page = component(openapi, answer["application/json"]["schema"])
    item = component(openapi, page["properties"]["events"]["items"])

    assert item["properties"]["type"]["enum"] == list(EVENT_TYPES)
    assert item["properties"]["data"]["oneOf"] == [payload_schema(name) for name in EVENT_TYPES]


async def test_every_event_the_api_writes_matches_the_document(
    tasks: TaskApi, openapi: dict[str, Any]
) -> None:
    task_id = await write_every_kind_of_event(tasks)
    feed = (await tasks.list("/v1/events", limit=1000))["events"]
    history = await tasks.events(task_id)
    item = {"$ref": "#/components/schemas/AuditEvent", "components": openapi["components"]}
    validator = validator_for(item, validate_formats=True)

    assert {event["type"] for event in history} == set(EVENT_TYPES)
    for event in [*feed, *history]:
        errors = [error.message for error in validator.iter_errors(event)]
        assert errors == [], event
        own = validator_for(payload_schema(event["type"]), validate_formats=True)
        assert own.is_valid(event["data"]), event


async def test_each_call_produces_the_events_the_page_says(tasks: TaskApi) -> None:
    task = await tasks.create(ownerId="agent_1")
    task_id = task["_id"]

    await tasks.update("PATCH", task_id, {"ownerId": "agent_2", "status": "completed"})
    await tasks.update("PATCH", task_id, {"status": "pending"})
    await tasks.update("PATCH", task_id, {"ownerName": "Bea"})

    events = await tasks.events(task_id)
    assert [event["type"] for event in events] == [
        "TASK_CREATED",
        "TASK_REASSIGNED",
        "TASK_COMPLETED",
        "TASK_UPDATED",
        "TASK_UPDATED",
    ]
    reopened = events[3]["data"]["changes"]
    assert set(reopened) == {"status", "completedAt", "outcome"}  # it had no notes
    assert reopened["status"] == {"from": "completed", "to": "pending"}
    assert events[4]["data"]["changes"] == {"ownerName": {"from": None, "to": "Bea"}}
    # One command's events share their time and request, with consecutive versions.
    assert events[1]["recordedAt"] == events[2]["recordedAt"]
    assert events[1]["metadata"]["requestId"] == events[2]["metadata"]["requestId"]
    assert [event["version"] for event in events] == [1, 2, 3, 4, 5]


async def test_an_exported_event_is_the_feeds_event(
    tasks: TaskApi, tenant: Tenant, database_url: str
) -> None:
    await write_every_kind_of_event(tasks)

    exported = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["audit", "export", "--tenant", tenant.tenant_id],
        env={"DATABASE_URL": database_url},
    )
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    feed: list[dict[str, Any]] = []

    async def fed_all() -> bool:
        # The feed stops short of the oldest transaction in flight anywhere in the cluster,
        # which other test runs may hold open for a moment: read again until it is past.
        feed[:] = (await tasks.list("/v1/events", limit=1000))["events"]
        return len(feed) == len(lines)

    await wait_until(fed_all)
    assert lines == feed
