"""Fault tests each get a database of their own, so the log they check holds only what they
sent, and a tenant whose rate limit their load never reaches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import tenants
from app.database import create_engine
from tests.conftest import Tenant
from tests.database import migrated_database


@pytest.fixture
def fresh_database(server_url: str) -> Iterator[str]:
    with migrated_database(server_url) as url:
        yield url


@pytest.fixture
async def fresh_engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database, pool_size=2)
    yield engine
    await engine.dispose()


async def unthrottled_tenant(engine: AsyncEngine) -> Tenant:
    async with engine.begin() as conn:
        issued = await tenants.create_tenant(conn, "under-fault", "enterprise", rate_limit=10**9)
    return Tenant(issued.tenant_id, issued.key_id, issued.api_key)
