"""What the projection tests build on: callers and commands through the service, where the
log and the checkpoints stand, the advisory lock's holder, and the rollups with a recorder
or a fault slipped in."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import clock, ids, service
from app.database import Database, create_engine
from app.store import event_log
from app.tenants import Principal
from domain import decide as rules
from domain.commands import CreateTask, DeleteTask
from domain.evolve import evolve
from projections import runner
from projections.driver import driver_connection
from projections.log import Checkpoint, RecordedEvent
from projections.projector import Rows
from projections.registry import ROLLUPS
from projections.runner import lock_key, read_checkpoint_unlocked
from projections.tables import events
from tests.conftest import new_tenant
from tests.unit.tasks import complete, decoded, patch, reassign

TIMEOUT_SECONDS = 10.0


async def new_caller(engine: AsyncEngine, name: str) -> service.Caller:
    """A caller of the service as a new tenant's key."""
    tenant = await new_tenant(engine, name)
    return service.Caller(Principal(tenant.tenant_id, tenant.key_id), request_id=f"test-{name}")


async def create(db: Database, caller: service.Caller, **body: Any) -> service.CommandResult:
    command = decoded(CreateTask, {"title": "Call back", **body})
    return await service.create_task(db, caller, command)


async def append_new_task(conn: AsyncConnection, tenant_id: str, title: str) -> str:
    """A new task's events appended in the connection's transaction, as a command appends
    them; the task's id."""
    task_id, now = ids.new_id(), clock.now()
    new_events = rules.create(CreateTask(title=title), task_id, now)
    task = evolve(None, new_events[0], now)
    await event_log.append(
        await driver_connection(conn), tenant_id, task_id, 0, new_events, {}, now, task
    )
    return task_id


async def write_history(db: Database, caller: service.Caller, tasks: int) -> int:
    """Tasks with a bit of everything: owners, priorities, progress, completions, reassignments
    and deletions. How many of them are left."""
    left = 0
    for number in range(tasks):
        owner = f"u-{number % 3}"
        created = await create(
            db,
            caller,
            ownerId=owner,
            ownerName=f"Agent {owner}",
            priority=("low", "normal", "high", "urgent")[number % 4],
        )
        assert created.task is not None
        task_id = created.task.id
        match number % 5:
            case 0:
                await service.run(db, caller, task_id, complete())
            case 1:
                await service.run(db, caller, task_id, patch({"status": "in_progress"}))
            case 2:
                await service.run(db, caller, task_id, reassign("u-9", "Agent u-9"))
                await service.run(db, caller, task_id, complete({"outcome": "no_answer"}))
            case 3:
                await service.run(db, caller, task_id, DeleteTask())
                continue
        left += 1
    return left


async def head(engine: AsyncEngine) -> Checkpoint:
    """The last event in commit order (while no append is under way)."""
    c = events.c
    query = (
        sa.select(c.transaction_id.cast(sa.Text).cast(sa.BigInteger), c.global_position)
        .order_by(c.transaction_id.desc(), c.global_position.desc())
        .limit(1)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return Checkpoint() if row is None else Checkpoint(row[0], row[1])


async def checkpoint_of_task(
    conn: AsyncConnection, tenant_id: str, task_id: str, version: int = 1
) -> Checkpoint:
    """Where one event of a task's stream stands in the log."""
    c = events.c
    row = (
        await conn.execute(
            sa.select(c.transaction_id.cast(sa.Text).cast(sa.BigInteger), c.global_position).where(
                c.tenant_id == tenant_id, c.stream_id == task_id, c.stream_version == version
            )
        )
    ).one()
    return Checkpoint(row[0], row[1])


async def checkpoint(engine: AsyncEngine, projection: str) -> Checkpoint:
    async with engine.connect() as conn:
        return await read_checkpoint_unlocked(conn, projection)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], within: float = TIMEOUT_SECONDS
) -> float:
    """Seconds until `condition` held, checked every few milliseconds; TimeoutError if not
    `within` that many seconds."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        # What is awaited is the database's state: nothing to wait on but asking again.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    return time.monotonic() - started


async def caught_up(engine: AsyncEngine, projection: str = ROLLUPS.name) -> bool:
    return await checkpoint(engine, projection) >= await head(engine)


async def apply_rollups(engine: AsyncEngine) -> None:
    """Bring the rollups up to the log's head. A catch-up stops at the oldest transaction
    in flight anywhere in the cluster, which other databases' writers may hold open: try
    until nothing is left behind."""

    async def applied() -> bool:
        await runner.catch_up(engine, ROLLUPS)
        return await caught_up(engine)

    await wait_until(applied)


async def lock_holders(engine: AsyncEngine, projection: str) -> list[int]:
    """The backends holding a projection's advisory lock."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND classid = 0 AND objid = :key AND objsubid = 1"
            ),
            {"key": lock_key(projection)},
        )
        return [pid for (pid,) in rows]


async def holds_lock(engine: AsyncEngine, process: RunnerProcess) -> bool:
    """Whether a runner process is the active one of its projection."""
    holders = await lock_holders(engine, process.projector.name)
    return not process.backends.isdisjoint(holders)


async def terminate(engine: AsyncEngine, pid: int) -> None:
    """End a backend as the database does when its client's process dies."""
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


# Called with the connection of a batch half written; it must not return normally.
Fault = Callable[[AsyncConnection], Awaitable[None]]


@dataclass
class Rollups:
    """The rollups projector, recording every position it is given; with a fault, the first
    batch stops half written."""

    fault: Fault | None = None
    positions: list[int] = field(default_factory=list)
    # Set once the fault has struck, with how many events of how many were written.
    struck: asyncio.Event = field(default_factory=asyncio.Event)
    written: tuple[int, int] = (0, 0)

    name = ROLLUPS.name
    tables = ROLLUPS.tables

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        if self.fault is None or self.struck.is_set():
            await ROLLUPS.apply(conn, batch)
            self.positions += [event.position for event in batch]
            return
        half = len(batch) // 2
        await ROLLUPS.apply(conn, batch[:half])
        self.written = (half, len(batch))
        self.struck.set()
        await self.fault(conn)
        raise AssertionError("a fault must not return")

    def replay(self, history: Sequence[RecordedEvent]) -> dict[str, Rows]:
        return ROLLUPS.replay(history)


@dataclass
class RunnerProcess:
    """A projection runner as a process of its own runs it: its own engine, its own task."""

    engine: AsyncEngine
    projector: Rollups
    stop: asyncio.Event
    task: asyncio.Task[None]
    # The server processes of its connections, to end them as a crash would.
    backends: set[int] = field(default_factory=set)

    async def stop_running(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, TIMEOUT_SECONDS)

    async def die(self, via: AsyncEngine) -> None:
        """End it as a crash ends a process: its connections drop and its code stops."""
        for pid in self.backends:
            await terminate(via, pid)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        await self.engine.dispose()


@dataclass
class Runners:
    """Runner processes started by a test, all stopped when it ends."""

    database_url: str
    started: list[RunnerProcess] = field(default_factory=list)

    def start(self, projector: Rollups | None = None) -> RunnerProcess:
        engine = create_engine(self.database_url)
        backends: set[int] = set()

        @sa.event.listens_for(engine.sync_engine, "connect")
        def remember(_: Any, record: Any) -> None:
            backends.add(record.driver_connection.get_server_pid())

        stop = asyncio.Event()
        projector = projector or Rollups()
        task = asyncio.create_task(runner.run(engine, projector, stop))
        process = RunnerProcess(engine, projector, stop, task, backends)
        self.started.append(process)
        return process

    async def stop_all(self) -> None:
        for process in self.started:
            process.stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(process.task, TIMEOUT_SECONDS)
            await process.engine.dispose()
