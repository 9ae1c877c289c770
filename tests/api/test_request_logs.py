"""The log: one JSON object per line; one access line per request, written once it is answered,
with time, level, request id, tenant id, route, status and duration; an audit line per event;
never an API key, its hash or a request body; the level set by TASKS_LOG_LEVEL."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.http.app import create_app
from app.settings import Settings
from app.tenants import hash_key
from tests.api.captured_log import LOGGERS, captured_log
from tests.api.task_api import TaskApi
from tests.api.test_rate_limits import a_client_address, client_of, running_lifespan
from tests.conftest import Tenant
from tests.fault.served_api import ServedApi


def a_request_id() -> dict[str, str]:
    return {"x-request-id": f"logs-{secrets.token_hex(6)}"}


async def test_a_request_is_one_access_line_with_its_request_tenant_route_status_and_time(
    tasks: TaskApi, tenant: Tenant
) -> None:
    sent = a_request_id()
    with captured_log() as log:
        response = await tasks.call("POST", "/v1/tasks", json={"title": "Logged"}, headers=sent)

    assert response.status_code == 201
    line = log.access(sent["x-request-id"])
    assert line["level"] == "info"
    assert datetime.fromisoformat(line["time"]).utcoffset() == UTC.utcoffset(None)
    assert line["tenantId"] == tenant.tenant_id
    assert (line["method"], line["path"], line["route"]) == ("POST", "/v1/tasks", "/v1/tasks")
    assert line["status"] == 201
    assert isinstance(line["durationMs"], float | int)
    assert 0 <= line["durationMs"] < 10_000


async def test_a_task_is_logged_under_its_route_template_and_its_path(tasks: TaskApi) -> None:
    task_id = (await tasks.create())["_id"]
    sent = a_request_id()
    with captured_log() as log:
        await tasks.call("GET", f"/v1/tasks/{task_id}", headers=sent)

    line = log.access(sent["x-request-id"])
    assert line["route"] == "/v1/tasks/{task_id}"
    assert line["path"] == f"/v1/tasks/{task_id}"
    assert line["status"] == 200


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nowhere"), ("DELETE", "/v1/tasks")])
async def test_a_request_no_route_answers_keeps_its_id(
    tasks: TaskApi, method: str, path: str
) -> None:
    sent = a_request_id()
    with captured_log() as log:
        response = await tasks.call(method, path, headers=sent)

    assert response.status_code in (404, 405)
    assert response.headers["x-request-id"] == sent["x-request-id"]
    assert log.access(sent["x-request-id"])["status"] == response.status_code


async def test_the_access_line_follows_the_audit_lines_of_its_request(tasks: TaskApi) -> None:
    sent = a_request_id()
    with captured_log() as log:
        response = await tasks.call("POST", "/v1/tasks", json={"title": "Ordered"}, headers=sent)

    loggers = [
        entry["logger"] for entry in log.entries() if entry.get("requestId") in sent.values()
    ]
    assert loggers == ["tasks_api.audit", "tasks_api.access"]
    assert log.access(sent["x-request-id"])["status"] == response.status_code


async def test_the_audit_line_of_an_event_shares_the_requests_id(
    tasks: TaskApi, tenant: Tenant
) -> None:
    sent = a_request_id()
    with captured_log() as log:
        response = await tasks.call("POST", "/v1/tasks", json={"title": "Audited"}, headers=sent)

    audit = [e for e in log.entries("tasks_api.audit") if e["requestId"] == sent["x-request-id"]]
    assert len(audit) == 1
    assert audit[0]["message"] == audit[0]["type"] == "TASK_CREATED"
    assert audit[0]["tenantId"] == tenant.tenant_id
    assert audit[0]["taskId"] == response.json()["task"]["_id"]
    assert audit[0]["actor"] == tenant.key_id


async def test_a_refused_request_is_logged_without_a_tenant(database_url: str) -> None:
    sent = a_request_id()
    # From an address of its own: the suite's other refusals would have it answered 429.
    app = create_app(Settings(database_url=database_url, run_projections=False))
    async with running_lifespan(app), client_of(app, a_client_address()) as fresh_client:
        with captured_log() as log:
            response = await fresh_client.get("/v1/tasks", headers=sent)

    assert response.status_code == 401
    line = log.access(sent["x-request-id"])
    assert (line["tenantId"], line["status"], line["route"]) == (None, 401, "/v1/tasks")


async def test_a_request_no_route_matches_is_logged_too(client: AsyncTestClient) -> None:
    with captured_log() as log:
        response = await client.delete("/no/such/route")

    assert response.status_code == 404
    [line] = [e for e in log.entries("tasks_api.access") if e["path"] == "/no/such/route"]
    assert (line["method"], line["route"], line["status"]) == ("DELETE", None, 404)


async def test_no_line_carries_an_api_key_its_hash_or_a_request_body(
    tasks: TaskApi, tenant: Tenant, client: AsyncTestClient
) -> None:
    secret_in_body = f"body-secret-{secrets.token_hex(8)}"
    unknown_key = f"tk_{secrets.token_urlsafe(32)}"
    with captured_log() as log:
        task = await tasks.create(title=secret_in_body, description=secret_in_body)
        await tasks.update("PATCH", task["_id"], {"description": f"{secret_in_body} again"})
        await tasks.call("POST", "/v1/tasks", json={"title": secret_in_body, "priority": "??"})
        await tasks.call("POST", "/v1/tasks", content=f'{{"title": "{secret_in_body}"')
        await client.get("/v1/tasks", headers={"x-tenant-api-key": unknown_key})
        await client.get(f"/v1/tasks?search={secret_in_body}", headers=tenant.headers)

    assert len(log.entries("tasks_api.access")) == 6
    assert len(log.entries("tasks_api.audit")) == 2
    text = "\n".join(log.lines)
    for key in (tenant.api_key, unknown_key):
        digest = hash_key(key)
        for form in (key, digest.hex(), base64.b64encode(digest).decode(), repr(digest)):
            assert form not in text
    assert secret_in_body not in text


@pytest.fixture
def restored_levels() -> Iterator[None]:
    """Configuring an app sets the process's logger levels: the other tests log at INFO."""
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
async def app_logging_warnings(database_url: str, restored_levels: None) -> AsyncIterator[Litestar]:
    app = create_app(
        Settings(database_url=database_url, run_projections=False, log_level="warning")
    )
    async with running_lifespan(app):
        yield app


async def test_the_level_is_the_setting(app_logging_warnings: Litestar, tenant: Tenant) -> None:
    sent = a_request_id()
    with captured_log() as log:
        async with client_of(app_logging_warnings) as client:
            response = await client.post(
                "/v1/tasks", json={"title": "Quiet"}, headers={**tenant.headers, **sent}
            )

    assert response.status_code == 201
    assert log.lines == []
    assert logging.getLogger("tasks_api").getEffectiveLevel() == logging.WARNING


def test_every_line_is_one_json_object() -> None:
    with captured_log() as log:
        logging.getLogger("tasks_api.test").warning("two\nlines", extra={"fields": {"n": 1}})

    [line] = log.lines
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["level"], entry["message"], entry["n"]) == ("warning", "two\nlines", 1)


async def test_a_served_process_logs_json_lines_without_keys_or_uvicorns_access_log(
    database_url: str, tenant: Tenant, tmp_path: Path
) -> None:
    server = ServedApi(
        database_url, tmp_path / "served.log", TASKS_RUN_PROJECTIONS="false", TASKS_LOG_LEVEL="info"
    )

    def requests() -> list[int]:
        with server:
            url = f"{server.url}/v1/tasks"
            return [
                httpx.post(url, json={"title": "Served"}, headers=tenant.headers).status_code,
                httpx.get(url, headers={"x-tenant-api-key": "tk_wrong"}).status_code,
            ]

    statuses = await asyncio.to_thread(requests)

    assert statuses == [201, 401]
    entries = [json.loads(line) for line in server.log.read_text().splitlines()]
    loggers = {entry["logger"] for entry in entries}
    assert {"uvicorn.error", "tasks_api.access", "tasks_api.audit"} <= loggers
    assert "uvicorn.access" not in loggers
    text = server.log.read_text()
    assert tenant.api_key not in text and "tk_wrong" not in text
