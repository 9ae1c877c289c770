"""The relay at a burst: a known number of tasks created at once on two cells, through the
service layer (the command path of the API minus HTTP, as bench/lag.py sends it), while the
relays inside `tasks-api serve` publish every cell's log to a NATS JetStream stream of the
benchmark's own; then every message of the stream read back, and the stream deleted.

The publish rate is from the first message JetStream stored to the last. An event's lag is
from its command's return, its commit acknowledged, to JetStream storing its message, by
JetStream's own timestamp on this machine's clock (none when the relay was there first);
beside it, the lag from the event's recorded_at, taken before the command's transaction
writes, which on a saturated machine measures the commands as much as the relay."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import nats

from app import service
from app.database import Database, open_database
from app.published_events import AuditEvent
from app.relay import StreamAddress
from app.service import Caller
from app.tenants import Principal
from bench.database import cli
from bench.lag import percentile
from bench.report import Row, number, say
from domain.commands import CreateTask

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
# Commands in flight on each cell.
WRITERS = 16
# How long the relays may take to publish the burst once it is written.
RELAYED_SECONDS = 60


@dataclass(frozen=True, slots=True)
class RelayResult:
    written: int
    failed: int
    stored: int
    # Events/s: as the burst was written (from the first command's start to the last's
    # return), and as JetStream stored them.
    write_rate: float
    publish_rate: float
    lag_p50_ms: float
    lag_p99_ms: float
    recorded_lag_p99_ms: float


def bench_stream() -> StreamAddress:
    """A stream and subjects of this run's own, on BENCH_NATS_URL's server."""
    run = os.getpid()
    url = os.environ.get("BENCH_NATS_URL", DEFAULT_NATS_URL)
    return StreamAddress(url, f"TASKS_BENCH_{run}", f"tasks-bench-{run}.events")


def stream_settings(stream: StreamAddress) -> dict[str, str]:
    """The settings that have the relays of `tasks-api serve` publish to `stream`."""
    return {
        "NATS_URL": stream.url,
        "NATS_STREAM": stream.stream,
        "NATS_SUBJECT_PREFIX": stream.subject_prefix,
    }


@contextmanager
def stream_set_up(database_url: str, stream: StreamAddress) -> Iterator[None]:
    """The stream made by `tasks-api stream setup`, deleted when the block ends."""
    cli(database_url, "stream", "setup", "--max-age", "1h", settings=stream_settings(stream))
    try:
        yield
    finally:
        asyncio.run(_delete(stream))


async def relay_burst(
    stream: StreamAddress, writers: Sequence[tuple[str, str]], per_cell: int
) -> RelayResult:
    """`per_cell` tasks created at once by each (cell's URL, tenant id); the stream's
    messages once the relays have published every one, or RELAYED_SECONDS have passed."""
    say(f"relay: {per_cell:,} tasks created on each of {len(writers)} cells at once")
    returned: dict[str, float] = {}
    async with AsyncExitStack() as stack:
        # Open until the stream has caught up: a pool closed at once would drop the notice
        # of its last commits, and the relays would find them only when they next poll.
        cells = [
            (await stack.enter_async_context(open_database(url, pool_size=WRITERS)), tenant_id)
            for url, tenant_id in writers
        ]
        started = time.time()
        failures = await asyncio.gather(
            *(_create(db, tenant_id, per_cell, returned) for db, tenant_id in cells)
        )
        written_in = time.time() - started
        client = await nats.connect(stream.url)
        stack.push_async_callback(client.close)
        jetstream = client.jetstream()
        await _until_stored(jetstream, stream.stream, len(returned))
        state = (await jetstream.stream_info(stream.stream)).state
        messages = await _messages(jetstream, stream.stream, state)
    return _result(returned, written_in, sum(failures), state.messages, messages)


def relay_rows(result: RelayResult) -> list[Row]:
    return [
        Row(
            "relay: messages in the stream",
            f"{result.stored:,} of {result.written:,} events written "
            f"({result.failed} commands failed)",
            target="every event, once",
            passed=result.stored == result.written and result.failed == 0,
        ),
        Row(
            "relay: publish rate",
            f"{number(result.publish_rate, 'events/s')} from the first stored to the last "
            f"(written at {number(result.write_rate, '/s')})",
        ),
        Row(
            "relay: lag into the stream",
            f"p50 {result.lag_p50_ms:.0f} ms, p99 {result.lag_p99_ms:.0f} ms after the commit "
            f"(from recorded_at p99 {result.recorded_lag_p99_ms:.0f} ms)",
        ),
    ]


async def _create(db: Database, tenant_id: str, count: int, returned: dict[str, float]) -> int:
    """Create `count` tasks, WRITERS at a time; when each returned (time.time(), the clock
    JetStream stamps its messages by), by task id; how many failed."""
    caller = Caller(Principal(tenant_id, "bench-relay"), "bench-relay")
    failed = 0

    async def writer(titles: range) -> None:
        nonlocal failed
        for title in titles:
            try:
                created = await service.create_task(
                    db, caller, CreateTask(title=f"Relayed {title}")
                )
            except Exception:
                failed += 1
            else:
                assert created.task is not None
                returned[created.task.id] = time.time()

    await asyncio.gather(*(writer(range(each, count, WRITERS)) for each in range(WRITERS)))
    return failed


async def _until_stored(jetstream: Any, stream: str, count: int) -> None:
    deadline = time.monotonic() + RELAYED_SECONDS
    while time.monotonic() < deadline:
        if (await jetstream.stream_info(stream)).state.messages >= count:
            return
        await asyncio.sleep(0.2)


async def _messages(jetstream: Any, stream: str, state: Any) -> list[Any]:
    """Every message of the stream, in the order it stored them."""
    if not state.messages:
        return []
    return [
        await jetstream.get_msg(stream, sequence)
        for sequence in range(state.first_seq, state.last_seq + 1)
    ]


def _result(
    returned: dict[str, float], written_in: float, failed: int, stored: int, messages: list[Any]
) -> RelayResult:
    lags, recorded_lags = [], []
    for message in messages:
        event = msgspec.json.decode(message.data, type=AuditEvent)
        stored_at = message.time.timestamp()
        lags.append(max(0.0, stored_at - returned.get(event.task_id, stored_at)))
        recorded_lags.append(stored_at - event.recorded_at.timestamp())
    span = messages[-1].time.timestamp() - messages[0].time.timestamp() if messages else 0.0
    return RelayResult(
        written=len(returned),
        failed=failed,
        stored=stored,
        write_rate=len(returned) / written_in if written_in > 0 else 0.0,
        publish_rate=(len(messages) - 1) / span if span > 0 else 0.0,
        lag_p50_ms=percentile(lags, 50) * 1000,
        lag_p99_ms=percentile(lags, 99) * 1000,
        recorded_lag_p99_ms=percentile(recorded_lags, 99) * 1000,
    )


async def _delete(stream: StreamAddress) -> None:
    client = await nats.connect(stream.url)
    try:
        await client.jetstream().delete_stream(stream.stream)
    finally:
        await client.close()
