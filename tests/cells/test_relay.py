"""The relay of each cell publishes every event of its log to NATS JetStream (the machine's,
at 127.0.0.1:4222) once, in the cell's commit order, and a relay killed mid-batch (its task
cancelled, or its process sent SIGKILL) publishes nothing twice into the stream."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
import sqlalchemy as sa

from app.database import create_engine
from app.relay import MESSAGE_ID_HEADER, RELAY, Publisher, Relay, StreamAddress
from projections.runner import apply_next_batch, catch_up, read_checkpoint_unlocked
from tests.cells.support import Cells, cli_in_thread, fetch, placed_tenant, served
from tests.conftest import cells_setting

NATS_URL = os.environ.get("TASKS_TEST_NATS_URL", "nats://127.0.0.1:4222")
WRITERS = 32
ROUNDS = 3
# 2,016 events from one tenant: four batches, published one after another.
KILLED_ROUNDS = 63
CAUGHT_UP_SECONDS = 60
UNTHROTTLED = {"tier": "enterprise", "rate_limit": str(10**9)}


@pytest.fixture
async def stream(three_cells: Cells) -> AsyncIterator[StreamAddress]:
    """A stream of its own, made by `tasks-api stream setup`, deleted afterwards."""
    name = f"test{secrets.token_hex(4)}"
    address = StreamAddress(NATS_URL, name.upper(), f"{name}.tasks.events")
    env = {
        "NATS_URL": address.url,
        "NATS_STREAM": address.stream,
        "NATS_SUBJECT_PREFIX": address.subject_prefix,
    }
    os.environ.update(env)
    try:
        result = await cli_in_thread(three_cells, "stream", "setup", "--max-age", "1h")
    finally:
        for variable in env:
            del os.environ[variable]
    assert result.exit_code == 0, result.output
    assert f"Created stream {address.stream}" in result.stdout
    yield address
    client = await nats.connect(NATS_URL)
    try:
        await client.jetstream().delete_stream(address.stream)
    finally:
        await client.close()


async def stored(address: StreamAddress) -> list[Any]:
    """Every message of the stream, in the stream's order."""
    client = await nats.connect(address.url)
    try:
        jetstream = client.jetstream()
        state = (await jetstream.stream_info(address.stream)).state
        return (
            [
                await jetstream.get_msg(address.stream, sequence)
                for sequence in range(state.first_seq, state.last_seq + 1)
            ]
            if state.messages
            else []
        )
    finally:
        await client.close()


async def message_count(address: StreamAddress) -> int:
    client = await nats.connect(address.url)
    try:
        return int((await client.jetstream().stream_info(address.stream)).state.messages)
    finally:
        await client.close()


async def relayed(address: StreamAddress, count: int) -> None:
    """Once the stream holds `count` messages, or CAUGHT_UP_SECONDS have passed."""
    deadline = time.monotonic() + CAUGHT_UP_SECONDS
    while time.monotonic() < deadline:
        if await message_count(address) >= count:
            return
        await asyncio.sleep(0.2)


async def relay_checkpoint(url: str) -> tuple[int, int]:
    """Where a cell's relay stands (its last run may have published to another stream)."""
    rows = await fetch(
        url,
        "SELECT transaction_id::text::bigint, global_position FROM projection_checkpoints"
        " WHERE projection = $1",
        RELAY,
    )
    return (rows[0][0], rows[0][1]) if rows else (0, 0)


async def logged_ids(
    url: str, tenant_id: str | None = None, after: tuple[int, int] = (0, 0)
) -> list[str]:
    """The message ids of a cell's events after `after` (a tenant's only, when given), in
    commit order."""
    where = "" if tenant_id is None else "AND tenant_id = $3"
    rows = await fetch(
        url,
        "SELECT tenant_id || '/' || stream_id || '/' || stream_version FROM events"
        " WHERE (transaction_id, global_position) > ($1::text::xid8, $2)"
        f" {where} ORDER BY transaction_id, global_position",
        str(after[0]),
        after[1],
        *(() if tenant_id is None else (tenant_id,)),
    )
    return [row[0] for row in rows]


async def write(client: Any, tenant: Any, rounds: int) -> None:
    for _ in range(rounds):
        created = await client.post("/v1/tasks", json={"title": "Relayed"}, headers=tenant.headers)
        assert created.status_code == 201, created.text
        changed = await client.patch(
            f"/v1/tasks/{created.json()['task']['_id']}",
            json={"title": "Relayed again", "ownerId": "agent_7", "status": "completed"},
            headers=tenant.headers,
        )
        assert changed.status_code == 200, changed.text


async def test_every_event_of_two_cells_is_in_the_stream_once_in_commit_order(
    three_cells: Cells, stream: StreamAddress
) -> None:
    tenants = [await placed_tenant(three_cells, name, **UNTHROTTLED) for name in ("b", "c")]
    settings = {
        "run_projections": True,
        "nats_url": stream.url,
        "nats_stream": stream.stream,
        "nats_subject_prefix": stream.subject_prefix,
    }
    relays_at = [await relay_checkpoint(cell.url) for cell in three_cells]
    async with served(three_cells, **settings) as client:
        await asyncio.gather(
            *(write(client, tenant, ROUNDS) for tenant in tenants for _ in range(WRITERS))
        )
        feed = (await client.get("/v1/events", headers=tenants[0].headers)).json()["events"]
        every_cell = [
            await logged_ids(cell.url, after=at)
            for cell, at in zip(three_cells, relays_at, strict=True)
        ]
        expected = sum(len(ids) for ids in every_cell)
        await relayed(stream, expected)

    messages = await stored(stream)
    ids = [message.headers[MESSAGE_ID_HEADER] for message in messages]
    assert len(ids) == len(set(ids)) == expected
    assert set(ids) == {each for cell_ids in every_cell for each in cell_ids}
    for tenant in tenants:
        cell = next(cell for cell in three_cells if cell.name == tenant.cell)
        mine = [each for each in ids if each.startswith(f"{tenant.tenant_id}/")]
        assert len(mine) == WRITERS * ROUNDS * 4
        assert mine == await logged_ids(cell.url, tenant.tenant_id)
    first = next(
        m for m in messages if m.headers[MESSAGE_ID_HEADER].startswith(tenants[0].tenant_id)
    )
    assert first.subject == f"{stream.subject_prefix}.{tenants[0].tenant_id}.TASK_CREATED"
    assert msgspec.json.decode(first.data) == feed[0]


async def test_a_relay_killed_mid_batch_republishes_nothing_twice_into_the_stream(
    three_cells: Cells, stream: StreamAddress
) -> None:
    cell = three_cells[1]
    engine = create_engine(cell.url, pool_size=2)
    tenant = await placed_tenant(three_cells, cell.name, **UNTHROTTLED)
    publisher = Publisher(stream)
    try:
        await catch_up(engine, Relay(publisher))
        before = await message_count(stream)
        async with served(three_cells, run_projections=True) as client:
            await asyncio.gather(*(write(client, tenant, 2) for _ in range(8)))
        async with engine.connect() as conn:
            start = await read_checkpoint_unlocked(conn, RELAY)
        pending = await events_after(engine, start)
        assert pending == 64, "a relay ran without NATS_URL"

        published = asyncio.Event()
        killed = Relay(publisher)
        sent = 0
        publish = publisher.publish

        async def publish_until_killed(event: Any) -> bool:
            nonlocal sent
            duplicate = await publish(event)
            sent += 1
            if sent == pending // 2:
                published.set()
                await asyncio.sleep(3600)
            return duplicate

        killed.publisher = type("Dying", (), {"publish": staticmethod(publish_until_killed)})()  # type: ignore[assignment]
        batch = asyncio.create_task(apply_next_batch(engine, killed))
        await published.wait()
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        async with engine.connect() as conn:
            assert await read_checkpoint_unlocked(conn, RELAY) == start
        assert await message_count(stream) == before + pending // 2

        restarted = Relay(publisher)
        assert await catch_up(engine, restarted) == pending
    finally:
        await publisher.close()
        await engine.dispose()

    assert restarted.duplicates == pending // 2
    assert await message_count(stream) == before + pending


async def test_a_relay_process_killed_while_publishing_leaves_each_event_once_in_the_stream(
    three_cells: Cells, stream: StreamAddress, tmp_path: Path
) -> None:
    """SIGKILL of `tasks-api projections run` between a batch's publishes and its checkpoint:
    the restarted process publishes the batch again, and JetStream drops what it holds."""
    cell = three_cells[1]
    publisher = Publisher(stream)
    try:
        for each in three_cells:
            engine = create_engine(each.url, pool_size=2)
            try:
                await catch_up(engine, Relay(publisher))
            finally:
                await engine.dispose()
    finally:
        await publisher.close()
    before = await message_count(stream)
    start = await relay_checkpoint(cell.url)
    tenant = await placed_tenant(three_cells, cell.name, **UNTHROTTLED)
    async with served(three_cells) as client:
        await asyncio.gather(*(write(client, tenant, KILLED_ROUNDS) for _ in range(8)))
    written = await logged_ids(cell.url, after=start)
    assert len(written) == 8 * KILLED_ROUNDS * 4

    relay = RelayProcess(three_cells, stream, tmp_path / "relay.log")
    with relay:
        published_at_kill = await relay.kill_once_published(stream, before + len(written) // 8)
    checkpoint = await relay_checkpoint(cell.url)
    checkpointed = len(written) - len(await logged_ids(cell.url, after=checkpoint))
    assert published_at_kill - before > checkpointed, "the kill fell between two batches"

    with relay:
        await relayed(stream, before + len(written))
        await caught_up(cell.url, written[-1])
    messages = await stored(stream)
    ids = [message.headers[MESSAGE_ID_HEADER] for message in messages[before:]]
    assert ids == written


class RelayProcess:
    """`tasks-api projections run` over the cells with the relay publishing to `stream`,
    started on entering the block and stopped (SIGTERM) on leaving it unless killed."""

    def __init__(self, cells: Cells, stream: StreamAddress, log: Path) -> None:
        self.environment = {
            **os.environ,
            "TASKS_CELLS": cells_setting(cells),
            "NATS_URL": stream.url,
            "NATS_STREAM": stream.stream,
            "NATS_SUBJECT_PREFIX": stream.subject_prefix,
        }
        self.environment.pop("DATABASE_URL", None)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RelayProcess:
        command = Path(sys.executable).with_name("tasks-api")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(command), "projections", "run"],
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(CAUGHT_UP_SECONDS)

    async def kill_once_published(self, stream: StreamAddress, count: int) -> int:
        """SIGKILL as soon as the stream holds `count` messages; how many it holds then."""
        assert self.process is not None
        client = await nats.connect(stream.url)
        try:
            jetstream = client.jetstream()
            deadline = time.monotonic() + CAUGHT_UP_SECONDS
            while time.monotonic() < deadline:
                held = (await jetstream.stream_info(stream.stream)).state.messages
                if held >= count:
                    self.process.send_signal(signal.SIGKILL)
                    self.process.wait(CAUGHT_UP_SECONDS)
                    return int((await jetstream.stream_info(stream.stream)).state.messages)
                await asyncio.sleep(0.002)
        finally:
            await client.close()
        raise AssertionError(f"the relay published too little: {self.log.read_text()[-2000:]}")


async def caught_up(url: str, last_id: str) -> None:
    """Once the cell's relay has checkpointed the event `last_id` (its message id)."""
    deadline = time.monotonic() + CAUGHT_UP_SECONDS
    while time.monotonic() < deadline:
        if last_id not in await logged_ids(url, after=await relay_checkpoint(url)):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the relay did not checkpoint its last batch")


async def events_after(engine: Any, checkpoint: Any) -> int:
    from projections.log import after
    from projections.tables import events

    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                sa.select(sa.func.count()).select_from(events).where(after(checkpoint))
            )
        )
