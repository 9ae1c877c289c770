"""Rate limits: a tenant's requests in any 60 seconds never exceed its limit (its tier's, or its
own), however many servers share the count, in PostgreSQL or in Redis; over it a request is
answered 429 with Retry-After; every authenticated response shows the quota left; one tenant's
burst never throttles another; an address that fails to authenticate too often hears 429, not
401, and still never locks a tenant out."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from app import tenants
from app.cli import main
from app.database import Database
from app.http.app import create_app
from app.rate_limits import RateLimiter, open_rate_limiter
from app.rate_limits.policy import (
    FAILED_AUTHENTICATIONS_LIMIT,
    TIER_LIMITS,
    WINDOW_SECONDS,
    failed_authentications_quota,
)
from app.settings import Settings
from app.tenants import Principal
from tests.api.test_errors_and_auth import assert_error
from tests.conftest import Tenant
from tests.fault.served_api import ServedApi

REDIS_URL = os.environ.get("TASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STORES = ["postgres", "redis"]
# Far from now, so that no sweep of the counts by a request of the present meets these seconds.
LONG_AGO = 1_000_000_000.0
FIELD = re.compile(r'^"(?P<policy>[a-z-]+)";(?P<name>[qr])=(?P<value>\d+);(?P<other>[wt])=(\d+)$')


def redis_url_for(store: str) -> str | None:
    return REDIS_URL if store == "redis" else None


def a_client_address() -> str:
    """An address no other test fails from (198.18.0.0/15 is for benchmarks)."""
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(256)}"


async def throttled_tenant(engine: AsyncEngine, rate_limit: int, tier: str = "starter") -> Tenant:
    async with engine.begin() as conn:
        issued = await tenants.create_tenant(conn, "throttled", tier, rate_limit)
    return Tenant(issued.tenant_id, issued.key_id, issued.api_key)


def a_principal(rate_limit: int) -> Principal:
    return Principal(secrets.token_hex(12), "key", "starter", rate_limit)


def fields(response: httpx.Response) -> dict[str, Any]:
    """The RateLimit-Policy and RateLimit fields of a response, parsed."""
    policy = FIELD.match(response.headers["RateLimit-Policy"])
    limit = FIELD.match(response.headers["RateLimit"])
    assert policy and limit, response.headers
    assert policy["policy"] == limit["policy"]
    assert (policy["name"], policy["other"], limit["name"], limit["other"]) == ("q", "w", "r", "t")
    return {
        "policy": policy["policy"],
        "quota": int(policy["value"]),
        "window": int(policy.group(5)),
        "remaining": int(limit["value"]),
        "reset": int(limit.group(5)),
    }


def assert_throttled(response: httpx.Response, policy: str = "tenant") -> int:
    """A 429 RateLimitError in the envelope, with its Retry-After; the seconds to wait."""
    error = assert_error(response, 429, "RateLimitError")
    assert error["details"], error
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_SECONDS + 1
    shown = fields(response)
    assert (shown["policy"], shown["remaining"], shown["reset"]) == (policy, 0, retry_after)
    return retry_after


@asynccontextmanager
async def served(database_url: str, store: str) -> AsyncIterator[Litestar]:
    """An app instance, its lifespan running, counting in `store`."""
    app = create_app(
        Settings(database_url=database_url, run_projections=False, redis_url=redis_url_for(store))
    )
    async with running_lifespan(app):
        yield app


@asynccontextmanager
async def running_lifespan(app: Litestar) -> AsyncIterator[None]:
    # In a task of its own: a fixture's setup and teardown run in different tasks, and the
    # lifespan must end in the task it began in.
    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    running = asyncio.create_task(lifespan())
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait([running, waiting], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if running.done():
        running.result()
    try:
        yield
    finally:
        stop.set()
        await running


def client_of(app: Litestar, address: str = "192.0.2.1") -> httpx.AsyncClient:
    """A client of an app instance that calls from `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 50_000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver.local")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def app(database_url: str, store: str) -> AsyncIterator[Litestar]:
    async with served(database_url, store) as app:
        yield app


@pytest.fixture
async def rate_limiter(db: Database, store: str) -> AsyncIterator[RateLimiter]:
    async with open_rate_limiter(redis_url_for(store), db.pool) as rate_limiter:
        yield rate_limiter


# The limit: from the tier, or the tenant's own.


@pytest.mark.parametrize("tier", list(TIER_LIMITS))
async def test_a_tenants_limit_is_its_tiers(app: Litestar, engine: AsyncEngine, tier: str) -> None:
    async with engine.begin() as conn:
        issued = await tenants.create_tenant(conn, "by tier", tier)

    async with client_of(app) as client:
        response = await client.get("/v1/tasks", headers={"x-tenant-api-key": issued.api_key})

    assert response.status_code == 200
    shown = fields(response)
    assert (shown["policy"], shown["quota"], shown["window"]) == ("tenant", TIER_LIMITS[tier], 60)
    assert shown["remaining"] == TIER_LIMITS[tier] - 1


def test_the_tiers_are_starter_growth_and_enterprise() -> None:
    assert TIER_LIMITS == {"starter": 300, "growth": 1_200, "enterprise": 6_000}
    assert set(TIER_LIMITS) == set(tenants.TIERS)


async def test_a_tenant_created_with_a_rate_limit_has_that_limit(
    app: Litestar, database_url: str
) -> None:
    command = ["tenant", "create", "own limit", "--tier", "enterprise", "--rate-limit", "3"]
    result = await asyncio.to_thread(
        CliRunner().invoke, main, [*command, "--json"], env={"DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    headers = {"x-tenant-api-key": json.loads(result.stdout)["apiKey"]}

    async with client_of(app) as client:
        answers = [await client.get("/v1/tasks", headers=headers) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [fields(answer)["quota"] for answer in answers] == [3, 3, 3, 3]


# Exactly the limit, however many servers.


@pytest.fixture
def two_servers(database_url: str, store: str, tmp_path: Path) -> Iterator[list[ServedApi]]:
    """Two `tasks-api serve` processes on one database, counting in `store`."""
    servers = [
        ServedApi(
            database_url,
            tmp_path / f"server-{n}.log",
            TASKS_RUN_PROJECTIONS="false",
            REDIS_URL=redis_url_for(store) or "",
        )
        for n in range(2)
    ]
    try:
        # Side by side: each takes a second or two to import and migrate.
        with ThreadPoolExecutor() as pool:
            list(pool.map(ServedApi.start, servers))
        yield servers
    finally:
        with ThreadPoolExecutor() as pool:
            list(pool.map(ServedApi.stop, servers))


async def test_of_a_concurrent_burst_over_two_server_processes_exactly_the_limit_is_accepted(
    two_servers: list[ServedApi], engine: AsyncEngine
) -> None:
    """A count kept in each process would accept twice the limit here."""
    limit, burst = 40, 100
    tenant = await throttled_tenant(engine, limit)

    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.get(f"{two_servers[n % 2].url}/v1/tasks", headers=tenant.headers)
                for n in range(burst)
            )
        )

    accepted = [answer for answer in answers if answer.status_code == 200]
    assert len(accepted) == limit
    # Each accepted request was counted after all the others before it: no two saw one count.
    assert sorted(fields(answer)["remaining"] for answer in accepted) == list(range(limit))
    for answer in answers:
        if answer.status_code != 200:
            assert_throttled(answer)


async def test_two_server_processes_racing_one_tenant_at_its_limit_accept_exactly_it(
    two_servers: list[ServedApi], engine: AsyncEngine
) -> None:
    """Clients of each process keep asking, as fast as they are answered, for seconds on end:
    each process leases room from the shared count as its own runs out, and between them
    they never accept more than the limit, nor refuse while any room is left."""
    limit, racing_seconds, clients_per_server = 150, 3.0, 8
    tenant = await throttled_tenant(engine, limit)
    answers: list[httpx.Response] = []

    async def keep_asking(client: httpx.AsyncClient, server: ServedApi) -> None:
        stop_at = asyncio.get_running_loop().time() + racing_seconds
        while asyncio.get_running_loop().time() < stop_at:
            answers.append(await client.get(f"{server.url}/v1/tasks", headers=tenant.headers))

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(
            *(
                keep_asking(client, server)
                for server in two_servers
                for _ in range(clients_per_server)
            )
        )

    accepted = [answer for answer in answers if answer.status_code == 200]
    assert len(answers) > 2 * limit
    assert len(accepted) == limit
    # No answer told of more room than there was. A process tells what is left as if every
    # slice leased before its own were used whole; one that a process hands back unused, as
    # its second ends, makes room the answers before could not know of: they told less.
    remaining = sorted(fields(answer)["remaining"] for answer in accepted)
    assert all(0 <= told <= truth for told, truth in zip(remaining, range(limit), strict=True))
    for answer in answers:
        if answer.status_code != 200:
            assert_throttled(answer)


async def test_two_app_instances_sharing_a_store_accept_exactly_the_limit(
    database_url: str, engine: AsyncEngine, store: str
) -> None:
    limit, burst = 25, 60
    tenant = await throttled_tenant(engine, limit)

    async with (
        served(database_url, store) as first,
        served(database_url, store) as second,
        client_of(first) as one,
        client_of(second) as other,
    ):
        creating = (
            (one, other)[n % 2].post("/v1/tasks", json={"title": "x"}, headers=tenant.headers)
            for n in range(burst)
        )
        answers = await asyncio.gather(*creating)

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * limit + [429] * (burst - limit)
    async with engine.connect() as conn:
        created = await conn.scalar(
            sa.text("SELECT count(*) FROM events WHERE tenant_id = :tenant"),
            {"tenant": tenant.tenant_id},
        )
    assert created == limit


# What the client is told.


async def test_every_authenticated_response_shows_the_quota_left(
    app: Litestar, engine: AsyncEngine
) -> None:
    tenant = await throttled_tenant(engine, 5)
    async with client_of(app) as client:
        calls = [
            client.get("/v1/tasks", headers=tenant.headers),
            client.get("/v1/tasks/507f1f77bcf86cd799439011", headers=tenant.headers),
            client.post("/v1/tasks", json={"priority": "p0"}, headers=tenant.headers),
            client.post("/v1/tasks", json={"title": "x"}, headers=tenant.headers),
            client.get("/v1/tasks?sort=nonsense", headers=tenant.headers),
        ]
        answers = [await call for call in calls]

    assert [answer.status_code for answer in answers] == [200, 404, 400, 201, 400]
    shown = [fields(answer) for answer in answers]
    assert [each["remaining"] for each in shown] == [4, 3, 2, 1, 0]
    assert {(each["policy"], each["quota"], each["window"]) for each in shown} == {
        ("tenant", 5, 60)
    }
    # The first request leaves the window 60 seconds after its second ends, at the latest.
    assert all(60 <= each["reset"] <= 61 for each in shown)


async def test_over_the_limit_the_answer_is_429_with_retry_after_in_the_envelope(
    app: Litestar, engine: AsyncEngine
) -> None:
    tenant = await throttled_tenant(engine, 2)
    async with client_of(app) as client:
        for _ in range(2):
            assert (await client.get("/v1/tasks", headers=tenant.headers)).status_code == 200

        refused = await client.post("/v1/tasks", json={"title": "x"}, headers=tenant.headers)
        listed = await client.get("/v1/tasks", headers=tenant.headers)

    retry_after = assert_throttled(refused)
    assert 60 <= retry_after <= 61
    assert refused.json()["error"]["details"] == ["tenant: at most 2 in any 60 seconds"]
    assert refused.headers["x-request-id"]
    assert_throttled(listed)


async def test_a_request_refused_for_its_query_counts_against_the_limit(
    app: Litestar, engine: AsyncEngine
) -> None:
    tenant = await throttled_tenant(engine, 2)
    async with client_of(app) as client:
        refused = await client.get("/v1/tasks?colour=red", headers=tenant.headers)
        accepted = await client.get("/v1/tasks", headers=tenant.headers)
        throttled = await client.get("/v1/tasks?colour=red", headers=tenant.headers)

    assert refused.status_code == 400
    assert fields(refused)["remaining"] == 1
    assert accepted.status_code == 200
    assert_throttled(throttled)


async def test_another_tenants_burst_never_throttles_a_tenant(
    app: Litestar, engine: AsyncEngine
) -> None:
    busy = await throttled_tenant(engine, 10)
    quiet = await throttled_tenant(engine, 10)

    async with client_of(app) as client:
        burst = await asyncio.gather(
            *(client.get("/v1/tasks", headers=busy.headers) for _ in range(30))
        )
        answers = [await client.get("/v1/tasks", headers=quiet.headers) for _ in range(10)]

    assert sum(answer.status_code == 200 for answer in burst) == 10
    assert [answer.status_code for answer in answers] == [200] * 10
    assert [fields(answer)["remaining"] for answer in answers] == list(range(9, -1, -1))


async def test_a_route_that_does_not_authenticate_is_neither_counted_nor_limited(
    app: Litestar,
) -> None:
    address = a_client_address()
    async with client_of(app, address) as client:
        for _ in range(FAILED_AUTHENTICATIONS_LIMIT + 1):
            await client.get("/v1/tasks")

        schema = await client.get("/schema/openapi.json")

    assert schema.status_code == 200
    assert "RateLimit" not in schema.headers
    assert "RateLimit-Policy" not in schema.headers
    responses = schema.json()["paths"]["/v1/tasks"]["get"]["responses"]
    assert responses["429"]["description"].startswith("RateLimitError")


async def test_an_unreachable_redis_is_a_503_with_retry_after(
    database_url: str, engine: AsyncEngine
) -> None:
    tenant = await throttled_tenant(engine, 5)
    settings = Settings(
        database_url=database_url, run_projections=False, redis_url="redis://127.0.0.1:9/0"
    )
    app = create_app(settings)
    async with running_lifespan(app), client_of(app) as client:
        response = await client.get("/v1/tasks", headers=tenant.headers)

    assert_error(response, 503, "ServiceUnavailableError")
    assert response.headers["Retry-After"] == "1"


# Failed authentication, per client address.


async def test_an_address_that_fails_to_authenticate_too_often_is_answered_429(
    app: Litestar, engine: AsyncEngine
) -> None:
    failing, elsewhere = a_client_address(), a_client_address()

    async with client_of(app, failing) as client, client_of(app, elsewhere) as other_client:
        failures = [
            await client.get("/v1/tasks", headers={"x-tenant-api-key": key})
            for key in ["tk_wrong", ""] * (FAILED_AUTHENTICATIONS_LIMIT // 2)
        ]
        refused = await client.get("/v1/tasks", headers={"x-tenant-api-key": "tk_wrong"})
        refused_without_key = await client.get("/v1/tasks")
        failure_elsewhere = await other_client.get("/v1/tasks", headers={"x-tenant-api-key": "x"})

    for failure in failures:
        assert_error(failure, 401, "AuthenticationError")
    assert [fields(failure)["remaining"] for failure in failures] == list(
        range(FAILED_AUTHENTICATIONS_LIMIT - 1, -1, -1)
    )
    assert {fields(failure)["policy"] for failure in failures} == {"failed-authentication"}
    assert {fields(failure)["quota"] for failure in failures} == {FAILED_AUTHENTICATIONS_LIMIT}
    assert 60 <= assert_throttled(refused, "failed-authentication") <= 61
    assert_throttled(refused_without_key, "failed-authentication")
    assert_error(failure_elsewhere, 401, "AuthenticationError")


async def test_failures_from_its_address_never_lock_a_tenant_out(
    app: Litestar, engine: AsyncEngine
) -> None:
    """Its clients may share the address with anyone, or all come through one proxy."""
    tenant = await throttled_tenant(engine, 100)
    shared = a_client_address()

    async with client_of(app, shared) as client:
        for _ in range(FAILED_AUTHENTICATIONS_LIMIT + 5):
            await client.get("/v1/tasks", headers={"x-tenant-api-key": "tk_guess"})
        response = await client.get("/v1/tasks", headers=tenant.headers)

    assert response.status_code == 200
    assert fields(response)["policy"] == "tenant"


def test_the_failed_authentications_limit_is_stricter_than_every_tier() -> None:
    assert min(TIER_LIMITS.values()) > FAILED_AUTHENTICATIONS_LIMIT


def test_an_ipv6_client_is_counted_by_its_64_bit_prefix() -> None:
    first = failed_authentications_quota("2001:db8:1:2::1")
    same_network = failed_authentications_quota("2001:db8:1:2:ffff:ffff:ffff:ffff")
    next_network = failed_authentications_quota("2001:db8:1:3::1")

    assert first.counter == same_network.counter != next_network.counter
    assert failed_authentications_quota("192.0.2.1").counter == "address:192.0.2.1"


# A sliding window, on a clock the test sets.


async def accepted_at(rate_limiter: RateLimiter, principal: Principal, at: float, n: int) -> int:
    decisions = [await rate_limiter.admit(principal, LONG_AGO + at) for _ in range(n)]
    return sum(decision.accepted for decision in decisions)


async def test_a_burst_either_side_of_a_minute_boundary_never_exceeds_the_limit(
    rate_limiter: RateLimiter,
) -> None:
    principal = a_principal(10)

    assert await accepted_at(rate_limiter, principal, 59.9, 15) == 10
    # A fixed calendar minute would start afresh here and let 10 more in.
    assert await accepted_at(rate_limiter, principal, 60.1, 15) == 0
    assert await accepted_at(rate_limiter, principal, 119.99, 1) == 0
    assert await accepted_at(rate_limiter, principal, 120.0, 15) == 10


async def test_requests_leave_the_window_one_second_at_a_time(
    rate_limiter: RateLimiter,
) -> None:
    principal = a_principal(10)
    assert await accepted_at(rate_limiter, principal, 10.5, 4) == 4
    assert await accepted_at(rate_limiter, principal, 50.5, 6) == 6

    refused = await rate_limiter.admit(principal, LONG_AGO + 70.5)
    # The four of second 10 leave when second 71 starts; the six of second 50, at 111.
    assert await accepted_at(rate_limiter, principal, 71.0, 5) == 4
    assert await accepted_at(rate_limiter, principal, 110.9, 1) == 0
    assert await accepted_at(rate_limiter, principal, 111.0, 7) == 6

    assert not refused.accepted
    assert refused.seconds_until_room == 1  # from 70.5 to 71.0, in whole seconds


async def test_retry_after_names_the_first_second_a_request_is_accepted_again(
    rate_limiter: RateLimiter,
) -> None:
    principal = a_principal(3)
    for at in (5.2, 20.7, 33.1):
        assert await accepted_at(rate_limiter, principal, at, 1) == 1

    refused = await rate_limiter.admit(principal, LONG_AGO + 40.4)
    wait = refused.seconds_until_room

    assert not refused.accepted and refused.remaining == 0
    assert await accepted_at(rate_limiter, principal, 40.4 + wait - 1, 1) == 0
    assert await accepted_at(rate_limiter, principal, 40.4 + wait, 1) == 1


async def test_in_any_60_seconds_no_more_than_the_limit_is_accepted_and_no_less_is_refused(
    rate_limiter: RateLimiter,
) -> None:
    """Random arrivals over four minutes: no interval of WINDOW_SECONDS holds more than the
    limit, and a refused request found the limit taken within the 61 seconds before it (a
    second's caution at most)."""
    limit = 12
    principal = a_principal(limit)
    arrivals = random.Random(4)
    moments = sorted(arrivals.uniform(0, 240) for _ in range(300))
    accepted: list[float] = []
    refused: list[float] = []
    for at in moments:
        decision = await rate_limiter.admit(principal, LONG_AGO + at)
        (accepted if decision.accepted else refused).append(at)

    for start in accepted:
        assert sum(start <= at < start + WINDOW_SECONDS for at in accepted) <= limit
    for at in refused:
        assert sum(at - WINDOW_SECONDS - 1 < before <= at for before in accepted) >= limit
    assert len(accepted) >= 4 * limit


async def test_the_postgresql_counts_keep_no_second_that_no_window_reaches(
    db: Database, engine: AsyncEngine
) -> None:
    async with open_rate_limiter(None, db.pool) as rate_limiter:
        idle, busy = a_principal(5), a_principal(5)
        await accepted_at(rate_limiter, idle, 1000.0, 3)
        await accepted_at(rate_limiter, busy, 1000.0 + 2 * WINDOW_SECONDS + 1, 1)

    async with engine.connect() as conn:
        seconds = await conn.scalar(
            sa.text("SELECT count(*) FROM rate_limit_counts WHERE counter = :counter"),
            {"counter": f"tenant:{idle.tenant_id}"},
        )
    assert seconds == 0
