"""A revoked key is refused from then on, by every server process, though each keeps the live
keys it looked up: revocations are heard as they commit, and unheard ones are never risked."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import tenants
from app.database import Database
from app.store.tables import api_keys
from tests.conftest import new_tenant
from tests.fault.served_api import ServedApi

pytestmark = pytest.mark.asyncio


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[ServedApi]:
    api = ServedApi(database_url, tmp_path / "server.log", workers=2, TASKS_RUN_PROJECTIONS="false")
    api.start()
    try:
        yield api
    finally:
        api.stop()


async def test_a_key_revoked_by_the_cli_is_refused_at_once_by_every_worker(
    engine: AsyncEngine, served: ServedApi, database_url: str
) -> None:
    tenant = await new_tenant(engine, "revoked")
    async with httpx.AsyncClient(base_url=served.url, headers=tenant.headers) as client:
        # Enough requests that both workers have looked the key up and keep it.
        for _ in range(20):
            assert (await client.get("/v1/tasks")).status_code == 200
        revoke = await asyncio.create_subprocess_exec(
            *(str(Path(sys.executable).with_name("tasks-api")), "key", "revoke", tenant.key_id),
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert await revoke.wait() == 0
        answers = [(await client.get("/v1/tasks")).status_code for _ in range(20)]
    assert answers == [401] * 20


async def revoke_without_notice(conn: AsyncConnection, key_id: str) -> None:
    """Revoked behind the processes' backs: no notice is sent."""
    await conn.execute(
        api_keys.update().where(api_keys.c.key_id == key_id).values(revoked_at=sa.func.now())
    )
    await conn.commit()


async def test_a_process_that_cannot_hear_revocations_trusts_no_cached_key(
    db: Database, engine: AsyncEngine
) -> None:
    tenant = await new_tenant(engine, "unheard")
    tenants.hear_revocations(False)
    async with engine.connect() as conn:
        assert await tenants.authenticate(db.pool, tenant.api_key) is not None
        await revoke_without_notice(conn, tenant.key_id)
        assert await tenants.authenticate(db.pool, tenant.api_key) is None


async def test_a_process_that_hears_revocations_keeps_live_keys(
    db: Database, engine: AsyncEngine
) -> None:
    tenant = await new_tenant(engine, "heard")
    tenants.hear_revocations(True)
    try:
        async with engine.connect() as conn:
            assert await tenants.authenticate(db.pool, tenant.api_key) is not None
            await revoke_without_notice(conn, tenant.key_id)
            # Without the notice the revocation is not heard: the key is still kept.
            assert await tenants.authenticate(db.pool, tenant.api_key) is not None
            tenants.forget_key(tenant.key_id)
            assert await tenants.authenticate(db.pool, tenant.api_key) is None
    finally:
        tenants.hear_revocations(False)
