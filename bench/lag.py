"""Projection lag at a steady command rate: commands run through the service layer (the
command path of the API minus HTTP, which on this machine cannot take 1,000 commands/s) from
this process on a fixed schedule (open loop, so a slow database cannot slow the schedule down),
while the runner inside `tasks-api serve` applies them and the rollups' checkpoint is polled.

An event's lag is from the moment its command returned, its commit acknowledged, to the first
poll that finds the checkpoint past it (none when the runner was there first): how long after
a write a client waits to see it in the figures. Beside it, the lag from the event's
recorded_at, taken before the command's transaction even writes, which adds the command's own
time and so on a saturated machine measures the commands as much as the runner."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from app import service
from app.database import Database, open_database
from app.service import Caller
from app.tenants import Principal
from bench.database import connect
from domain.commands import CreateTask
from projections.registry import ROLLUPS

POLL_SECONDS = 0.005
CONNECTIONS = 32
CATCH_UP_SECONDS = 30


@dataclass(frozen=True, slots=True)
class LagResult:
    rate: float
    commands: int
    failed: int
    command_p99_ms: float
    lag_p50_ms: float
    lag_p99_ms: float
    recorded_lag_p99_ms: float
    events_seen: int


async def projection_lag(database_url: str, tenant_id: str, rate: int, seconds: float) -> LagResult:
    async with open_database(database_url, pool_size=CONNECTIONS) as db:
        return await _lag(db, database_url, tenant_id, rate, seconds)


async def _lag(
    db: Database, database_url: str, tenant_id: str, rate: int, seconds: float
) -> LagResult:
    caller = Caller(Principal(tenant_id, "bench-lag"), "bench-lag")
    latencies: list[float] = []
    # Task id -> when its command returned, in the clock the poller reads (time.time()).
    returned: dict[str, float] = {}
    failed = 0
    sending_done = asyncio.Event()

    async def command(number: int, scheduled: float) -> None:
        nonlocal failed
        body = CreateTask(title=f"Lag probe {number}", owner_id=f"agent_{number % 50:03d}")
        try:
            created = await service.create_task(db, caller, body)
        except Exception:
            failed += 1
        else:
            assert created.task is not None
            returned[created.task.id] = time.time()
        latencies.append(time.monotonic() - scheduled)

    async def schedule() -> int:
        total = int(rate * seconds)
        started = time.monotonic()
        pending = set()
        for number in range(total):
            due = started + number / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(command(number, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        sending_done.set()
        return total

    poller = asyncio.create_task(_poll_lags(database_url, tenant_id, sending_done))
    started = time.monotonic()
    total = await schedule()
    sent_for = time.monotonic() - started
    seen = await poller
    lags = [max(0.0, passed_at - returned[task]) for task, _, passed_at in seen if task in returned]
    from_recorded = [max(0.0, passed_at - recorded_at) for _, recorded_at, passed_at in seen]
    return LagResult(
        rate=total / sent_for,
        commands=total,
        failed=failed,
        command_p99_ms=percentile(latencies, 99) * 1000,
        lag_p50_ms=percentile(lags, 50) * 1000,
        lag_p99_ms=percentile(lags, 99) * 1000,
        recorded_lag_p99_ms=percentile(from_recorded, 99) * 1000,
        events_seen=len(seen),
    )


async def _poll_lags(
    database_url: str, tenant_id: str, sending_done: asyncio.Event
) -> list[tuple[str, float, float]]:
    """(task id, recorded_at, when the checkpoint was first seen past it) of each event."""
    conn = await connect(database_url)
    checkpoint = (
        "SELECT transaction_id::text::bigint, global_position FROM projection_checkpoints "
        "WHERE projection = $1"
    )
    passed = (
        "SELECT stream_id, extract(epoch FROM recorded_at)::float8 FROM events "
        "WHERE tenant_id = $1 AND (transaction_id, global_position) > ($2::xid8, $3) "
        "AND (transaction_id, global_position) <= ($4::xid8, $5)"
    )
    behind = (
        "SELECT count(*) FROM events WHERE tenant_id = $1 "
        "AND (transaction_id, global_position) > ($2::xid8, $3)"
    )
    seen: list[tuple[str, float, float]] = []
    try:
        last = await conn.fetchrow(checkpoint, ROLLUPS.name) or (0, 0)
        caught_up_by = None
        while True:
            row = await conn.fetchrow(checkpoint, ROLLUPS.name)
            seen_at = time.time()
            if row is not None and tuple(row) != tuple(last):
                for task_id, recorded_at in await conn.fetch(passed, tenant_id, *last, *row):
                    seen.append((task_id, recorded_at, seen_at))
                last = row
            if sending_done.is_set():
                caught_up_by = caught_up_by or time.monotonic() + CATCH_UP_SECONDS
                if time.monotonic() > caught_up_by or not await conn.fetchval(
                    behind, tenant_id, *last
                ):
                    return seen
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await conn.close()


def percentile(values: list[float], percent: float) -> float:
    """The value `percent` of the values are at or below, interpolated; NaN of none."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(percent) - 1]
