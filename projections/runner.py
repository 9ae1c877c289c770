"""The projection runner: follows the log past each projection's checkpoint, in batches, and
writes the projection's rows and its new checkpoint in one transaction, so every event is
applied exactly once.

One runner per projection is active: it holds a PostgreSQL advisory lock for as long as its
session lives. Another runner polls for the lock and takes over when the session ends."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import zlib
from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.driver import Compiled, driver_connection, value
from projections.log import Checkpoint, RecordedEvent, as_xid8, checkpoint_of, read_after
from projections.tables import projection_checkpoints
from store.channels import EVENTS_APPENDED

BATCH_SIZE = 500
# Each command's commit is followed by a NOTIFY on EVENTS_APPENDED (app/store/append_notices.py)
# that wakes the runner; polling only covers a notice that could not be sent.
POLL_SECONDS = 1.0
# Under a steady load notices come every few milliseconds, and a catch-up is a transaction
# whose cost hardly depends on how many events it applies: a runner starts one at most this
# often, so that what it costs follows the load's events, not the number of its commits
# (at 200 commands/s, 0.22 of a core without this floor, 0.10 with it).
CATCH_UP_INTERVAL_SECONDS = 0.05
LOCK_RETRY_SECONDS = 1.0
RESTART_SECONDS = 1.0

log = logging.getLogger("tasks_api.projections")


class Follower(Protocol):
    """What a runner keeps up with the log: every projection, and the relay that publishes
    the log (app/relay.py). Its name keys its checkpoint and its lock."""

    name: str

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        """Apply a batch of events, in commit order, in the batch's transaction."""


def lock_key(projection: str) -> int:
    """The advisory lock that makes one runner of a projection the active one."""
    return zlib.crc32(f"projection:{projection}".encode())


async def read_checkpoint(conn: AsyncConnection, projection: str) -> Checkpoint:
    """The projection's checkpoint, locked until the transaction ends."""
    return await _checkpoint(conn, projection, lock=True)


async def read_checkpoint_unlocked(conn: AsyncConnection, projection: str) -> Checkpoint:
    return await _checkpoint(conn, projection, lock=False)


async def _checkpoint(conn: AsyncConnection, projection: str, *, lock: bool) -> Checkpoint:
    rows = await _checkpoint_statement(lock).fetch(conn, projection=projection)
    return Checkpoint(*rows[0]) if rows else Checkpoint()


@functools.cache
def _checkpoint_statement(lock: bool) -> Compiled:
    c = projection_checkpoints.c
    query = sa.select(c.transaction_id.cast(sa.Text).cast(sa.BigInteger), c.global_position).where(
        c.projection == value("projection")
    )
    return Compiled.of(query.with_for_update() if lock else query)


async def save_checkpoint(conn: AsyncConnection, projection: str, checkpoint: Checkpoint) -> None:
    await _SAVE_CHECKPOINT.execute(
        conn,
        projection=projection,
        transaction_id=checkpoint.transaction_id,
        position=checkpoint.position,
    )


def _save_checkpoint_statement() -> Compiled:
    # Built and compiled once: building the upsert anew took a sixth of a runner's time
    # when batches are small, as they are under a steady load.
    statement = insert(projection_checkpoints).values(
        projection=value("projection"),
        transaction_id=as_xid8(value("transaction_id", sa.BigInteger())),
        global_position=value("position"),
        updated_at=sa.func.now(),
    )
    replaced = ("transaction_id", "global_position", "updated_at")
    return Compiled.of(
        statement.on_conflict_do_update(
            index_elements=["projection"],
            set_={name: statement.excluded[name] for name in replaced},
        )
    )


_SAVE_CHECKPOINT = _save_checkpoint_statement()


async def apply_next_batch(
    engine: AsyncEngine, projector: Follower, batch_size: int = BATCH_SIZE
) -> int:
    """Apply the next batch past the checkpoint; how many events it held."""
    async with engine.begin() as conn:
        checkpoint = await read_checkpoint(conn, projector.name)
        batch = await read_after(conn, checkpoint, batch_size)
        if batch:
            await projector.apply(conn, batch)
            await save_checkpoint(conn, projector.name, checkpoint_of(batch[-1]))
    return len(batch)


async def catch_up(
    engine: AsyncEngine,
    projector: Follower,
    batch_size: int = BATCH_SIZE,
    stop: asyncio.Event | None = None,
) -> int:
    """Apply every event visible now, or stop after the batch during which `stop` is set;
    how many events were applied. Each batch commits with its checkpoint or not at all."""
    applied = 0
    while (count := await apply_next_batch(engine, projector, batch_size)) > 0:
        applied += count
        if count < batch_size or (stop is not None and stop.is_set()):
            break
    return applied


async def run(engine: AsyncEngine, projector: Follower, stop: asyncio.Event) -> None:
    """Keep the projection up to date until `stop` is set, surviving database outages."""
    while not stop.is_set():
        try:
            await _run_while_connected(engine, projector, stop)
        except Exception as error:
            if _being_cancelled():
                # Cleaning up after a cancellation failed (a rollback on a dropped
                # connection, say): the runner still ends, as cancelled, and never restarts.
                raise asyncio.CancelledError from error
            log.exception("projection %s stopped; restarting", projector.name)
            await _sleep_unless(stop, RESTART_SECONDS)


async def _run_while_connected(
    engine: AsyncEngine, projector: Follower, stop: asyncio.Event
) -> None:
    async with engine.connect() as session:
        try:
            if await _become_active(session, projector.name, stop):
                await _follow(session, engine, projector, stop)
        finally:
            # The lock and the listener belong to this session. Back in the pool it would
            # keep the lock from every runner, this one too once it restarts: close it.
            await session.invalidate()


async def _follow(
    session: AsyncConnection, engine: AsyncEngine, projector: Follower, stop: asyncio.Event
) -> None:
    """Catch up every POLL_SECONDS, or when notified (but never twice within
    CATCH_UP_INTERVAL_SECONDS), until `stop`."""
    woken = asyncio.Event()

    def wake(*_: object) -> None:
        woken.set()

    listener = await driver_connection(session)
    await listener.add_listener(EVENTS_APPENDED, wake)
    log.info("projection %s active", projector.name)
    recheck = POLL_SECONDS
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        notified = woken.is_set()
        woken.clear()
        started = loop.time()
        applied = await catch_up(engine, projector, stop=stop)
        # A notified commit can stay out of sight behind an older transaction still open (the
        # reader's horizon, which the whole cluster's transactions hold): look again soon, then
        # ever less often, rather than only at the next poll.
        if applied == 0 and (notified or recheck < POLL_SECONDS):
            recheck = min(POLL_SECONDS, CATCH_UP_INTERVAL_SECONDS if notified else recheck * 2)
        else:
            recheck = POLL_SECONDS
        await _wait_for_any(woken, stop, recheck)
        await _sleep_unless(stop, started + CATCH_UP_INTERVAL_SECONDS - loop.time())


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _become_active(session: AsyncConnection, projection: str, stop: asyncio.Event) -> bool:
    """Wait for the projection's lock; False if told to stop first."""
    key = lock_key(projection)
    while not stop.is_set():
        locked = await session.scalar(sa.select(sa.func.pg_try_advisory_lock(key)))
        await session.commit()
        if locked:
            return True
        await _sleep_unless(stop, LOCK_RETRY_SECONDS)
    return False


async def _wait_for_any(woken: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(woken.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
