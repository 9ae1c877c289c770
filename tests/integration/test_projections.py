"""The projections against a real PostgreSQL: the runner applies every event exactly once
whatever order transactions commit in, resumes after dying in the middle of a batch, and hands
over from one runner to another; a rebuild equals a replay, verify catches a row changed behind
a projection's back, an old payload still replays, and reads keep up with writes.

These tests move state every test shares (the rollups' checkpoint, the whole log), so they run
on a database of their own."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import clock, ids, service
from app.database import Database, create_engine, open_database
from domain.commands import DeleteTask
from domain.events import TaskCreated
from domain.task import ClaimStatus, Priority, Status, Task, TitleType
from projections import log, task_view
from projections.figures import task_analytics, task_stats
from projections.log import EVENT_COLUMNS, Checkpoint, RecordedEvent, to_recorded
from projections.projector import Rows, written_columns
from projections.rebuild import rebuild
from projections.registry import ROLLUPS, TASK_VIEW
from projections.runner import LOCK_RETRY_SECONDS, apply_next_batch, catch_up, save_checkpoint
from projections.tables import (
    events,
    key_columns,
    owner_names,
    rollup_tasks,
    task_totals,
    tasks_by_created_day,
)
from projections.tables import task_view as task_view_table
from projections.verify import verify
from tests.database import migrated_database
from tests.integration.projection_support import (
    Fault,
    Rollups,
    Runners,
    append_new_task,
    caught_up,
    checkpoint,
    checkpoint_of_task,
    create,
    head,
    holds_lock,
    lock_holders,
    new_caller,
    wait_until,
    write_history,
)
from tests.tenant_connection import tenant_connection
from tests.unit.tasks import complete, patch, reassign, snooze

WRITERS = 32


@pytest.fixture(scope="module")
def projections_database_url(database_url: str) -> Iterator[str]:
    """A fresh, migrated database on the suite's server, for this module alone."""
    with migrated_database(database_url) as url:
        yield url


@pytest.fixture(scope="module")
async def engine(projections_database_url: str) -> AsyncIterator[AsyncEngine]:
    """This module's database; room for every writer of the gap test at once, and more."""
    engine = create_engine(projections_database_url, pool_size=WRITERS + 8)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def db(projections_database_url: str) -> AsyncIterator[Database]:
    """The use cases' pool on this module's database."""
    async with open_database(projections_database_url, pool_size=WRITERS + 8) as database:
        yield database


@pytest.fixture
async def runners(projections_database_url: str) -> AsyncIterator[Runners]:
    started = Runners(projections_database_url)
    yield started
    await started.stop_all()


def no_progress(_: int) -> None:
    pass


# --- Gap safety ---------------------------------------------------------------------------

ROUNDS = 3
READ_BATCH = 8
# Writers start within this spread and commit after up to COMMIT_DELAY, so commits cross.
START_SPREAD_SECONDS = 0.25
COMMIT_DELAY_SECONDS = 0.03
# How long the first writer keeps its transaction open when its reader does not go past it.
LAGGARD_HOLD_SECONDS = 0.1


class EventsSkipped(AssertionError):
    pass


class EventsDuplicated(AssertionError):
    pass


class Counting:
    """A projector that records the position of each of a tenant's events it is given."""

    tables: tuple[sa.Table, ...] = ()

    def __init__(self, tenant_id: str) -> None:
        self.name = f"gap_{uuid.uuid4().hex[:12]}"
        self.tenant_id = tenant_id
        self.positions: list[int] = []

    @property
    def furthest(self) -> int:
        return max(self.positions, default=0)

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        self.positions += [event.position for event in batch if event.tenant_id == self.tenant_id]

    def replay(self, history: Sequence[RecordedEvent]) -> dict[str, Rows]:
        return {}


# A reader of the log from a starting point on: each step hands the next events to the
# projector and says how many there were.
Step = Callable[[], Awaitable[int]]
Reader = Callable[[AsyncEngine, Counting, Checkpoint], Awaitable[Step]]


async def runner_reader(engine: AsyncEngine, projector: Counting, start: Checkpoint) -> Step:
    """The runner's batches: (transaction id, position) past the checkpoint, below the
    horizon of transactions still in flight."""
    async with engine.begin() as conn:
        await save_checkpoint(conn, projector.name, start)
    return lambda: apply_next_batch(engine, projector, READ_BATCH)


async def position_only_reader(engine: AsyncEngine, projector: Counting, start: Checkpoint) -> Step:
    """The reader every PostgreSQL event store has shipped: position > the last one read."""
    last = start.position

    async def step() -> int:
        nonlocal last
        query = (
            sa.select(*EVENT_COLUMNS)
            .where(events.c.global_position > last)
            .order_by(events.c.global_position)
            .limit(READ_BATCH)
        )
        async with engine.begin() as conn:
            batch = [to_recorded(row) for row in await conn.execute(query)]
            await projector.apply(conn, batch)
        if batch:
            last = batch[-1].position
        return len(batch)

    return step


async def position_of(conn: AsyncConnection, tenant_id: str, task_id: str) -> int:
    return (await checkpoint_of_task(conn, tenant_id, task_id)).position


# What a writer does in its transaction after its append, given the task it created.
BeforeCommit = Callable[[AsyncConnection, str], Awaitable[None]]


async def gap_round(engine: AsyncEngine, reader: Reader, number: int) -> tuple[list[int], Counting]:
    """WRITERS commands committing out of position order while the reader follows the log:
    the positions written and what the reader was given.

    The first writer appends, then keeps its transaction open until the reader has been given
    a later event (or for LAGGARD_HOLD_SECONDS): every later writer takes a higher position,
    and commits first, after a random delay."""
    caller = await new_caller(engine, f"gap-{number}")
    tenant_id = caller.principal.tenant_id
    projector = Counting(tenant_id)
    step = await reader(engine, projector, await head(engine))
    laggard_at: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    overtaken = asyncio.Event()

    async def lag(conn: AsyncConnection, task_id: str) -> None:
        laggard_at.set_result(await position_of(conn, tenant_id, task_id))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LAGGARD_HOLD_SECONDS):
                await overtaken.wait()

    async def dawdle(conn: AsyncConnection, task_id: str) -> None:
        await asyncio.sleep(random.uniform(0, COMMIT_DELAY_SECONDS))

    async def write(before_commit: BeforeCommit, delay: float) -> None:
        """A new task's event appended, as a command appends it, in a transaction that does
        `before_commit` before it commits."""
        await asyncio.sleep(delay)
        async with tenant_connection(engine, tenant_id) as conn:
            task_id = await append_new_task(conn, tenant_id, f"gap {number}")
            await before_commit(conn, task_id)

    async def follow(writing: asyncio.Future[Any]) -> None:
        while True:
            finished = writing.done()
            count = await step()
            if laggard_at.done() and projector.furthest > laggard_at.result():
                overtaken.set()
            if count == 0:
                # Every write has committed; a reader by the horizon also waits for the
                # transactions of the rest of the cluster that began before them.
                if finished and await horizon_passed(engine, tenant_id):
                    return
                await asyncio.sleep(0.001)

    laggard = asyncio.create_task(write(lag, 0))
    await asyncio.wait_for(asyncio.shield(laggard_at), 5)
    writing = asyncio.gather(
        laggard,
        *(write(dawdle, random.uniform(0, START_SPREAD_SECONDS)) for _ in range(WRITERS - 1)),
    )
    async with asyncio.timeout(15):
        await asyncio.gather(writing, follow(writing))
    async with engine.connect() as conn:
        written = await conn.scalars(
            sa.select(events.c.global_position).where(events.c.tenant_id == tenant_id)
        )
        return list(written), projector


async def horizon_passed(engine: AsyncEngine, tenant_id: str) -> bool:
    """No transaction still open could commit before the tenant's last event."""
    async with engine.connect() as conn:
        passed = await conn.scalar(
            sa.select(
                sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot())
                > sa.func.max(events.c.transaction_id)
            ).where(events.c.tenant_id == tenant_id)
        )
    return bool(passed)


def assert_exactly_once(written: list[int], given: list[int]) -> None:
    times = Counter(given)
    skipped = sorted(set(written) - set(times))
    if skipped:
        raise EventsSkipped(f"{len(skipped)} of {len(written)} events never applied: {skipped}")
    twice = sorted(position for position, count in times.items() if count > 1)
    if twice:
        raise EventsDuplicated(f"events applied more than once: {twice}")
    assert sorted(given) == sorted(written)


async def test_with_writers_committing_out_of_order_every_event_is_applied_exactly_once(
    engine: AsyncEngine,
) -> None:
    for number in range(ROUNDS):
        written, projector = await gap_round(engine, runner_reader, number)
        assert len(written) == WRITERS
        assert_exactly_once(written, projector.positions)


async def test_the_same_writers_catch_a_reader_that_follows_the_position_alone(
    engine: AsyncEngine,
) -> None:
    """The test above must catch the bug it guards against: events that commit late."""
    with pytest.raises(EventsSkipped):
        for number in range(ROUNDS):
            written, projector = await gap_round(engine, position_only_reader, number)
            assert_exactly_once(written, projector.positions)


RACED_TASKS = 5
WRITERS_PER_TASK = 16


async def test_writers_racing_for_a_task_commit_its_events_in_version_order(
    db: Database,
    engine: AsyncEngine,
) -> None:
    """Readers fold a task's events in commit order, (transaction id, position): that order
    must be the order of its versions, however many commands race for the task."""
    caller = await new_caller(engine, "racing-writers")
    task_ids = []
    for _ in range(RACED_TASKS):
        created = await create(db, caller)
        assert created.task is not None
        task_ids.append(created.task.id)
    statuses = ("in_progress", "pending", "deferred", "not_started")

    await asyncio.gather(
        *(
            service.run(db, caller, task_id, patch({"status": statuses[n % 4], "title": f"{n}"}))
            for n in range(WRITERS_PER_TASK)
            for task_id in task_ids
        )
    )

    c = events.c
    async with engine.connect() as conn:
        in_commit_order = await conn.execute(
            sa.select(c.stream_id, c.stream_version)
            .where(c.tenant_id == caller.principal.tenant_id)
            .order_by(c.transaction_id, c.global_position)
        )
        versions: dict[str, list[int]] = {}
        for stream_id, version in in_commit_order:
            versions.setdefault(stream_id, []).append(version)
    expected = list(range(1, WRITERS_PER_TASK + 2))
    assert versions == {task_id: expected for task_id in task_ids}
    await catch_up(engine, ROLLUPS)
    assert await verify(engine, ROLLUPS) == []


# --- Crash safety -------------------------------------------------------------------------


async def raise_error(conn: AsyncConnection) -> None:
    raise RuntimeError("the projector failed in the middle of a batch")


async def lose_the_connection(conn: AsyncConnection) -> None:
    await conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))


async def hang(conn: AsyncConnection) -> None:
    await asyncio.Event().wait()


async def figures(engine: AsyncEngine, tenant_id: str) -> tuple[Any, ...]:
    """What GET /tasks/stats and GET /tasks/analytics answer for a tenant."""
    now = clock.now()
    async with engine.connect() as conn:
        return (
            await task_stats(conn, tenant_id, now),
            await task_stats(conn, tenant_id, now, "u-1"),
            await task_analytics(conn, tenant_id, now, None, None, None),
            await task_analytics(conn, tenant_id, now, now - timedelta(hours=1), now, "u-9"),
        )


@pytest.mark.parametrize(
    ("fault", "restarted"),
    [
        pytest.param(raise_error, False, id="projector-raises"),
        pytest.param(lose_the_connection, False, id="connection-lost"),
        pytest.param(hang, True, id="process-killed"),
    ],
)
async def test_a_runner_stopped_in_the_middle_of_a_batch_resumes_losing_and_repeating_nothing(
    db: Database,
    engine: AsyncEngine,
    runners: Runners,
    fault: Fault,
    restarted: bool,
) -> None:
    await catch_up(engine, ROLLUPS)
    caller = await new_caller(engine, "crash")
    tenant_id = caller.principal.tenant_id
    live = await write_history(db, caller, tasks=15)

    process = runners.start(Rollups(fault=fault))
    await asyncio.wait_for(process.projector.struck.wait(), 5)
    written, batch = process.projector.written
    assert 0 < written < batch
    if restarted:
        await process.die(via=engine)
        process = runners.start()
    await wait_until(lambda: caught_up(engine))
    await process.stop_running()

    assert await verify(engine, ROLLUPS) == []
    resumed = await figures(engine, tenant_id)
    assert resumed[0]["total"] == live
    await rebuild(engine, ROLLUPS, no_progress)
    assert await figures(engine, tenant_id) == resumed


# --- Two runners --------------------------------------------------------------------------

TAKEOVER_SECONDS = 5.0


@pytest.mark.parametrize("ending", ["stops", "dies"])
async def test_of_two_runners_one_applies_the_other_waits_and_takes_over_when_it_ends(
    db: Database, engine: AsyncEngine, runners: Runners, ending: str
) -> None:
    first = runners.start()
    await wait_until(lambda: holds_lock(engine, first))
    second = runners.start()
    # Long enough for the second to have asked for the lock, and been refused.
    await asyncio.sleep(LOCK_RETRY_SECONDS * 1.2)
    caller = await new_caller(engine, "two-runners")
    await write_history(db, caller, tasks=5)
    await wait_until(lambda: caught_up(engine))

    assert first.projector.positions
    assert second.projector.positions == []
    assert len(await lock_holders(engine, ROLLUPS.name)) == 1
    assert await holds_lock(engine, first)

    if ending == "stops":
        await first.stop_running()
    else:
        await first.die(via=engine)
    ended = time.monotonic()
    created = await create(db, caller)
    assert created.task is not None
    async with engine.connect() as conn:
        position = await position_of(conn, caller.principal.tenant_id, created.task.id)
    await wait_until(lambda: caught_up(engine), within=TAKEOVER_SECONDS)

    assert time.monotonic() - ended < TAKEOVER_SECONDS
    assert position in second.projector.positions
    assert len(await lock_holders(engine, ROLLUPS.name)) == 1
    assert await holds_lock(engine, second)
    await second.stop_running()
    assert await verify(engine, ROLLUPS) == []


# --- NOTIFY and reading own writes --------------------------------------------------------

SAMPLES = 7
# Tens of milliseconds when woken by NOTIFY. One sample may be held back by the machine (the
# horizon waits for every transaction of the cluster); a runner that only polled, every 1 s,
# would keep all the others under this bound about once in a thousand runs.
NOTIFIED_WITHIN_SECONDS = 0.25
SLOW_SAMPLES_ALLOWED = 1


async def test_the_runner_applies_a_new_event_within_milliseconds_of_its_commit(
    db: Database, engine: AsyncEngine, runners: Runners
) -> None:
    process = runners.start()
    await wait_until(lambda: holds_lock(engine, process))
    await wait_until(lambda: caught_up(engine))
    caller = await new_caller(engine, "notify")
    latencies = []
    for _ in range(SAMPLES):
        # At a different moment of the runner's poll cycle each time.
        await asyncio.sleep(random.uniform(0.05, 0.3))
        created = await create(db, caller)
        committed = time.monotonic()
        assert created.task is not None
        async with engine.connect() as conn:
            event = await checkpoint_of_task(conn, caller.principal.tenant_id, created.task.id)

        async def applied(event: Checkpoint = event) -> bool:
            return await checkpoint(engine, ROLLUPS.name) >= event

        await wait_until(applied, within=2)
        latencies.append(time.monotonic() - committed)
    slow = [latency for latency in latencies if latency >= NOTIFIED_WITHIN_SECONDS]
    assert len(slow) <= SLOW_SAMPLES_ALLOWED, latencies


async def test_stats_count_a_tenants_own_writes_before_the_runner_applies_them(
    db: Database,
    engine: AsyncEngine,
) -> None:
    await catch_up(engine, ROLLUPS)
    caller = await new_caller(engine, "own-writes")
    tenant_id = caller.principal.tenant_id
    await create(db, caller, ownerId="u-1", status="in_progress")
    done = await create(db, caller, ownerId="u-2", priority="urgent")
    gone = await create(db, caller, ownerId="u-1")
    assert done.task is not None and gone.task is not None
    await service.run(db, caller, done.task.id, complete())
    await service.run(db, caller, gone.task.id, DeleteTask())

    async with engine.connect() as conn:
        counted = await conn.scalar(
            sa.select(sa.func.count()).where(task_totals.c.tenant_id == tenant_id)
        )
    assert counted == 0, "the runner has applied none of these yet"
    before = await figures(engine, tenant_id)
    stats, owner_stats, analytics, _ = before
    assert stats == {
        "total": 2,
        "overdue": 0,
        "dueToday": 0,
        "completedThisWeek": 1,
        "inProgress": 1,
    }
    assert owner_stats == {**stats, "total": 1, "completedThisWeek": 0}
    assert analytics["total_tasks"] == 2
    assert analytics["completed_tasks"] == 1
    assert analytics["priority_distribution"]["urgent"] == 1

    await catch_up(engine, ROLLUPS)
    assert await figures(engine, tenant_id) == before


# --- Rebuild and verify -------------------------------------------------------------------


async def test_a_rebuild_while_commands_are_written_ends_equal_to_a_fresh_replay(
    db: Database,
    engine: AsyncEngine,
) -> None:
    caller = await new_caller(engine, "rebuild")
    await write_history(db, caller, tasks=10)
    stop = asyncio.Event()
    commands = 0

    async def keep_writing(writer: int) -> None:
        nonlocal commands
        while not stop.is_set():
            created = await create(db, caller, ownerId=f"u-{writer}", priority="high")
            assert created.task is not None
            task_id = created.task.id
            await service.run(db, caller, task_id, patch({"status": "in_progress"}))
            last = complete() if writer % 2 else DeleteTask()
            await service.run(db, caller, task_id, last)
            commands += 3

    writers = [asyncio.create_task(keep_writing(writer)) for writer in range(4)]
    try:
        for projector in (TASK_VIEW, ROLLUPS):
            before = commands
            await rebuild(engine, projector, no_progress)
            assert commands > before, "commands were written during the rebuild"
    finally:
        stop.set()
        await asyncio.gather(*writers)

    assert await verify(engine, TASK_VIEW) == []
    await catch_up(engine, ROLLUPS)
    assert await verify(engine, ROLLUPS) == []


async def test_a_rebuilt_table_is_swapped_in_vacuumed_so_counts_need_not_visit_it(
    db: Database,
    engine: AsyncEngine,
) -> None:
    caller = await new_caller(engine, "vacuumed")
    await write_history(db, caller, tasks=20)

    await rebuild(engine, TASK_VIEW, no_progress)

    async with engine.connect() as conn:
        pages, all_visible = (
            await conn.execute(
                sa.text(
                    "SELECT relpages, relallvisible FROM pg_class "
                    "WHERE oid = 'public.task_view'::regclass"
                )
            )
        ).one()
    assert pages > 0
    assert all_visible == pages


async def test_a_rebuilt_table_keeps_the_storage_parameters_of_the_live_one(
    db: Database,
    engine: AsyncEngine,
) -> None:
    caller = await new_caller(engine, "fillfactor")
    await write_history(db, caller, tasks=3)
    statement = sa.text(
        "SELECT reloptions FROM pg_class WHERE oid = 'public.task_search'::regclass"
    )
    async with engine.connect() as conn:
        before = await conn.scalar(statement)

    await rebuild(engine, TASK_VIEW, no_progress)

    async with engine.connect() as conn:
        assert await conn.scalar(statement) == before
    assert before is not None and any(option.startswith("fillfactor=") for option in before)


async def test_a_rebuild_packs_the_summed_rollups_in_the_order_of_their_key(
    db: Database,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caller = await new_caller(engine, "packed")
    await write_history(db, caller, tasks=60)
    # Sums written every few tasks, as a large log's are: each adds to rows written before.
    monkeypatch.setattr("projections.rollups.COUNTS_HELD", 5)

    await rebuild(engine, ROLLUPS, no_progress)

    key = ", ".join(key_columns(tasks_by_created_day))
    async with engine.connect() as conn:
        in_page_order, in_key_order = [
            (
                await conn.execute(sa.text(f"SELECT {key} FROM tasks_by_created_day ORDER BY {by}"))
            ).all()
            for by in ("ctid", key)
        ]
    assert in_page_order == in_key_order


async def test_a_rebuild_names_each_owner_as_the_log_last_did_whichever_task_said_it(
    db: Database,
    engine: AsyncEngine,
) -> None:
    # A rebuild reads the log task by task: the first task's rename, last in commit order,
    # comes before the second task's name in that reading.
    caller = await new_caller(engine, "owner-names")
    first = await create(db, caller, ownerId="u-1", ownerName="Ann")
    second = await create(db, caller, ownerId="u-1", ownerName="Annie")
    assert first.task is not None and second.task is not None
    assert first.task.id < second.task.id
    await service.run(db, caller, first.task.id, patch({"ownerName": "Ann Smith"}))

    await rebuild(engine, ROLLUPS, no_progress)

    assert await owner_name(engine, caller.principal.tenant_id, "u-1") == "Ann Smith"
    assert await verify(engine, ROLLUPS) == []


async def test_a_task_that_leaves_its_owner_unnamed_keeps_the_name_given_before(
    db: Database,
    engine: AsyncEngine,
) -> None:
    caller = await new_caller(engine, "unnamed-owner")
    first = await create(db, caller, ownerId="u-3")
    await create(db, caller, ownerId="u-2", ownerName="Bo")
    await catch_up(engine, ROLLUPS)
    assert first.task is not None
    # Last in commit order, and read first by a rebuild, which reads the log task by task.
    await service.run(db, caller, first.task.id, reassign("u-2"))
    await catch_up(engine, ROLLUPS)

    assert await owner_name(engine, caller.principal.tenant_id, "u-2") == "Bo"
    await rebuild(engine, ROLLUPS, no_progress)
    assert await owner_name(engine, caller.principal.tenant_id, "u-2") == "Bo"
    assert await verify(engine, ROLLUPS) == []


async def test_a_task_s_facts_row_is_written_only_by_the_events_that_move_them(
    db: Database,
    engine: AsyncEngine,
) -> None:
    caller = await new_caller(engine, "unmoved-facts")
    tenant_id = caller.principal.tenant_id
    created = await create(db, caller, ownerId="u-1")
    assert created.task is not None
    task_id = created.task.id
    await catch_up(engine, ROLLUPS)
    written = await facts_row_version(engine, tenant_id, task_id)

    await service.run(db, caller, task_id, patch({"title": "Renamed", "tags": ["vip"]}))
    await catch_up(engine, ROLLUPS)
    assert await facts_row_version(engine, tenant_id, task_id) == written

    await service.run(db, caller, task_id, snooze(clock.now() + timedelta(days=3)))
    await catch_up(engine, ROLLUPS)
    assert await facts_row_version(engine, tenant_id, task_id) != written
    assert await verify(engine, ROLLUPS) == []


async def facts_row_version(engine: AsyncEngine, tenant_id: str, task_id: str) -> str:
    """The transaction that wrote the task's rollup_tasks row as it stands."""
    async with engine.connect() as conn:
        version = await conn.scalar(
            sa.select(sa.literal_column("xmin::text")).where(
                rollup_tasks.c.tenant_id == tenant_id, rollup_tasks.c.task_id == task_id
            )
        )
    assert version is not None
    return str(version)


async def owner_name(engine: AsyncEngine, tenant_id: str, owner_id: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            sa.select(owner_names.c.owner_name).where(
                owner_names.c.tenant_id == tenant_id, owner_names.c.owner_id == owner_id
            )
        )


async def test_verify_reports_a_row_changed_behind_the_projections_back(
    db: Database,
    engine: AsyncEngine,
) -> None:
    caller = await new_caller(engine, "tampered")
    tenant_id = caller.principal.tenant_id
    await write_history(db, caller, tasks=4)
    await catch_up(engine, ROLLUPS)
    assert await verify(engine, TASK_VIEW) == []
    assert await verify(engine, ROLLUPS) == []

    created = await create(db, caller, title="Honest title")
    assert created.task is not None
    await catch_up(engine, ROLLUPS)
    async with engine.begin() as conn:
        totals = await conn.execute(
            task_totals.update()
            .where(task_totals.c.tenant_id == tenant_id)
            .values(tasks=task_totals.c.tasks + 1)
        )
        await conn.execute(
            task_view_table.update()
            .where(
                task_view_table.c.tenant_id == tenant_id,
                task_view_table.c.task_id == created.task.id,
            )
            .values(title="tampered")
        )

    [rollups] = await verify(engine, ROLLUPS)
    assert (rollups.projection, rollups.table) == (ROLLUPS.name, "task_totals")
    assert len(rollups.unexpected) == len(rollups.missing) == totals.rowcount
    assert {row[0] for row in rollups.unexpected} == {tenant_id}
    [view] = await verify(engine, TASK_VIEW)
    assert (view.projection, view.table) == (TASK_VIEW.name, "task_view")
    title = [column.name for column in written_columns(task_view_table)].index("title")
    [missing], [unexpected] = view.missing, view.unexpected
    assert (missing[title], unexpected[title]) == ("Honest title", "tampered")

    # A rebuild puts them right.
    await rebuild(engine, TASK_VIEW, no_progress)
    await rebuild(engine, ROLLUPS, no_progress)
    assert await verify(engine, TASK_VIEW) == []
    assert await verify(engine, ROLLUPS) == []


# --- Upcasting ----------------------------------------------------------------------------


async def test_an_event_stored_in_payload_version_1_still_replays(
    db: Database, engine: AsyncEngine
) -> None:
    caller = await new_caller(engine, "upcast")
    tenant_id = caller.principal.tenant_id
    task_id = ids.new_id()
    recorded_at = clock.now()
    stamp = msgspec.to_builtins(recorded_at)
    # TASK_CREATED as version 1 wrote it: the task's fields at the top level, not in "task".
    version_1 = {
        "type": "TASK_CREATED",
        "_id": task_id,
        "title": "Written before the payload moved",
        "titleType": "callback",
        "priority": "high",
        "ownerId": "u-old",
        "ownerName": "Old Agent",
        "claimStatus": "claimed",
        "claimedAt": stamp,
        "claimedBy": "u-old",
        "tags": ["legacy"],
        "created_at": stamp,
        "updated_at": stamp,
    }
    async with engine.begin() as conn:
        await conn.execute(
            events.insert().values(
                tenant_id=tenant_id,
                stream_id=task_id,
                stream_version=1,
                event_type="TASK_CREATED",
                payload_version=1,
                data=version_1,
                metadata={"actor": caller.principal.key_id},
                recorded_at=recorded_at,
            )
        )
    async with engine.connect() as conn:
        [stored] = await log.stream(conn, tenant_id, task_id)

    assert stored.payload_version == 1
    decoded = stored.decode()
    assert isinstance(decoded, TaskCreated)
    expected = Task(
        id=task_id,
        title="Written before the payload moved",
        title_type=TitleType.CALLBACK,
        priority=Priority.HIGH,
        owner_id="u-old",
        owner_name="Old Agent",
        claim_status=ClaimStatus.CLAIMED,
        claimed_at=recorded_at,
        claimed_by="u-old",
        tags=["legacy"],
        created_at=recorded_at,
        updated_at=recorded_at,
    )
    assert decoded.task == expected

    await rebuild(engine, TASK_VIEW, no_progress)
    loaded = await task_view.load(db.pool, tenant_id, task_id)
    assert loaded is not None and (loaded.task, loaded.version) == (expected, 1)
    assert await verify(engine, TASK_VIEW) == []

    # The task lives on: commands build on it and the rollups count it.
    completed = await service.run(db, caller, task_id, complete())
    assert completed.task is not None and completed.task.status == Status.COMPLETED
    await catch_up(engine, ROLLUPS)
    assert await verify(engine, TASK_VIEW) == []
    assert await verify(engine, ROLLUPS) == []
    stats, *_ = await figures(engine, tenant_id)
    assert stats["total"] == 1
    assert stats["completedThisWeek"] == 1
