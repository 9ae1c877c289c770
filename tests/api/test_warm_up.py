"""A worker opens its pool's connections and makes their first command before it serves, and
keeps nothing of it."""

from __future__ import annotations

import asyncpg

from app.http.app import create_app
from app.settings import Settings
from app.warm_up import NO_TENANT
from store.pool import plain_url
from tests.api.test_rate_limits import running_lifespan

POOL_SIZE = 4
KEPT = """
    SELECT (SELECT count(*) FROM events WHERE tenant_id = $1)
         + (SELECT count(*) FROM task_view WHERE tenant_id = $1)
         + (SELECT count(*) FROM task_search WHERE tenant_id = $1)
"""


async def test_a_worker_opens_its_connections_before_it_serves_and_keeps_nothing_of_them(
    database_url: str,
) -> None:
    app = create_app(
        Settings(database_url=database_url, run_projections=False, db_pool_size=POOL_SIZE)
    )
    async with running_lifespan(app):
        pool = app.state.db.pool
        opened, idle = pool.get_size(), pool.get_idle_size()

    conn = await asyncpg.connect(plain_url(database_url))
    try:
        kept = await conn.fetchval(KEPT, NO_TENANT)
    finally:
        await conn.close()
    assert (opened, idle) == (POOL_SIZE, POOL_SIZE)
    assert kept == 0
