"""The server killed with SIGKILL under write load loses nothing it acknowledged: every
command answered 2xx has all its events in the log, no command is half there, nothing else is,
and the task view equals a replay of the log. A server started again serves at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.fault.conftest import unthrottled_tenant
from tests.fault.event_log import assert_log_keeps_what_was_answered
from tests.fault.served_api import ServedApi
from tests.fault.write_load import WriteLoad

WORKERS = 8
ACKNOWLEDGED_BEFORE_THE_KILL = 150


async def test_a_server_killed_under_write_load_loses_nothing_it_acknowledged(
    fresh_database: str, fresh_engine: AsyncEngine, tmp_path: Path
) -> None:
    tenant = await unthrottled_tenant(fresh_engine)
    server = ServedApi(fresh_database, tmp_path / "server.log", TASKS_RUN_PROJECTIONS="false")
    server.start()
    load = WriteLoad(server.url, tenant.api_key)
    stop = asyncio.Event()
    writing = asyncio.create_task(load.run(WORKERS, stop, seconds=20, per_worker=200))

    async with asyncio.timeout(20):
        await load.until_acknowledged(ACKNOWLEDGED_BEFORE_THE_KILL)
    server.kill()
    await asyncio.sleep(0.2)  # the workers see the connections go
    stop.set()
    await writing

    unanswered = [sent for sent in load.sent if sent.status is None]
    assert len(load.acknowledged()) >= ACKNOWLEDGED_BEFORE_THE_KILL
    assert unanswered, "the kill caught no request in flight"
    await assert_log_keeps_what_was_answered(fresh_engine, load.sent)
    with ServedApi(fresh_database, tmp_path / "restarted.log") as restarted:
        async with httpx.AsyncClient(base_url=restarted.url) as client:
            listed = await client.get("/v1/tasks", headers=tenant.headers)
    assert listed.status_code == 200
    assert listed.json()["total"] >= sum(sent.events == 1 for sent in load.acknowledged())
