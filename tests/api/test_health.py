"""GET /health/live and /health/ready: no API key, never rate limited, nothing in the audit
log, not in the API's schema. Ready is 200 with each check when the database answers, its
schema is at the newest migration and no projection lags past TASKS_READY_MAX_LAG_MS; otherwise
503 with the same body, naming the check that fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.http import auth
from app.http.app import create_app
from app.migrate import head_revisions, upgrade_to_head
from app.rate_limits.policy import FAILED_AUTHENTICATIONS_LIMIT
from app.settings import Settings
from tests.api.captured_log import captured_log
from tests.api.task_api import TaskApi
from tests.api.test_rate_limits import REDIS_URL, a_client_address, client_of, running_lifespan
from tests.database import create_database, drop_database

CHECKS = {"database", "migrations", "projections"}
NOBODY_LISTENS = "postgresql://postgres@127.0.0.1:1/tasks"
NO_REDIS = "redis://127.0.0.1:9/0"


# The session's tests leave events unprojected, and any long transaction on the server holds
# the projections back: where lag is not the point, a bound no test reaches.
NO_LAG_BOUND = 3_600_000


@pytest.fixture
async def migrated_database(server_url: str) -> AsyncIterator[str]:
    """A database of its own, migrated, with no event yet."""
    url = await create_database(server_url)
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        yield url
    finally:
        await drop_database(server_url, url)


@asynccontextmanager
async def client_on(database_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app of its own on `database_url`, with its lifespan running."""
    app = create_app(Settings(database_url=database_url, run_projections=False, **settings))
    async with running_lifespan(app), client_of(app, a_client_address()) as client:
        yield client


def failing(response: httpx.Response) -> set[str]:
    """The checks a 503 from ready names as failing."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "failing"
    assert set(body["checks"]) == CHECKS
    return {name for name, check in body["checks"].items() if not check["ok"]}


async def test_live_answers_ok_without_an_api_key(client: AsyncTestClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_is_200_with_every_check_passing(migrated_database: str) -> None:
    async with client_on(migrated_database) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECKS
    assert all(check["ok"] for check in body["checks"].values())
    assert all(head in body["checks"]["migrations"]["detail"] for head in head_revisions())


async def test_ready_is_503_while_a_projection_lags_past_the_bound(
    database_url: str, tasks: TaskApi
) -> None:
    await tasks.create()
    await asyncio.sleep(0.05)
    async with client_on(database_url, ready_max_lag_ms=20) as client:
        lagging = await client.get("/health/ready")
    async with client_on(database_url, ready_max_lag_ms=NO_LAG_BOUND) as client:
        within_bound = await client.get("/health/ready")

    assert failing(lagging) == {"projections"}
    detail = lagging.json()["checks"]["projections"]["detail"]
    assert "task_rollups" in detail and "20 ms" in detail
    assert within_bound.status_code == 200, within_bound.text


async def test_ready_is_503_on_a_database_without_the_migrations(server_url: str) -> None:
    empty = await create_database(server_url)
    try:
        async with client_on(empty) as client:
            response = await client.get("/health/ready")
    finally:
        await drop_database(server_url, empty)

    assert failing(response) == {"migrations", "projections"}
    checks = response.json()["checks"]
    assert checks["database"]["ok"]
    assert "no migration" in checks["migrations"]["detail"]
    assert "not checked" in checks["projections"]["detail"]


async def test_ready_is_503_when_the_database_does_not_answer() -> None:
    async with client_on(NOBODY_LISTENS) as client:
        response = await client.get("/health/ready")
        live = await client.get("/health/live")

    assert failing(response) == CHECKS
    assert response.json()["checks"]["database"]["detail"] == "unreachable"
    assert live.status_code == 200


async def test_ready_checks_redis_when_the_rate_limits_are_counted_there(
    migrated_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # However recently another test met an unreachable Redis.
    monkeypatch.setattr(auth, "_counters_warned_at", -auth.COUNTERS_WARNING_SECONDS)
    async with client_on(migrated_database, redis_url=REDIS_URL) as client:
        answering = await client.get("/health/ready")
    async with client_on(migrated_database, redis_url=NO_REDIS) as client:
        with captured_log() as log:
            silent = await client.get("/health/ready")
            refused = await client.get("/v1/tasks", headers={"x-tenant-api-key": "tk_any"})
            await client.get("/v1/tasks", headers={"x-tenant-api-key": "tk_any"})

    assert answering.status_code == 200, answering.text
    assert answering.json()["checks"]["rateLimits"] == {"ok": True, "detail": "Redis answers"}
    assert silent.status_code == 503
    assert silent.json()["checks"]["rateLimits"]["ok"] is False
    assert refused.status_code == 503
    warnings = [entry for entry in log.entries("tasks_api.auth") if entry["level"] == "warning"]
    assert len(warnings) == 1, "said once, not for every request"
    assert "the rate limits cannot be counted" in warnings[0]["message"]


async def test_an_address_over_its_rate_limit_is_still_answered(database_url: str) -> None:
    async with client_on(database_url, ready_max_lag_ms=NO_LAG_BOUND) as client:
        bad_key = {"x-tenant-api-key": "tk_not-a-key"}
        refusals = [await client.get("/v1/tasks", headers=bad_key) for _ in range(2)]
        while refusals[-1].status_code != 429:
            refusals.append(await client.get("/v1/tasks", headers=bad_key))
            assert len(refusals) <= FAILED_AUTHENTICATIONS_LIMIT + 1
        answers = [await client.get(path) for path in ("/health/live", "/health/ready", "/metrics")]

    assert [answer.status_code for answer in answers] == [200, 200, 200]


async def test_health_checks_write_nothing_but_their_access_lines(client: AsyncTestClient) -> None:
    with captured_log() as log:
        await client.get("/health/live")
        await client.get("/health/ready")

    assert {entry["logger"] for entry in log.entries()} == {"tasks_api.access"}


async def test_health_and_metrics_are_not_in_the_api_schema(client: AsyncTestClient) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]

    assert not [path for path in paths if path.startswith(("/health", "/metrics"))]
    assert "/v1/tasks" in paths
