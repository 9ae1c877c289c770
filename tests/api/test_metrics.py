"""GET /metrics in the Prometheus text format: requests by route template and status with their
latency, events appended by type, version conflicts and retries, idempotent replays, rate-limit
refusals, the database pool in use, and each projection's checkpoint and lag. Under `serve
--workers N` a scrape adds up every worker's counts, whichever worker answers it."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from app import clock, service
from app.database import Database
from app.http.app import create_app
from app.service import Caller
from app.settings import Settings
from app.store import event_log
from app.tenants import Principal
from domain.commands import TaskChanges, UpdateTask
from domain.decide import decide
from domain.evolve import evolve
from projections import task_view
from projections.status import projection_status
from store.tenant import tenant_transaction
from tests.api.task_api import TaskApi
from tests.api.test_rate_limits import client_of, running_lifespan, throttled_tenant
from tests.conftest import Tenant
from tests.fault.served_api import ServedApi

FAMILIES = {
    "tasks_http_requests": "counter",
    "tasks_http_request_duration_seconds": "histogram",
    "tasks_events_appended": "counter",
    "tasks_version_conflicts": "counter",
    "tasks_command_retries": "counter",
    "tasks_idempotent_replays": "counter",
    "tasks_rate_limit_rejections": "counter",
    "tasks_db_pool_connections_in_use": "gauge",
    "tasks_db_pool_size": "gauge",
    "tasks_projection_checkpoint_position": "gauge",
    "tasks_projection_events_behind": "gauge",
    "tasks_projection_lag_seconds": "gauge",
}
LOCK_WAIT_SECONDS = 5


@dataclass(frozen=True)
class Scrape:
    text: str

    def families(self) -> dict[str, str]:
        return {family.name: family.type for family in text_string_to_metric_families(self.text)}

    def samples(self, name: str) -> list[dict[str, str]]:
        """The label sets of every sample called `name`."""
        return [
            sample.labels
            for family in text_string_to_metric_families(self.text)
            for sample in family.samples
            if sample.name == name
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; 0 when there is none yet."""
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0


async def scrape(client: AsyncTestClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def counted(before: Scrape, after: Scrape) -> Callable[..., float]:
    """How much a sample grew between two scrapes."""
    return lambda name, **labels: after.value(name, **labels) - before.value(name, **labels)


async def test_a_scrape_is_the_prometheus_text_format_with_every_metric(
    client: AsyncTestClient, tasks: TaskApi
) -> None:
    await tasks.create()

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert Scrape(response.text).families().items() >= FAMILIES.items()


async def test_a_scraper_asking_for_openmetrics_gets_it(client: AsyncTestClient) -> None:
    accept = "application/openmetrics-text; version=1.0.0"

    response = await client.get("/metrics", headers={"accept": accept})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_requests_are_counted_by_route_template_and_status_with_their_time(
    client: AsyncTestClient, tasks: TaskApi
) -> None:
    task_id = (await tasks.create())["_id"]
    before = await scrape(client)
    for path in (f"/v1/tasks/{task_id}", f"/v1/tasks/{task_id}", "/v1/tasks/" + "0" * 24):
        await tasks.call("GET", path)
    after = await scrape(client)

    grew = counted(before, after)
    route = {"method": "GET", "route": "/v1/tasks/{task_id}"}
    assert grew("tasks_http_requests_total", **route, status="200") == 2
    assert grew("tasks_http_requests_total", **route, status="404") == 1
    assert grew("tasks_http_request_duration_seconds_count", **route) == 3
    assert grew("tasks_http_request_duration_seconds_sum", **route) > 0
    assert task_id not in after.text


async def test_a_request_no_route_matches_is_counted_under_one_label(
    client: AsyncTestClient,
) -> None:
    path = f"/nothing/{secrets.token_hex(4)}"
    before = await scrape(client)
    await client.get(path)
    await client.request("BREW", path)
    after = await scrape(client)

    grew = counted(before, after)
    assert grew("tasks_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert grew("tasks_http_requests_total", method="other", route="unmatched", status="404") == 1
    assert path not in after.text and "BREW" not in after.text


async def test_events_appended_are_counted_by_type(client: AsyncTestClient, tasks: TaskApi) -> None:
    before = await scrape(client)
    task = await tasks.create()
    await tasks.act(task["_id"], "complete", {"outcome": "resolved"})
    after = await scrape(client)

    grew = counted(before, after)
    assert grew("tasks_events_appended_total", type="TASK_CREATED") == 1
    assert grew("tasks_events_appended_total", type="TASK_COMPLETED") == 1
    assert grew("tasks_events_appended_total", type="TASK_SNOOZED") == 0


async def test_an_idempotent_replay_is_counted(client: AsyncTestClient, tasks: TaskApi) -> None:
    headers = {"Idempotency-Key": secrets.token_hex(8)}
    before = await scrape(client)
    first = await tasks.call("POST", "/v1/tasks", json={"title": "Once"}, headers=headers)
    again = await tasks.call("POST", "/v1/tasks", json={"title": "Once"}, headers=headers)
    after = await scrape(client)

    assert (first.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    grew = counted(before, after)
    assert grew("tasks_idempotent_replays_total", route="/v1/tasks") == 1
    assert grew("tasks_events_appended_total", type="TASK_CREATED") == 1


async def test_rate_limit_refusals_are_counted_by_policy(
    client: AsyncTestClient, engine: AsyncEngine
) -> None:
    throttled = await throttled_tenant(engine, rate_limit=1)
    before = await scrape(client)
    answers = [await client.get("/v1/tasks", headers=throttled.headers) for _ in range(3)]
    after = await scrape(client)

    assert [answer.status_code for answer in answers] == [200, 429, 429]
    grew = counted(before, after)
    assert grew("tasks_rate_limit_rejections_total", policy="tenant") == 2
    assert grew("tasks_http_requests_total", method="GET", route="/v1/tasks", status="429") == 2


async def test_a_command_that_meets_a_version_it_did_not_read_counts_a_conflict_and_a_retry(
    db: Database, client: AsyncTestClient, engine: AsyncEngine, tasks: TaskApi, tenant: Tenant
) -> None:
    task_id = (await tasks.create())["_id"]
    caller = Caller(Principal(tenant.tenant_id, tenant.key_id), "race")

    def retitle(title: str) -> UpdateTask:
        return UpdateTask(TaskChanges(title=title), merge=True)

    before = await scrape(client)
    # Another writer holds version 2 uncommitted: the command reads version 1, and its
    # append waits on the writer's and then finds the version taken.
    async with tenant_transaction(db.pool, tenant.tenant_id) as outside:
        found = await task_view.load(outside, tenant.tenant_id, task_id)
        assert found is not None
        task, version, _head = found
        now = clock.now()
        new_events = decide(retitle("outside"), task, now)
        await event_log.append(
            outside,
            tenant.tenant_id,
            task_id,
            version,
            new_events,
            {},
            now,
            evolve(task, new_events[0], now),
        )
        command = asyncio.create_task(service.run(db, caller, task_id, retitle("second")))
        await waiting_on_a_lock(engine)
    result = await command
    after = await scrape(client)

    assert result.version == 3
    grew = counted(before, after)
    assert grew("tasks_version_conflicts_total") == 1
    assert grew("tasks_command_retries_total") == 1


async def waiting_on_a_lock(engine: AsyncEngine) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            if await conn.scalar(query):
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the command never waited on the other writer")


async def test_the_pool_gauge_counts_the_connections_in_use(database_url: str) -> None:
    # An app on the test's own event loop, so that the test can hold one of its connections.
    app = create_app(Settings(database_url=database_url, run_projections=False))
    async with running_lifespan(app), client_of(app) as client:
        pool: asyncpg.Pool = app.state.db.pool
        before = Scrape((await client.get("/metrics")).text)
        async with pool.acquire() as held:
            await held.execute("SELECT 1")
            during = Scrape((await client.get("/metrics")).text)
        after = Scrape((await client.get("/metrics")).text)

    in_use = "tasks_db_pool_connections_in_use"
    assert during.value(in_use) == before.value(in_use) + 1
    assert after.value(in_use) == before.value(in_use)
    assert during.value("tasks_db_pool_size") >= Settings().db_pool_size


async def test_each_projections_checkpoint_and_lag_are_read_at_the_scrape(
    client: AsyncTestClient, tasks: TaskApi, engine: AsyncEngine
) -> None:
    await tasks.create()
    await asyncio.sleep(0.05)

    scraped = await scrape(client)
    statuses = await projection_status(engine, clock.now())

    # The rollups, and the log digests' runner, which `audit verify` checks behind.
    assert [status.name for status in statuses] == ["task_rollups", "log_digest"]
    for status in statuses:
        labels = {"projection": status.name}
        assert status.events_behind >= 1
        assert scraped.value("tasks_projection_checkpoint_position", **labels) == (
            status.checkpoint.position
        )
        assert scraped.value("tasks_projection_events_behind", **labels) == status.events_behind
        lag = scraped.value("tasks_projection_lag_seconds", **labels)
        assert 0.05 <= lag <= status.lag_ms / 1000


# Several worker processes.


def log_entries(log: Path) -> list[dict[str, object]]:
    """Every line of a served process's output, each of which must be one JSON object."""
    return [json.loads(line) for line in log.read_text().splitlines()]


def workers_that_created(log: Path) -> set[object]:
    return {
        entry["pid"]
        for entry in log_entries(log)
        if entry["logger"] == "tasks_api.access" and entry["status"] == 201
    }


@dataclass(frozen=True)
class Traffic:
    created: int
    throttled: list[int]
    replayed: str | None
    scraped: Scrape


def send_traffic(server: ServedApi, tenant: Tenant, throttled: Tenant) -> Traffic:
    """Tasks created on new connections until two workers have answered, a throttled tenant's
    refusal and an idempotent replay; then a scrape."""
    tasks = f"{server.url}/v1/tasks"
    created = 0
    for _ in range(10):
        for _ in range(8):
            # A connection of its own each time: the workers take turns accepting them.
            answer = httpx.post(tasks, json={"title": "Counted"}, headers=tenant.headers)
            assert answer.status_code == 201, answer.text
            created += 1
        time.sleep(0.1)
        if len(workers_that_created(server.log)) >= 2:
            break
    refusals = [httpx.get(tasks, headers=throttled.headers).status_code for _ in range(2)]
    once = {**tenant.headers, "Idempotency-Key": secrets.token_hex(8)}
    answers = [httpx.post(tasks, json={"title": "Once"}, headers=once) for _ in range(2)]
    return Traffic(
        created=created + 1,
        throttled=refusals,
        replayed=answers[1].headers.get("Idempotent-Replayed"),
        scraped=Scrape(httpx.get(f"{server.url}/metrics").text),
    )


async def test_a_scrape_adds_up_the_counts_of_every_worker(
    database_url: str, engine: AsyncEngine, tenant: Tenant, tmp_path: Path
) -> None:
    throttled = await throttled_tenant(engine, rate_limit=1)
    server = ServedApi(
        database_url,
        tmp_path / "served.log",
        workers=2,
        TASKS_RUN_PROJECTIONS="false",
        TASKS_DB_POOL_SIZE="3",
        TASKS_LOG_LEVEL="info",
        REDIS_URL="",
    )
    await asyncio.to_thread(server.start)
    try:
        traffic = await asyncio.to_thread(send_traffic, server, tenant, throttled)
    finally:
        await asyncio.to_thread(server.stop)
    statuses = await projection_status(engine, clock.now())

    assert len(workers_that_created(server.log)) == 2
    scraped = traffic.scraped
    created = {"method": "POST", "route": "/v1/tasks", "status": "201"}
    # The replay answers 201 too, without appending.
    assert scraped.value("tasks_http_requests_total", **created) == traffic.created + 1
    assert scraped.value("tasks_events_appended_total", type="TASK_CREATED") == traffic.created
    assert traffic.replayed == "true"
    assert scraped.value("tasks_idempotent_replays_total", route="/v1/tasks") == 1
    assert traffic.throttled == [200, 429]
    assert scraped.value("tasks_rate_limit_rejections_total", policy="tenant") == 1
    assert scraped.value("tasks_db_pool_size") == 2 * 3
    # Read once, by the worker answering the scrape: not once per worker.
    assert scraped.samples("tasks_projection_checkpoint_position") == [
        {"projection": status.name} for status in statuses
    ]
    for status in statuses:
        labels = {"projection": status.name}
        position = scraped.value("tasks_projection_checkpoint_position", **labels)
        assert position == status.checkpoint.position
