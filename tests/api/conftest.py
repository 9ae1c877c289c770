from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.http.app import create_app
from app.settings import Settings
from tests.api.task_api import TaskApi
from tests.api.test_rate_limits import client_of, running_lifespan
from tests.conftest import Tenant
from tests.fault.served_api import ServedApi


@pytest.fixture
def tasks(client: AsyncTestClient, tenant: Tenant) -> TaskApi:
    """The API as the test's tenant."""
    return TaskApi(client, tenant)


@pytest.fixture
def other_tasks(client: AsyncTestClient, other_tenant: Tenant) -> TaskApi:
    """The API as a second tenant, which must never see the first one's tasks."""
    return TaskApi(client, other_tenant)


@pytest.fixture
async def racing_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests run concurrently in the app, for tests of races: the test
    client's requests take turns."""
    app = create_app(Settings(database_url=database_url, run_projections=False))
    async with running_lifespan(app), client_of(app) as client:
        yield client


@pytest.fixture(scope="module")
def served_api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    """`tasks-api serve` on a free 127.0.0.1 port, for clients that speak HTTP (a browser, a
    generated client, schemathesis), one request at a time: a few connections serve it."""
    log = tmp_path_factory.mktemp("served") / "serve.log"
    with ServedApi(
        database_url, log, TASKS_RUN_PROJECTIONS="false", TASKS_DB_POOL_SIZE="2"
    ) as served:
        yield served
