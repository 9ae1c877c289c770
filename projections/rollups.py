"""Rollups for statistics and analytics, so that reading them costs the same at a thousand
tasks or a million. Two kinds:

- the present state, which the API's figures are read from: live tasks per tenant, owner,
  status and priority, per creation day and week, completed per day and open per due day.
  Each task contributes to a few rows; an event's effect is the task's contribution after
  the event minus its contribution before, so a count moves as tasks change or go;
- the history: completions, snoozes and reassignments per day, owner and queue. Each such
  event adds one to a row, and nothing ever takes it back.

A task without an owner or a queue counts under NULL there, as the task view shows it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from msgspec.structs import replace
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import (
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskEvent,
    TaskReassigned,
    TaskSnoozed,
    TaskUpdated,
)
from domain.task import CLOSED_STATUSES, Status
from projections.driver import AnyConnection, Compiled, driver_connection
from projections.log import RecordedEvent
from projections.projector import Rows, comparable, copy_rows, keyed_by, task_keys, upsert_rows
from projections.tables import (
    completions_by_day,
    completions_history,
    key_columns,
    open_tasks_by_created_day,
    open_tasks_by_due_day,
    owner_names,
    reassignments_history,
    rollup_tasks,
    snoozes_history,
    task_totals,
    tasks_by_created_day,
    tasks_by_created_week,
)

# Rollup rows a rebuild sums in memory before adding them to the tables.
COUNTS_HELD = 100_000

TaskKey = tuple[str, str]  # (tenant_id, task_id)
# (table name, key columns' values) -> [tasks, completion_ms]
Deltas = dict[tuple[str, tuple[Any, ...]], list[int]]
# (table name, key columns' values) -> events counted
Occurrences = dict[tuple[str, tuple[Any, ...]], int]
# A name said of an owner: ((transaction id, position) where the log said it, the name).
SaidName = tuple[tuple[int, int], str | None]
# (tenant_id, owner_id) -> the name that outranks every other said of the owner, whatever
# order the events are folded in.
OwnerNames = dict[tuple[str, str], SaidName]


class TaskFacts(msgspec.Struct, frozen=True, gc=False):
    """What the rollups know of a live task (a struct: a rebuild makes one per event)."""

    owner_id: str | None
    queue_id: str | None
    status: str
    priority: str
    created_at: datetime
    completed_at: datetime | None
    due_date: datetime | None

    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    def completion_ms(self) -> int:
        if self.status != Status.COMPLETED or self.completed_at is None:
            return 0
        return round((self.completed_at - self.created_at).total_seconds() * 1000)


def facts_after(facts: TaskFacts | None, event: TaskEvent) -> TaskFacts | None:
    """A task's facts after one event; None once deleted."""
    match event:
        case TaskCreated(task=task):
            return TaskFacts(
                owner_id=task.owner_id,
                queue_id=task.queue_id,
                status=task.status,
                priority=task.priority,
                created_at=task.created_at,
                completed_at=task.completed_at,
                due_date=task.due_date,
            )
        case TaskDeleted():
            return None
    if facts is None:
        raise ValueError(f"{type(event).__name__} for a task the rollups never saw created")
    match event:
        case TaskUpdated(changes=changes):
            status = changes["status"].after if "status" in changes else facts.status
            priority = changes["priority"].after if "priority" in changes else facts.priority
            completed_at = facts.completed_at if status == Status.COMPLETED else None
            due_date = (
                msgspec.convert(changes["dueDate"].after, datetime | None)
                if "dueDate" in changes
                else facts.due_date
            )
            queue_id = changes["queueId"].after if "queueId" in changes else facts.queue_id
            return replace(
                facts,
                queue_id=queue_id,
                status=status,
                priority=priority,
                completed_at=completed_at,
                due_date=due_date,
            )
        case TaskCompleted():
            return replace(facts, status=Status.COMPLETED, completed_at=event.completed_at)
        case TaskReassigned():
            return replace(facts, owner_id=event.new_owner_id)
        case TaskSnoozed():
            return replace(facts, due_date=event.new_due_date)
    return facts


def contributions(
    tenant_id: str, facts: TaskFacts | None
) -> Iterable[tuple[str, tuple[Any, ...], int]]:
    """The rollup rows a task counts in: (table, key, completion_ms)."""
    if facts is None:
        return
    ms = facts.completion_ms()
    yield "task_totals", (tenant_id, facts.owner_id, facts.status, facts.priority), ms
    created_on = facts.created_at.date()
    bucket = (facts.owner_id, facts.status, facts.priority)
    yield "tasks_by_created_day", (tenant_id, created_on, *bucket), ms
    yield "tasks_by_created_week", (tenant_id, week_of(created_on), *bucket), ms
    if facts.status == Status.COMPLETED and facts.completed_at is not None:
        yield "completions_by_day", (tenant_id, facts.completed_at.date(), facts.owner_id), 0
    if facts.is_open() and facts.due_date is not None:
        # The day in UTC, as the counts that read these rows draw their lines.
        due_on = facts.due_date.astimezone(UTC).date()
        yield "open_tasks_by_due_day", (tenant_id, due_on, facts.owner_id), 0
        yield "open_tasks_by_created_day", (tenant_id, created_on, due_on), 0


def week_of(day: date) -> date:
    """The Monday that starts the day's week."""
    return day - timedelta(days=day.weekday())


def add_change(
    deltas: Deltas, tenant_id: str, before: TaskFacts | None, after: TaskFacts | None
) -> None:
    for sign, facts in ((-1, before), (1, after)):
        for table, key, ms in contributions(tenant_id, facts):
            delta = deltas.setdefault((table, key), [0, 0])
            delta[0] += sign
            delta[1] += sign * ms


def occurrence(
    event: RecordedEvent, decoded: TaskEvent, after: TaskFacts | None
) -> tuple[str, tuple[Any, ...]] | None:
    """The history row an event counts in, if it is a completion, snooze or reassignment:
    (table, key), the key naming the owner and queue the task had then."""
    tenant, day = event.tenant_id, event.recorded_at.astimezone(UTC).date()
    match decoded:
        case TaskCompleted() if after is not None:
            completed_on = decoded.completed_at.astimezone(UTC).date()
            key = (tenant, completed_on, after.owner_id, after.queue_id, decoded.outcome)
            return "completions_history", key
        case TaskSnoozed() if after is not None:
            return "snoozes_history", (tenant, day, after.owner_id, after.queue_id)
        case TaskReassigned() if after is not None:
            owners = (decoded.previous_owner_id, decoded.new_owner_id)
            return "reassignments_history", (tenant, day, *owners, after.queue_id)
    return None


def owner_named(event: TaskEvent) -> tuple[str, str | None] | None:
    """(owner id, name) when an event says what an owner is called."""
    match event:
        case TaskCreated(task=task) if task.owner_id is not None:
            return task.owner_id, task.owner_name
        case TaskReassigned() if event.new_owner_id is not None:
            return event.new_owner_id, event.new_owner_name
    return None


@dataclass
class Fold:
    """The effect of a run of events: rollup deltas, history counts, tasks' new facts,
    owners' names."""

    facts: dict[TaskKey, TaskFacts | None]
    # None: changes are not counted (a rebuild's loader counts each task once, at its end).
    deltas: Deltas | None
    names: OwnerNames
    history: Occurrences = field(default_factory=dict)

    def add(self, event: RecordedEvent) -> None:
        key = (event.tenant_id, event.stream_id)
        decoded = event.decode()
        before = self.facts.get(key)
        after = facts_after(before, decoded)
        self.facts[key] = after
        if self.deltas is not None:
            add_change(self.deltas, event.tenant_id, before, after)
        if counted := occurrence(event, decoded, after):
            self.history[counted] = self.history.get(counted, 0) + 1
        if named := owner_named(decoded):
            self._name(event, *named)
        renamed = isinstance(decoded, TaskUpdated) and "ownerName" in decoded.changes
        if renamed and after is not None and after.owner_id is not None:
            self._name(event, after.owner_id, decoded.changes["ownerName"].after)  # type: ignore[union-attr]

    def _name(self, event: RecordedEvent, owner_id: str, name: str | None) -> None:
        key, said = (event.tenant_id, owner_id), (event.transaction_id, event.position)
        known = self.names.get(key)
        if known is None or name_outranks((said, name), known):
            self.names[key] = (said, name)


def name_outranks(said: SaidName, known: SaidName) -> bool:
    """Whether a name said of an owner replaces the one known: a name beats none (a task that
    leaves its owner unnamed does not erase the owner's name), then the later in commit order
    wins."""
    (said_at, said_name), (known_at, known_name) = said, known
    return (said_name is not None, said_at) > (known_name is not None, known_at)


class RollupProjector:
    name = "task_rollups"
    tables = (
        rollup_tasks,
        task_totals,
        tasks_by_created_day,
        tasks_by_created_week,
        completions_by_day,
        open_tasks_by_due_day,
        open_tasks_by_created_day,
        owner_names,
        completions_history,
        snoozes_history,
        reassignments_history,
    )

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        keys = sorted({(event.tenant_id, event.stream_id) for event in batch})
        stored = await load_facts(conn, keys)
        fold = Fold(facts=dict(stored), deltas={}, names={})
        for event in batch:
            fold.add(event)
        await _write_facts(conn, _moved_facts(stored, fold.facts))
        await _write_deltas(conn, fold.deltas)
        await _write_history(conn, fold.history)
        await _write_names(conn, fold.names)

    def replay(self, history: Sequence[RecordedEvent]) -> dict[str, Rows]:
        fold = Fold(facts={}, deltas={}, names={})
        for event in history:
            fold.add(event)
        rows: dict[str, Rows] = defaultdict(set)
        for (table, key), (tasks, ms) in fold.deltas.items():
            if tasks:
                rows[table].add(_counted_row(table, key, tasks, ms))
        for (table, key), count in fold.history.items():
            rows[table].add((*key, count))
        rows["rollup_tasks"] = set(_fact_rows(fold.facts))
        rows["owner_names"] = {
            (tenant, owner, name) for (tenant, owner), (_, name) in fold.names.items()
        }
        return {
            table.name: {comparable(row) for row in rows.get(table.name, set())}
            for table in self.tables
        }

    def loader(self) -> RollupLoader:
        return RollupLoader()


class RollupLoader:
    """Each task's facts copied in as its stream arrives; the counts summed in memory (and
    added to the tables whenever they grow large), the owners' names written at the end."""

    # Every table but the facts, which are copied in once per task.
    summed = tuple(table for table in RollupProjector.tables if table is not rollup_tasks)

    def __init__(self) -> None:
        self.counts: Deltas = {}
        self.history: Occurrences = {}
        self.names: OwnerNames = {}

    async def add(self, conn: AsyncConnection, streams: Sequence[RecordedEvent]) -> None:
        fold = Fold(facts={}, deltas=None, names=self.names, history=self.history)
        for event in streams:
            fold.add(event)
        for (tenant, _), facts in fold.facts.items():
            add_change(self.counts, tenant, None, facts)
        await copy_rows(conn, rollup_tasks, FACT_COLUMNS, _fact_rows(fold.facts))
        if len(self.counts) + len(self.history) >= COUNTS_HELD:
            await self._write_counts(conn)

    async def finish(self, conn: AsyncConnection) -> None:
        await self._write_counts(conn)
        await _write_names(conn, self.names)

    async def _write_counts(self, conn: AsyncConnection) -> None:
        await _write_deltas(conn, self.counts)
        await _write_history(conn, self.history)
        self.counts.clear()
        self.history.clear()


async def load_facts(conn: AnyConnection, keys: list[TaskKey]) -> dict[TaskKey, TaskFacts | None]:
    rows = await _LOAD_FACTS.fetch(
        conn, key_tenants=[tenant for tenant, _ in keys], key_tasks=[task for _, task in keys]
    )
    return {
        (row["tenant_id"], row["task_id"]): TaskFacts(
            row["owner_id"],
            row["queue_id"],
            row["status"],
            row["priority"],
            row["created_at"],
            row["completed_at"],
            row["due_date"],
        )
        for row in rows
    }


def _load_facts_statement() -> Compiled:
    c, pairs = rollup_tasks.c, task_keys()
    return Compiled.of(
        sa.select(rollup_tasks).join_from(
            rollup_tasks,
            pairs,
            sa.and_(c.tenant_id == pairs.c.tenant_id, c.task_id == pairs.c.task_id),
        )
    )


_LOAD_FACTS = _load_facts_statement()


def _moved_facts(
    stored: dict[TaskKey, TaskFacts | None], facts: dict[TaskKey, TaskFacts | None]
) -> dict[TaskKey, TaskFacts | None]:
    """The facts a batch moved away from those stored (a task with no row is stored as None).
    Most commands move none (a new title, a tag, a claim): writing their rows anyway gave each
    a new row version, and its WAL, in every batch."""
    return {key: value for key, value in facts.items() if stored.get(key) != value}


async def _write_facts(conn: AsyncConnection, facts: dict[TaskKey, TaskFacts | None]) -> None:
    gone = [key for key, value in facts.items() if value is None]
    if gone:
        await conn.execute(rollup_tasks.delete().where(keyed_by(rollup_tasks, gone)))
    await upsert_rows(conn, rollup_tasks, FACT_COLUMNS, _fact_rows(facts), FACTS_CHANGED)


def _fact_rows(facts: dict[TaskKey, TaskFacts | None]) -> list[tuple[Any, ...]]:
    """rollup_tasks rows of the live tasks."""
    return [(tenant, task, *fact_values(f)) for (tenant, task), f in facts.items() if f is not None]


async def _write_deltas(conn: AsyncConnection, deltas: Deltas) -> None:
    by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for (table_name, key), (tasks, ms) in deltas.items():
        if tasks == 0 and ms == 0:
            continue
        by_table[table_name].append(_counted_row(table_name, key, tasks, ms))
    for table_name, rows in by_table.items():
        table = ROLLUP_TABLES[table_name]
        counts = ("tasks", "completion_ms") if table_name in TIMED_TABLES else ("tasks",)
        emptied = await upsert_rows(
            conn,
            table,
            key_columns(table) + counts,
            rows,
            ", ".join(f"{name} = t.{name} + EXCLUDED.{name}" for name in counts),
            returning="ctid, tasks",
        )
        # A bucket that no task counts in any more is dropped, so the tables stay small. Found
        # by the row's place, which only this transaction writes: a key may hold a NULL, which
        # an IN list of keys would never match.
        if gone := [row["ctid"] for row in emptied if row["tasks"] == 0]:
            await (await driver_connection(conn)).execute(
                f"DELETE FROM {table.name} WHERE ctid = ANY($1::tid[]) AND tasks = 0", gone
            )


async def _write_history(conn: AsyncConnection, history: Occurrences) -> None:
    by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for (table_name, key), count in history.items():
        by_table[table_name].append((*key, count))
    for table_name, rows in by_table.items():
        table, count = HISTORY_TABLES[table_name]
        await upsert_rows(
            conn,
            table,
            (*key_columns(table), count),
            rows,
            f"{count} = t.{count} + EXCLUDED.{count}",
        )


async def _write_names(conn: AsyncConnection, names: OwnerNames) -> None:
    rows = [(tenant, owner, name) for (tenant, owner), (_, name) in names.items()]
    await upsert_rows(
        conn,
        owner_names,
        ("tenant_id", "owner_id", "owner_name"),
        rows,
        # A batch that saw an owner only unnamed keeps the name an earlier one gave.
        "owner_name = coalesce(EXCLUDED.owner_name, t.owner_name)",
    )


def _counted_row(table_name: str, key: tuple[Any, ...], tasks: int, ms: int) -> tuple[Any, ...]:
    """A rollup row: its key, then its counts (completion time only where the table has it)."""
    return (*key, tasks, ms) if table_name in TIMED_TABLES else (*key, tasks)


def fact_values(facts: TaskFacts) -> tuple[Any, ...]:
    """A task's facts in the order of rollup_tasks' columns after its key."""
    return (
        facts.owner_id,
        facts.queue_id,
        facts.status,
        facts.priority,
        facts.created_at,
        facts.completed_at,
        facts.due_date,
    )


FACT_COLUMNS = (
    "tenant_id",
    "task_id",
    "owner_id",
    "queue_id",
    "status",
    "priority",
    "created_at",
    "completed_at",
    "due_date",
)
FACTS_CHANGED = ", ".join(
    f"{name} = EXCLUDED.{name}"
    for name in ("owner_id", "queue_id", "status", "priority", "completed_at", "due_date")
)

ROLLUP_TABLES = {
    table.name: table
    for table in (
        task_totals,
        tasks_by_created_day,
        tasks_by_created_week,
        completions_by_day,
        open_tasks_by_due_day,
        open_tasks_by_created_day,
    )
}
# The rollups that sum their tasks' completion times beside counting them.
TIMED_TABLES = frozenset(
    name for name, table in ROLLUP_TABLES.items() if "completion_ms" in table.c
)
# Each history table and the column its events are counted in.
HISTORY_TABLES = {
    table.name: (table, count)
    for table, count in (
        (completions_history, "completions"),
        (snoozes_history, "snoozes"),
        (reassignments_history, "reassignments"),
    )
}
