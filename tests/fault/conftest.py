"""Fault tests each get a database of their own, so the log they check holds only what they
sent, and a tenant whose rate limit their load never reaches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import tenants
from app.database import create_engine
from app.embedded import EmbeddedPostgres
from tests.conftest import Tenant, own_server_folder
from tests.database import create_database, migrated_database


@pytest.fixture
def fresh_database(server_url: str) -> Iterator[str]:
    with migrated_database(server_url) as url:
        yield url


@pytest.fixture
async def fresh_engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def killable_cell() -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL server of the test's own, to stop or kill, and an empty database on it."""
    with own_server_folder("killable") as server:
        server_url = await asyncio.to_thread(server.start)
        yield server, await create_database(server_url)
        await asyncio.to_thread(server.stop)


async def unthrottled_tenant(engine: AsyncEngine) -> Tenant:
    async with engine.begin() as conn:
        issued = await tenants.create_tenant(conn, "under-fault", "enterprise", rate_limit=10**9)
    return Tenant(issued.tenant_id, issued.key_id, issued.api_key)
