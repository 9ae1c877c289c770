"""Moving a tenant from its cell to another while it is in use (`tasks-api tenant move`).

1. The target is fenced for the tenant (it refuses its writes; nothing is routed there yet),
   and cleared of anything a failed move left of it.
2. The tenant's events are re-appended on the target in their commit order, as `audit import`
   does (new positions and transaction ids; tenant, task, version, data, metadata and time
   kept), its task view projected with them: everything behind the source's horizon, while
   the tenant keeps writing on the source.
3. The switch: the source is fenced for the tenant, under the lock every command of the
   tenant holds shared (migration 0017), so the fence waits for the commands already running
   and every later one is refused (503 with Retry-After). The rest of its events are
   appended on the target, with its idempotency records and the relay's mark, the task view
   is checked against a replay of its events and the target's fence is lifted.
4. The target's asynchronous projections are caught up with the tenant's events (they were
   with most of them before the switch) and every projection's rows of the tenant are
   checked against a replay; then the directory places the tenant on the target and
   notifies every process. The writes were paused from the source's fence to the
   directory's commit.
5. The tenant's rows are removed from the source. Its fence stays: a process that has not
   heard of the move yet cannot write there.

A failure before the directory's commit, the checks included, leaves the tenant whole on
the source, writing again, and removes what was copied to the target. After it the tenant
is whole on the target; were the source's rows not removed, a move to the same cell run
again removes them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import tenants
from app.copied_events import append_copies
from app.relay import RELAY
from app.store.tables import (
    idempotency_records,
    relay_published,
    tenant_fences,
)
from app.store.tables import (
    tenants as tenant_rows,
)
from projections.log import (
    Checkpoint,
    RecordedEvent,
    after,
    as_xid8,
    checkpoint_of,
    read_after,
)
from projections.log_digest import LOG_DIGEST
from projections.projector import stored_rows
from projections.registry import ASYNCHRONOUS, PROJECTORS, TASK_VIEW
from projections.runner import catch_up, read_checkpoint, read_checkpoint_unlocked
from projections.tables import events, log_digests
from projections.verify import verify

COPY_BATCH = 2000
# The first key of the locks that hold a tenant's commands back from a move (migration 0017).
TENANT_MOVE_LOCKS = 4017
# How long the fence may wait for the tenant's commands already running; past it the move
# gives up, the tenant untouched.
FENCE_WAIT_MS = 5_000

Say = Callable[[str], None]


class MoveRefused(Exception):
    """The move cannot start, or failed; the tenant is where it was."""


@dataclass(frozen=True)
class Moved:
    tenant_id: str
    source: str
    target: str
    events: int
    paused_seconds: float


async def move_tenant(
    cells: Mapping[str, AsyncEngine], home: str, tenant_id: str, to: str, say: Say
) -> Moved:
    """Move the tenant to the cell `to`. `cells` holds an engine per cell by name, `home`
    the cell of the directory."""
    directory = cells[home]
    async with directory.connect() as conn:
        found, placed = await tenants.tenant_cell(conn, tenant_id)
    if not found:
        raise MoveRefused(f"no tenant has the id {tenant_id}")
    source_name = placed or home
    if to == source_name:
        return await _finish_earlier_move(cells, tenant_id, to, say)
    source, target = cells[source_name], cells[to]
    say(f"Copying tenant {tenant_id} from cell {source_name} to cell {to}.")
    await _arrive(directory, target, tenant_id)
    try:
        checkpoint, copied = await _copy(source, target, tenant_id, Checkpoint(), final=False)
        await _catch_up_projections(target)
        say(f"Copied {copied} events; pausing the tenant's writes for the switch.")
        paused_at = time.monotonic()
        await _fence(source, tenant_id, to)
        try:
            _, tail = await _copy(source, target, tenant_id, checkpoint, final=True)
            await _check_projections(target, tenant_id, say)
            await _place(directory, tenant_id, None if to == home else to)
        except BaseException:
            await _unfence(source, tenant_id)
            raise
        paused = time.monotonic() - paused_at
    except BaseException:
        await _clear(target, tenant_id, keep_tenant=to == home)
        raise
    say(f"Switched after {copied + tail} events; writes paused {paused:.2f} s.")
    await _clear(source, tenant_id, keep_tenant=source_name == home, moved_to=to)
    say(f"Removed the tenant's rows from cell {source_name}.")
    return Moved(tenant_id, source_name, to, copied + tail, paused)


async def _finish_earlier_move(
    cells: Mapping[str, AsyncEngine], tenant_id: str, to: str, say: Say
) -> Moved:
    """The tenant is on `to` already: check its projections there and remove the copies a
    move to `to` left on other cells."""
    left = []
    for name, engine in cells.items():
        async with engine.connect() as conn:
            moved_to = await conn.scalar(
                sa.select(tenant_fences.c.moved_to).where(tenant_fences.c.tenant_id == tenant_id)
            )
            rows = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(events)
                .where(events.c.tenant_id == tenant_id)
            )
        if name != to and moved_to == to and rows:
            left.append(name)
    if not left:
        raise MoveRefused(f"tenant {tenant_id} is on cell {to} already")
    await _check_projections(cells[to], tenant_id, say)
    for name in left:
        await _clear(cells[name], tenant_id, keep_tenant=True, moved_to=to)
        say(f"Removed the tenant's rows left on cell {name}.")
    return Moved(tenant_id, left[0], to, 0, 0.0)


async def _arrive(directory: AsyncEngine, target: AsyncEngine, tenant_id: str) -> None:
    """The target fenced for the tenant, holding its row, and nothing else of it."""
    await _clear(target, tenant_id, keep_tenant=True)
    async with directory.connect() as source, target.begin() as conn:
        await tenants.copy_tenant(source, conn, tenant_id)


async def _copy(
    source: AsyncEngine, target: AsyncEngine, tenant_id: str, start: Checkpoint, *, final: bool
) -> tuple[Checkpoint, int]:
    """The tenant's events after `start` appended on the target in one transaction, in commit
    order, its task view projected with them: those behind the source's horizon, or, `final`
    (the source fenced), all of them, with what else the tenant's move takes along. The
    checkpoint of the last one copied and how many were."""
    copied, checkpoint = 0, start
    async with source.connect() as reading, target.begin() as writing:
        await reading.execution_options(isolation_level="REPEATABLE READ")
        await _no_idle_limit(reading)
        await _no_idle_limit(writing)
        while batch := await read_after(
            reading, checkpoint, COPY_BATCH, tenant_id=tenant_id, horizon=not final
        ):
            await _append(writing, batch)
            await TASK_VIEW.apply(writing, batch)
            copied += len(batch)
            checkpoint = checkpoint_of(batch[-1])
        if final:
            await _copy_answers(reading, writing, tenant_id)
            await _mark_published(reading, writing, tenant_id)
            await _check_task_view(writing, tenant_id)
            await writing.execute(
                tenant_fences.delete().where(tenant_fences.c.tenant_id == tenant_id)
            )
    return checkpoint, copied


async def _no_idle_limit(conn: AsyncConnection) -> None:
    # Each side waits on the other between its statements, for as long as the copy takes.
    await conn.execute(sa.text("SET LOCAL idle_in_transaction_session_timeout = 0"))
    await conn.execute(sa.text("SET LOCAL statement_timeout = 0"))


async def _append(conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
    altered = await append_copies(conn, batch)
    if altered is not None:
        event = batch[altered]
        raise MoveRefused(
            f"version {event.version} of task {event.stream_id} does not match its hash on "
            "the source: its log there was altered (`tasks-api audit verify`)"
        )


async def _copy_answers(reading: AsyncConnection, writing: AsyncConnection, tenant_id: str) -> None:
    """The answers recorded for the tenant's Idempotency-Keys: a retry on the target replays
    the answer of a command that committed on the source."""
    c = idempotency_records.c
    rows = (
        await reading.execute(sa.select(idempotency_records).where(c.tenant_id == tenant_id))
    ).all()
    if rows:
        await writing.execute(idempotency_records.insert(), [row._asdict() for row in rows])


async def _mark_published(
    reading: AsyncConnection, writing: AsyncConnection, tenant_id: str
) -> None:
    """Mark the last of the copied events that the source's relay has published: the
    target's relay publishes only those after it. (What the source's relay publishes after
    this read, JetStream's de-duplication drops when the target's publishes it again.)"""
    published = await read_checkpoint_unlocked(reading, RELAY)
    count = await reading.scalar(
        sa.select(sa.func.count())
        .select_from(events)
        .where(events.c.tenant_id == tenant_id, sa.not_(after(published)))
    )
    await writing.execute(relay_published.delete().where(relay_published.c.tenant_id == tenant_id))
    if not count:
        return
    c = events.c
    transaction_id, position = (
        await writing.execute(
            sa.select(c.transaction_id.cast(sa.Text).cast(sa.BigInteger), c.global_position)
            .where(c.tenant_id == tenant_id)
            .order_by(c.transaction_id, c.global_position)
            .offset(count - 1)
            .limit(1)
        )
    ).one()
    await writing.execute(
        relay_published.insert().values(
            tenant_id=tenant_id, transaction_id=as_xid8(transaction_id), global_position=position
        )
    )


async def _check_task_view(conn: AsyncConnection, tenant_id: str) -> None:
    """The tenant's task view on the target equals a replay of its events there, before any
    read is sent to it."""
    history, checkpoint = [], Checkpoint()
    while batch := await read_after(
        conn, checkpoint, COPY_BATCH, tenant_id=tenant_id, horizon=False
    ):
        history += batch
        checkpoint = checkpoint_of(batch[-1])
    for table in TASK_VIEW.tables:
        if await stored_rows(conn, table, tenant_id) != TASK_VIEW.replay(history)[table.name]:
            raise MoveRefused("the task view copied to the target differs from a replay")


async def _fence(source: AsyncEngine, tenant_id: str, to: str) -> None:
    """The source refuses the tenant's writes from now on: the fence waits for the commands
    already running (they hold the tenant's lock shared), and every later one sees it."""
    async with source.begin() as conn:
        await conn.execute(sa.text(f"SET LOCAL lock_timeout = {FENCE_WAIT_MS}"))
        await conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(TENANT_MOVE_LOCKS, sa.func.hashtext(tenant_id)))
        )
        await _set_fence(conn, tenant_id, to)


async def _set_fence(conn: AsyncConnection, tenant_id: str, moved_to: str | None) -> None:
    statement = insert(tenant_fences).values(tenant_id=tenant_id, moved_to=moved_to)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id"],
            set_={"moved_to": moved_to, "fenced_at": sa.func.now()},
        )
    )


async def _unfence(source: AsyncEngine, tenant_id: str) -> None:
    async with source.begin() as conn:
        await conn.execute(tenant_fences.delete().where(tenant_fences.c.tenant_id == tenant_id))


async def _place(directory: AsyncEngine, tenant_id: str, cell: str | None) -> None:
    """The directory leads the tenant's keys to `cell` (None: the home), one placement on,
    and every API process forgets the keys it had cached."""
    async with directory.begin() as conn:
        await conn.execute(
            tenant_rows.update()
            .where(tenant_rows.c.tenant_id == tenant_id)
            .values(cell=cell, placement=tenant_rows.c.placement + 1)
        )
        await conn.execute(sa.select(sa.func.pg_notify(tenants.MOVE_CHANNEL, tenant_id)))


async def _catch_up_projections(target: AsyncEngine) -> None:
    for projector in ASYNCHRONOUS:
        await catch_up(target, projector)


async def _check_projections(target: AsyncEngine, tenant_id: str, say: Say) -> None:
    """The target's asynchronous projections caught up with the tenant's events, and every
    projection's rows of the tenant equal a replay of them."""
    await _catch_up_projections(target)
    for projector in PROJECTORS.values():
        if differences := await verify(target, projector, tenant_id):
            shown = "; ".join(str(m) for d in differences for m in list(d.mismatches())[:3])
            raise MoveRefused(
                f"the tenant's {projector.name} on the target differs from a replay ({shown})"
            )
    say("The tenant's projections on the target equal a replay of its events.")


async def _clear(
    engine: AsyncEngine, tenant_id: str, *, keep_tenant: bool, moved_to: str | None = None
) -> None:
    """Fence the tenant on the cell and remove every row of it: its events (which only a
    fenced tenant's may be), projections, answers, the relay's mark and its log's digest;
    its own row too unless `keep_tenant` (the home cell's is the directory's)."""
    async with engine.begin() as conn:
        await _no_idle_limit(conn)
        await _set_fence(conn, tenant_id, moved_to)
        await conn.execute(sa.select(sa.func.set_config("tasks.moved_out_tenant", tenant_id, True)))
        # A batch of the digests' runner folding the tenant's events in now would record
        # its digest again after the removal: wait for it, and hold the next one back.
        await read_checkpoint(conn, LOG_DIGEST.name)
        tables: list[Any] = [events, idempotency_records, relay_published, log_digests]
        tables += [table for projector in PROJECTORS.values() for table in projector.tables]
        for table in tables:
            await conn.execute(table.delete().where(table.c.tenant_id == tenant_id))
        if not keep_tenant:
            await conn.execute(
                sa.text(
                    "DELETE FROM tenants t WHERE t.tenant_id = :tenant AND NOT EXISTS "
                    "(SELECT FROM analysts a WHERE a.scope_tenant_id = t.tenant_id)"
                ),
                {"tenant": tenant_id},
            )
