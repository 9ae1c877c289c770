"""Commits per second into the event log's shape, at the benchmark's concurrency: raw asyncpg
single-row INSERTs (the ceiling), our event store's append, and the `eventsourcing` library's
PostgreSQL recorder (the peer, run in a process of its own by bench.peer). One payload for all:
a real TASK_CREATED event."""

from __future__ import annotations

import asyncio
import importlib
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from app.ids import new_id
from app.store import event_log
from bench.cpu import Meter, Postgres, own_cpu_seconds
from bench.database import connect, wait_for_connections, wait_until_idle
from bench.dataset import task_command
from bench.load import LoadResult
from domain import decide
from domain.events import TaskEvent
from store.pool import open_pool

RAW_TABLE = "bench_raw_events"
METADATA = {"actor": "bench", "requestId": "bench", "correlationId": "bench"}


def sample_event() -> TaskEvent:
    import random

    now = datetime.now(UTC)
    return decide.create(task_command(random.Random(7), now), new_id(), now)[0]


def sample_payload() -> bytes:
    return msgspec.json.encode(sample_event())


async def _for_seconds(
    concurrency: int, seconds: float, one: Callable[[int], Awaitable[None]]
) -> tuple[int, float]:
    """Run `one` back to back in `concurrency` tasks for `seconds`: completions, and the
    seconds they took."""
    done = 0
    deadline = time.monotonic() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await one(index)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return done, time.monotonic() - started


async def raw_inserts(
    database_url: str, concurrency: int, seconds: float, postgres: Postgres
) -> LoadResult:
    """Single-row INSERTs, each its own commit, into a copy of the events table's columns,
    keys and indexes (no triggers), from one asyncpg connection per worker; with the CPU they
    cost this process (the client) and PostgreSQL, once every connection is open."""
    await wait_for_connections(database_url, concurrency + 1)
    admin = await connect(database_url)
    await admin.execute(
        f"CREATE TABLE IF NOT EXISTS {RAW_TABLE} (LIKE events INCLUDING DEFAULTS "
        "INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)"
    )
    await admin.close()
    payload = sample_payload().decode()
    metadata = msgspec.json.encode(METADATA).decode()
    connections = [await connect(database_url) for _ in range(concurrency)]
    insert = (
        f"INSERT INTO {RAW_TABLE} (tenant_id, stream_id, stream_version, event_type, "
        "payload_version, data, metadata, recorded_at, hash) "
        "VALUES ($1, $2, 1, $3, 2, $4, $5, $6, $7)"
    )
    # A row as wide as a chained event's: its hash is given, not computed.
    chained = secrets.token_bytes(32)

    async def one(index: int) -> None:
        await connections[index].execute(
            insert, "raw", new_id(), "TASK_CREATED", payload, metadata, datetime.now(UTC), chained
        )

    try:
        meter = Meter([], postgres)
        client_before = own_cpu_seconds()
        done, took = await _for_seconds(concurrency, seconds, one)
        usage = meter.usage(own_cpu_seconds() - client_before)
    finally:
        for conn in connections:
            await conn.close()
    return LoadResult(done, took, None, None, 0, 0, usage)


async def event_store_appends(
    database_url: str,
    concurrency: int,
    seconds: float,
    postgres: Postgres,
    *,
    existing: bool = False,
) -> LoadResult:
    """Our event store's append of one event, each its own statement and commit, as a command
    appends: to a new stream each time, or (`existing`) to each worker's own stream, one
    version after the other; the task view is left out, as the peer has none. With the CPU
    they cost this process (the client) and PostgreSQL, once every connection is open."""
    pool = await open_pool(database_url, size=concurrency, statement_timeout_ms=5_000)
    event = sample_event()
    streams = [new_id() for _ in range(concurrency)]
    # Each worker's stream's head, handed back with its next append as a command does.
    heads = [event_log.Head(0, None)] * concurrency

    async def connect() -> None:
        async with pool.acquire() as conn:
            await conn.execute("SELECT 1")
            await asyncio.sleep(0.05)

    # Every connection open before the clock starts, as the raw ceiling's are.
    await asyncio.gather(*(connect() for _ in range(concurrency)))

    async def one(index: int) -> None:
        stream = streams[index] if existing else new_id()
        version, head = heads[index] if existing else (0, None)
        heads[index] = await event_log.append(
            pool, "append", stream, version, [event], METADATA, datetime.now(UTC), None, head=head
        )

    try:
        meter = Meter([], postgres)
        client_before = own_cpu_seconds()
        done, took = await _for_seconds(concurrency, seconds, one)
        usage = meter.usage(own_cpu_seconds() - client_before)
    finally:
        await pool.close()
    return LoadResult(done, took, None, None, 0, 0, usage)


def peer_rate(database_url: str, concurrency: int, seconds: float) -> float:
    """The eventsourcing recorder's rate, measured by bench.peer in its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.peer", database_url, str(concurrency), str(seconds)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.peer failed:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def append_rates(
    database_url: str, concurrency: int, seconds: float, postgres: Postgres
) -> tuple[float, float]:
    """Ours and the peer's rates, measured in alternating rounds so that whatever else loads
    the machine weighs on both alike."""
    rounds = 3 if seconds >= 3 else 1
    ours, peer = [], []
    for _ in range(rounds):
        asyncio.run(wait_for_connections(database_url, concurrency))
        appended = asyncio.run(
            event_store_appends(database_url, concurrency, seconds / rounds, postgres)
        )
        ours.append(appended.requests_per_second)
        peer.append(peer_rate(database_url, concurrency, seconds / rounds))
    return sum(ours) / rounds, sum(peer) / rounds


@dataclass(frozen=True, slots=True)
class AppendCost:
    """Appends per second, and PostgreSQL's CPU milliseconds per append: the rate follows the
    machine's speed from one round to the next, the CPU far less."""

    per_second: float
    postgres_ms: float


@dataclass(frozen=True, slots=True)
class ChainCost:
    """Appends to a new stream and to an existing one, through append_to_stream as it is
    (each event chained to its stream's head) and as it was before the log was chained."""

    new_chained: AppendCost
    new_unchained: AppendCost
    existing_chained: AppendCost
    existing_unchained: AppendCost


def _migration(name: str) -> Any:
    return importlib.import_module(f"migrations.versions.{name}")


_HEAD_GIVEN = _migration("0030_command_knows_its_head")

# Before the chain (migration 0012's insert), with a constant hash so that its rows are as
# wide as a chained event's: the difference is what chaining costs, the head given or read.
_UNCHAINED_EVENTS = f"""
                INSERT INTO events (tenant_id, stream_id, stream_version, event_type,
                                    payload_version, data, metadata, recorded_at, hash)
                SELECT tenant, stream, expected_version + e.n::integer, e.type,
                       e.payload_version, e.data::jsonb, event_metadata::jsonb, recorded_at,
                       {_migration("0020_tamper_evident_log").NO_HASH}
                  FROM unnest(event_types, payload_versions, payloads)
                       WITH ORDINALITY AS e(type, payload_version, data, n);"""


async def _replace_append(database_url: str, append_events: str) -> None:
    admin = await connect(database_url)
    try:
        await admin.execute(_HEAD_GIVEN.append_to_stream_sql(append_events))
        await admin.execute(
            _migration("0023_key_lookups_planned_for_any_tenant").plan_for_any_tenant(
                "append_to_stream"
            )
        )
    finally:
        await admin.close()


def chain_cost(
    database_url: str, concurrency: int, seconds: float, postgres: Postgres
) -> ChainCost:
    """The append rates and PostgreSQL's CPU per append with and without the chain, in
    alternating rounds so that whatever else loads the machine weighs on both alike;
    append_to_stream is left as it was found."""
    chained = _HEAD_GIVEN.APPEND_CHAINED_EVENTS
    # An even number of rounds, each variant first in half of them.
    rounds = 4 if seconds >= 3 else 2
    loads: dict[tuple[bool, bool], list[LoadResult]] = {}
    try:
        for round_ in range(rounds):
            for existing in (False, True):
                # Each goes first in every other round, so that neither always follows the
                # other's load (its autovacuum, its checkpoint's writes).
                for events in (chained, _UNCHAINED_EVENTS)[:: 1 if round_ % 2 else -1]:
                    asyncio.run(_replace_append(database_url, events))
                    # Not while autovacuum works through what the round before (or the
                    # load before the first) left: it would weigh on one variant's round.
                    asyncio.run(wait_until_idle(database_url, runners=False))
                    asyncio.run(wait_for_connections(database_url, concurrency))
                    load = asyncio.run(
                        event_store_appends(
                            database_url, concurrency, seconds / rounds, postgres, existing=existing
                        )
                    )
                    loads.setdefault((existing, events is chained), []).append(load)
    finally:
        asyncio.run(_replace_append(database_url, chained))

    def cost(existing: bool, is_chained: bool) -> AppendCost:
        variant = loads[existing, is_chained]
        done = sum(load.requests for load in variant)
        took = sum(load.seconds for load in variant)
        cpu = sum(load.usage.postgres * load.usage.wall_seconds for load in variant)
        return AppendCost(done / took, 1000 * cpu / done)

    return ChainCost(cost(False, True), cost(False, False), cost(True, True), cost(True, False))
