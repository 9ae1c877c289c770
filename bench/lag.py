"""Projection lag at a steady command rate: commands are sent through the API on a fixed
schedule (open loop, so a slow server cannot slow the schedule down), while the rollups'
checkpoint is polled; an event's lag is from its recorded_at (taken just before its command
commits, so a slight over-estimate) to the first poll that finds the checkpoint past it."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import asyncpg

from projections.registry import ROLLUPS

POLL_SECONDS = 0.005
CONNECTIONS = 64
CATCH_UP_SECONDS = 30


@dataclass(frozen=True, slots=True)
class LagResult:
    rate: float
    commands: int
    failed: int
    command_p99_ms: float
    lag_p50_ms: float
    lag_p99_ms: float
    events_seen: int


class HttpConnection:
    """A keep-alive HTTP/1.1 connection that sends one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def create_request(port: int, api_key: str, number: int) -> bytes:
    body = (
        f'{{"title": "Lag probe {number}", "priority": "normal", "ownerId": "agent_{number % 50}",'
        f' "dueDate": "2031-01-01T00:00:00Z"}}'
    ).encode()
    return (
        f"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"x-tenant-api-key: {api_key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def projection_lag(
    port: int, database_url: str, tenant_id: str, api_key: str, rate: int, seconds: float
) -> LagResult:
    connections = [await HttpConnection.open("127.0.0.1", port) for _ in range(CONNECTIONS)]
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)
    latencies: list[float] = []
    failed = 0
    sending_done = asyncio.Event()

    async def command(number: int, scheduled: float) -> None:
        nonlocal failed
        connection = await idle.get()
        try:
            status = await connection.send(create_request(port, api_key, number))
        finally:
            idle.put_nowait(connection)
        latencies.append(time.monotonic() - scheduled)
        if status >= 300:
            failed += 1

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
    lags = await poller
    for connection in connections:
        connection.close()
    return LagResult(
        rate=total / sent_for,
        commands=total,
        failed=failed,
        command_p99_ms=_percentile(latencies, 99) * 1000,
        lag_p50_ms=_percentile(lags, 50) * 1000,
        lag_p99_ms=_percentile(lags, 99) * 1000,
        events_seen=len(lags),
    )


async def _poll_lags(database_url: str, tenant_id: str, sending_done: asyncio.Event) -> list[float]:
    conn = await asyncpg.connect(database_url)
    checkpoint = (
        "SELECT transaction_id::text::bigint, global_position FROM projection_checkpoints "
        "WHERE projection = $1"
    )
    passed = (
        "SELECT extract(epoch FROM recorded_at)::float8 FROM events WHERE tenant_id = $1 "
        "AND (transaction_id, global_position) > ($2::xid8, $3) "
        "AND (transaction_id, global_position) <= ($4::xid8, $5)"
    )
    behind = (
        "SELECT count(*) FROM events WHERE tenant_id = $1 "
        "AND (transaction_id, global_position) > ($2::xid8, $3)"
    )
    lags: list[float] = []
    try:
        last = await conn.fetchrow(checkpoint, ROLLUPS.name) or (0, 0)
        caught_up_by = None
        while True:
            row = await conn.fetchrow(checkpoint, ROLLUPS.name)
            seen_at = time.time()
            if row is not None and tuple(row) != tuple(last):
                for (recorded_at,) in await conn.fetch(passed, tenant_id, *last, *row):
                    lags.append(max(0.0, seen_at - recorded_at))
                last = row
            if sending_done.is_set():
                caught_up_by = caught_up_by or time.monotonic() + CATCH_UP_SECONDS
                if time.monotonic() > caught_up_by or not await conn.fetchval(
                    behind, tenant_id, *last
                ):
                    return lags
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await conn.close()


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(percent) - 1]
