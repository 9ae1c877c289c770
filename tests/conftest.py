"""Fixtures shared by every suite: one fresh, migrated database per run, an app on it,
and a new tenant per test so tests never see each other's tasks."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app import tenants
from app.cells import CellAddress
from app.database import Database, create_engine, open_database
from app.embedded import EmbeddedPostgres
from app.http.app import create_app
from app.settings import Settings
from tests.database import migrated_database, postgres_server


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The URL of the test PostgreSQL server's maintenance database."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A freshly migrated database, dropped when the run ends."""
    with migrated_database(server_url) as url:
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    """The pool the use cases run on, as the app's."""
    async with open_database(database_url) as database:
        yield database


@pytest.fixture(scope="session")
async def client(database_url: str) -> AsyncIterator[AsyncTestClient]:
    # Projections run in tests that exercise them, against their own runners.
    app = create_app(Settings(database_url=database_url, run_projections=False))
    async with AsyncTestClient(app, base_url="http://testserver.local") as test_client:
        yield test_client


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    key_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"x-tenant-api-key": self.api_key}


async def new_tenant(engine: AsyncEngine, name: str = "test") -> Tenant:
    async with engine.begin() as conn:
        issued = await tenants.create_tenant(conn, name)
    return Tenant(issued.tenant_id, issued.key_id, issued.api_key)


@pytest.fixture
async def tenant(engine: AsyncEngine) -> Tenant:
    return await new_tenant(engine, "tenant-a")


@pytest.fixture
async def other_tenant(engine: AsyncEngine) -> Tenant:
    return await new_tenant(engine, "tenant-b")


@pytest.fixture(scope="session")
def cell_servers() -> Iterator[list[str]]:
    """Two PostgreSQL servers besides the test server, each in a folder of its own: clusters
    apart, each with its own transaction ids, as cells are."""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(own_server_folder(name)) for name in "bc"]
        try:
            yield [server.start() for server in servers]
        finally:
            for server in servers:
                server.stop()


@contextlib.contextmanager
def own_server_folder(name: str) -> Iterator[EmbeddedPostgres]:
    """An embedded server's folder outside pytest's own temporary folders, which pytest keeps
    closed to other users (the server runs as one)."""
    with tempfile.TemporaryDirectory(prefix=f"tasks-api-cell-{name}-") as folder:
        yield EmbeddedPostgres(folder)


@pytest.fixture(scope="session")
def three_cells(server_url: str, cell_servers: list[str]) -> Iterator[tuple[CellAddress, ...]]:
    """A migrated database on each of three servers: the cells a, the home, b and c."""
    with (
        migrated_database(server_url) as home,
        migrated_database(cell_servers[0]) as b,
        migrated_database(cell_servers[1]) as c,
    ):
        yield (CellAddress("a", home), CellAddress("b", b), CellAddress("c", c))


def cells_setting(cells: tuple[CellAddress, ...]) -> str:
    """TASKS_CELLS for these cells."""
    return ",".join(f"{cell.name}={cell.url}" for cell in cells)
