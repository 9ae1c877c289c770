"""While the database is unreachable, or gives up on a statement, the API answers 503 with
Retry-After, never 500, and it serves again as soon as the database does."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import tenants
from app.database import engine_of
from app.http.app import create_app
from app.migrate import upgrade_to_head
from app.settings import Settings
from tests.api.captured_log import captured_log
from tests.api.test_rate_limits import REDIS_URL, client_of, running_lifespan
from tests.conftest import Tenant
from tests.database import create_database, drop_database

UNREACHABLE = "postgresql://postgres@127.0.0.1:9/tasks"
STATEMENT_TIMEOUT_MS = 200


async def test_an_unreachable_database_is_a_503_with_retry_after() -> None:
    app = create_app(Settings(database_url=UNREACHABLE, run_projections=False))
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        response = await client.get("/v1/tasks", headers={"x-tenant-api-key": "tk_any"})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "ServiceUnavailableError"


@pytest.mark.parametrize(
    "refused", [{"database": "tasks_no_such_database"}, {"username": "tasks_no_such_role"}]
)
async def test_a_server_refusing_the_database_or_role_is_a_503_named_in_the_log(
    server_url: str, refused: dict[str, str]
) -> None:
    # Dropped or renamed under a running service, or a password rotated: the request was
    # sound, the service cannot serve it.
    url = make_url(server_url).set(**refused).render_as_string(hide_password=False)
    app = create_app(Settings(database_url=url, run_projections=False))
    with captured_log() as log:
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            response = await client.get("/v1/tasks", headers={"x-tenant-api-key": "tk_any"})

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "ServiceUnavailableError"
    [warning] = log.entries("tasks_api.errors")
    assert next(iter(refused.values())) in warning["message"]


async def test_connections_cut_by_the_server_are_replaced(
    client: AsyncTestClient, tenant: Tenant, engine: AsyncEngine, database_url: str
) -> None:
    assert (await client.get("/v1/tasks", headers=tenant.headers)).status_code == 200
    async with engine.connect() as conn:
        await conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": make_url(database_url).database},
        )
    # The fixtures' own pool lost its connections too; start it afresh for the tests to come.
    await engine.dispose()

    statuses = []
    for _ in range(20):
        response = await client.get("/v1/tasks", headers=tenant.headers)
        statuses.append(response.status_code)
        if response.status_code == 200:
            break
        await asyncio.sleep(0.1)

    assert set(statuses) <= {200, 503}
    assert statuses[-1] == 200


async def test_a_statement_the_database_gives_up_on_is_a_503_on_every_path(
    database_url: str, engine: AsyncEngine, tenant: Tenant
) -> None:
    # Reads and writes through SQLAlchemy and on the driver's own connection alike.
    settings = Settings(
        database_url=database_url, run_projections=False, statement_timeout_ms=STATEMENT_TIMEOUT_MS
    )
    app = create_app(settings)
    async with running_lifespan(app), client_of(app) as client:
        task = (await client.post("/v1/tasks", json={"title": "x"}, headers=tenant.headers)).json()
        with captured_log() as log:
            async with engine.connect() as holder:
                # Every statement on these tables waits for the lock past its timeout.
                await holder.execute(
                    sa.text("LOCK TABLE events, task_view IN ACCESS EXCLUSIVE MODE")
                )
                responses = {
                    path: await client.request(method, path, json=body, headers=tenant.headers)
                    for method, path, body in [
                        ("POST", "/v1/tasks", {"title": "y"}),
                        ("PATCH", f"/v1/tasks/{task['task']['_id']}", {"title": "z"}),
                        ("GET", f"/v1/tasks/{task['task']['_id']}", None),
                        ("GET", "/v1/tasks", None),
                        ("GET", "/v1/tasks/stats", None),
                        ("GET", "/v1/tasks/analytics", None),
                        ("GET", "/v1/events", None),
                    ]
                }
                await holder.rollback()

    for path, response in responses.items():
        assert response.status_code == 503, (path, response.text)
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"] == {
            "code": "ServiceUnavailableError",
            "message": "The database did not answer in time; retry shortly",
        }
    # Each said in the log as what it was, with the request it cut.
    warnings = log.entries("tasks_api.errors")
    cut = {entry["requestId"] for entry in warnings}
    assert {response.headers["x-request-id"] for response in responses.values()} <= cut
    assert all("too slow (statement_timeout)" in entry["message"] for entry in warnings)


async def test_a_database_that_takes_no_writes_is_a_503_for_writes_only(server_url: str) -> None:
    # A server turned read-only (a standby after a failover went wrong, or maintenance):
    # commands cannot be kept, reads can still be answered.
    url = await create_database(server_url)
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        async with engine_of(url) as engine, engine.begin() as conn:
            issued = await tenants.create_tenant(conn, "read-only", "starter")
            name = make_url(url).database
            await conn.execute(
                sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            )
        app = create_app(Settings(database_url=url, run_projections=False, redis_url=REDIS_URL))
        headers = {"x-tenant-api-key": issued.api_key}
        with captured_log() as log:
            async with running_lifespan(app), client_of(app) as client:
                listed = await client.get("/v1/tasks", headers=headers)
                created = await client.post("/v1/tasks", json={"title": "x"}, headers=headers)
    finally:
        await drop_database(server_url, url)

    assert listed.status_code == 200, listed.text
    assert created.status_code == 503, created.text
    assert created.headers["Retry-After"] == "1"
    assert created.json()["error"] == {
        "code": "ServiceUnavailableError",
        "message": "The database takes no writes; retry shortly",
    }
    [warning] = log.entries("tasks_api.errors")
    assert "read-only transaction" in warning["message"]
