"""`tasks-api serve` runs the projection runners and the sweep in a process of its own, off
the workers' event loops: started again should it die, and stopping once `serve` is gone,
killed included."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Tenant
from tests.fault.conftest import unthrottled_tenant
from tests.fault.served_api import ServedApi, process_running
from tests.integration.projection_support import caught_up, wait_until

WITHIN_SECONDS = 20


def background_processes(server_pid: int) -> set[int]:
    """The server's children that multiprocessing spawned, its resource tracker aside."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if (
            parent == server_pid
            and "multiprocessing.spawn" in command
            and "resource_tracker" not in command
            and process_running(int(entry.name))
        ):
            found.add(int(entry.name))
    return found


async def the_one_background_process(server_pid: int, other_than: int = 0) -> int:
    async def one_there() -> bool:
        return len(background_processes(server_pid) - {other_than}) == 1

    await wait_until(one_there, WITHIN_SECONDS)
    [pid] = background_processes(server_pid) - {other_than}
    return pid


async def created_and_applied(server: ServedApi, tenant: Tenant, engine: AsyncEngine) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        created = await client.post(
            "/v1/tasks", json={"title": "Call back"}, headers={"x-tenant-api-key": tenant.api_key}
        )
    assert created.status_code == 201
    await wait_until(lambda: caught_up(engine), WITHIN_SECONDS)


def pids_logging(log: Path, message: str) -> set[int]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("message") == message}


async def test_the_runners_run_beside_the_workers_restarted_when_killed_and_stop_with_serve(
    fresh_database: str, fresh_engine: AsyncEngine, tmp_path: Path
) -> None:
    tenant = await unthrottled_tenant(fresh_engine)
    server = ServedApi(fresh_database, tmp_path / "server.log", TASKS_LOG_LEVEL="info")
    server.start()
    try:
        assert server.process is not None
        first = await the_one_background_process(server.process.pid)
        await created_and_applied(server, tenant, fresh_engine)
        assert pids_logging(server.log, "projection task_rollups active") == {first}

        os.kill(first, signal.SIGKILL)
        second = await the_one_background_process(server.process.pid, other_than=first)
        await created_and_applied(server, tenant, fresh_engine)

        server.kill()

        async def stopped() -> bool:
            return not process_running(second)

        await wait_until(stopped, WITHIN_SECONDS)
    finally:
        server.stop()
