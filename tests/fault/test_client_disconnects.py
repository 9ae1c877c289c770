"""A client that hangs up mid-request leaves the whole command or nothing: cut off while
sending its headers or its body, nothing; cut off after sending it all, even while the command
waits on a lock in PostgreSQL, either all of the command's events or none, the task view equal
to a replay. The server serves the next client as before."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Tenant
from tests.fault.conftest import unthrottled_tenant
from tests.fault.event_log import assert_log_keeps_what_was_answered, events_by_request
from tests.fault.served_api import ServedApi
from tests.fault.write_load import CHANGE, CREATE, Sent, WriteLoad

CUTS = ("in the headers", "in the body", "after the whole request")


def raw_request(method: str, path: str, body: object, headers: dict[str, str]) -> bytes:
    content = json.dumps(body).encode()
    lines = [
        f"{method} {path} HTTP/1.1",
        "host: 127.0.0.1",
        "content-type: application/json",
        f"content-length: {len(content)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + content


def cut(request: bytes, where: str) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    if where == "in the headers":
        return head[: len(head) // 2]
    if where == "in the body":
        return head + b"\r\n\r\n" + body[: len(body) // 2]
    return request


async def hang_up_after(port: int, sent: bytes, until: Awaitable[None] | None) -> None:
    """Send bytes, wait for `until` if given, and close the connection without reading."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    await writer.drain()
    if until is not None:
        await until
    writer.close()
    await writer.wait_closed()


async def waiting_on_a_lock(engine: AsyncEngine, commands: int) -> None:
    """Until that many of the server's commands wait on a lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'tasks-api' AND wait_event_type = 'Lock'"
    )
    async with engine.connect() as conn, asyncio.timeout(5):
        while await conn.scalar(query) < commands:
            await conn.rollback()
            await asyncio.sleep(0.02)


async def until_idle(engine: AsyncEngine) -> None:
    """Until no command of the server is still running."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'tasks-api' AND state <> 'idle' AND pid <> pg_backend_pid()"
    )
    async with engine.connect() as conn, asyncio.timeout(5):
        while await conn.scalar(query):
            await conn.rollback()
            await asyncio.sleep(0.05)


class Disconnecting:
    """Clients of one tenant that each hang up somewhere in a command."""

    def __init__(self, api: ServedApi, tenant: Tenant) -> None:
        self.api = api
        self.tenant = tenant
        self.sent: list[Sent] = []
        self.never_whole: list[str] = []

    async def hang_up(
        self,
        method: str,
        path: str,
        body: object,
        events: int,
        where: str,
        until: Awaitable[None] | None = None,
    ) -> None:
        request_id = f"hang-up-{uuid.uuid4().hex}"
        headers = {"x-tenant-api-key": self.tenant.api_key, "x-request-id": request_id}
        started = time.monotonic()
        sent = cut(raw_request(method, path, body, headers), where)
        await hang_up_after(self.api.port, sent, until)
        self.sent.append(Sent(request_id, events, started, time.monotonic()))
        if where != "after the whole request":
            self.never_whole.append(request_id)


async def test_a_client_that_hangs_up_leaves_the_whole_command_or_nothing(
    fresh_database: str, fresh_engine: AsyncEngine, tmp_path: Path
) -> None:
    tenant = await unthrottled_tenant(fresh_engine)
    with ServedApi(fresh_database, tmp_path / "server.log", TASKS_RUN_PROJECTIONS="false") as api:
        patient = WriteLoad(api.url, tenant.api_key)
        task_ids = []
        async with httpx.AsyncClient(base_url=api.url) as client:
            for _ in range(len(CUTS) + 1):
                created = await patient.send(client, "POST", "/v1/tasks", CREATE, 1)
                assert created is not None and created.status_code == 201
                task_ids.append(created.json()["task"]["_id"])
        clients = Disconnecting(api, tenant)
        for where, task_id in zip(CUTS, task_ids, strict=False):
            await clients.hang_up("POST", "/v1/tasks", CREATE, 1, where)
            await clients.hang_up("PATCH", f"/v1/tasks/{task_id}", CHANGE, 3, where)

        async with fresh_engine.connect() as blocker:
            # Appends wait for this lock: each client goes once its command is mid-way.
            await blocker.execute(sa.text("LOCK TABLE events IN SHARE MODE"))
            whole = "after the whole request"
            await clients.hang_up(
                "POST", "/v1/tasks", CREATE, 1, whole, waiting_on_a_lock(fresh_engine, 1)
            )
            await clients.hang_up(
                "PATCH",
                f"/v1/tasks/{task_ids[-1]}",
                CHANGE,
                3,
                whole,
                waiting_on_a_lock(fresh_engine, 2),
            )
            await blocker.rollback()
        await until_idle(fresh_engine)

        async with httpx.AsyncClient(base_url=api.url) as client:
            after = await patient.send(client, "POST", "/v1/tasks", CREATE, 1)

    assert after is not None and after.status_code == 201
    logged = await events_by_request(fresh_engine)
    assert not [request_id for request_id in clients.never_whole if request_id in logged]
    await assert_log_keeps_what_was_answered(fresh_engine, patient.sent + clients.sent)
