"""A request still unanswered after TASKS_REQUEST_TIMEOUT_SECONDS is answered 503 with
Retry-After in the error envelope; the command it was running rolls back, and the server goes
on serving."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.http.app import create_app
from app.settings import Settings, load_settings
from tests.conftest import Tenant

TIMEOUT_SECONDS = 0.5


@pytest.fixture
async def impatient_client(database_url: str) -> AsyncIterator[AsyncTestClient]:
    settings = Settings(
        database_url=database_url, run_projections=False, request_timeout_seconds=TIMEOUT_SECONDS
    )
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as client:
        yield client


async def test_a_command_stuck_past_the_timeout_is_answered_503_and_leaves_nothing(
    impatient_client: AsyncTestClient, engine: AsyncEngine, tenant: Tenant
) -> None:
    async with engine.connect() as blocker:
        # Every append waits for this lock until the blocker lets go.
        await blocker.execute(sa.text("LOCK TABLE events IN SHARE MODE"))
        started = time.monotonic()
        response = await impatient_client.post(
            "/v1/tasks", json={"title": "Stuck"}, headers=tenant.headers
        )
        waited = time.monotonic() - started
        await blocker.rollback()

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["x-request-id"]
    assert response.json()["error"]["code"] == "ServiceUnavailableError"
    assert TIMEOUT_SECONDS <= waited < TIMEOUT_SECONDS + 1.5
    listed = await impatient_client.get("/v1/tasks", headers=tenant.headers)
    assert listed.json()["total"] == 0
    async with engine.connect() as conn:
        events = await conn.scalar(
            sa.text("SELECT count(*) FROM events WHERE tenant_id = :tenant"),
            {"tenant": tenant.tenant_id},
        )
    assert events == 0


async def test_the_server_serves_again_once_the_stuck_command_is_cut(
    impatient_client: AsyncTestClient, engine: AsyncEngine, tenant: Tenant
) -> None:
    async with engine.connect() as blocker:
        await blocker.execute(sa.text("LOCK TABLE events IN SHARE MODE"))
        for _ in range(3):
            stuck = await impatient_client.post(
                "/v1/tasks", json={"title": "Stuck"}, headers=tenant.headers
            )
            assert stuck.status_code == 503
        await blocker.rollback()

    created = await impatient_client.post(
        "/v1/tasks", json={"title": "Through"}, headers=tenant.headers
    )

    assert created.status_code == 201, created.text
    listed = await impatient_client.get("/v1/tasks", headers=tenant.headers)
    assert [task["title"] for task in listed.json()["tasks"]] == ["Through"]


def test_the_request_timeout_is_a_setting_of_10_seconds_by_default() -> None:
    assert load_settings({}).request_timeout_seconds == 10
    assert load_settings({"TASKS_REQUEST_TIMEOUT_SECONDS": "2.5"}).request_timeout_seconds == 2.5
