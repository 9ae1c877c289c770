"""Statistics and analytics, read from the rollups.

The rollups trail the log by the runner's lag; the tenant's events past the rollups'
checkpoint are folded in at read time, so a client reads its own writes here too. Only
what depends on the clock is counted on the task view: overdue and due today within today.

Each statement is compiled once for each shape it takes (with or without an owner, a start, an
end) and run on the driver's connection: a figure is six statements, and SQLAlchemy's work on
each was most of a request's time in the worker."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.task import CLOSED_STATUSES, Priority, Status
from projections.driver import TEXTS, AnyConnection, Compiled, driver_connection, value
from projections.log import read_after
from projections.registry import ROLLUPS
from projections.rollups import ROLLUP_TABLES, Fold, load_facts, week_of
from projections.runner import read_checkpoint_unlocked
from projections.tables import (
    completions_by_day,
    key_columns,
    open_tasks_by_created_day,
    open_tasks_by_due_day,
    owner_names,
    task_totals,
    task_view,
    tasks_by_created_day,
    tasks_by_created_week,
)

# Past this many unapplied events of a tenant, its figures wait for the runner.
PENDING_EVENTS_MAX = 5000
AGENT_PERFORMANCE_MAX = 5000
MS_PER_HOUR = 3_600_000


class RollupsBehind(Exception):
    """The rollups are too far behind the log to fold the rest in at read time, as after a
    replay of them has begun: the figures would be wrong, so none are given."""


async def pending(conn: AsyncConnection, tenant_id: str) -> Fold:
    """The tenant's events the rollups have not applied yet, folded."""
    checkpoint = await read_checkpoint_unlocked(conn, ROLLUPS.name)
    tail = await read_after(
        conn, checkpoint, PENDING_EVENTS_MAX + 1, tenant_id=tenant_id, horizon=False
    )
    if len(tail) > PENDING_EVENTS_MAX:
        raise RollupsBehind(tenant_id)
    keys = sorted({(event.tenant_id, event.stream_id) for event in tail})
    fold = Fold(facts=await load_facts(conn, keys) if keys else {}, deltas={}, names={})
    for event in tail:
        fold.add(event)
    return fold


def _pending_rows(fold: Fold, table: sa.Table) -> list[dict[str, Any]]:
    key_names = key_columns(table)
    return [
        {**dict(zip(key_names, key, strict=True)), "tasks": tasks, "completion_ms": ms}
        for (name, key), (tasks, ms) in fold.deltas.items()
        if name == table.name
    ]


def _start_of_day(moment: datetime) -> datetime:
    return datetime.combine(moment.date(), time(), UTC)


def _split_into_days(
    created_from: datetime | None, created_before: datetime | None
) -> tuple[tuple[datetime | None, datetime | None] | None, list[tuple[datetime, datetime]]]:
    """A period of creation as a daily rollup can count it: its whole days, from the first
    and before the end (None where the period has no bound), and the parts of days before and
    after them, each [start, end). A period within one day has no whole day: all of it is a
    part."""
    first_whole = _whole_day_at_or_after(created_from)
    end_whole = None if created_before is None else _start_of_day(created_before)
    if created_from is not None and created_before is not None and first_whole > end_whole:
        return None, [(created_from, created_before)]
    part_days = []
    if created_from is not None and first_whole != created_from:
        part_days.append((created_from, first_whole))
    if created_before is not None and end_whole != created_before:
        part_days.append((end_whole, created_before))
    return (first_whole, end_whole), part_days


def _whole_day_at_or_after(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    start = _start_of_day(moment)
    return start if start == moment else start + timedelta(days=1)


async def task_stats(
    conn: AsyncConnection, tenant_id: str, now: datetime, owner_id: str | None = None
) -> dict[str, int]:
    """total, overdue, dueToday (open, due within today UTC), completedThisWeek (since
    Monday 00:00 UTC) and inProgress."""
    fold = await pending(conn, tenant_id)

    rows = await _totals_by_status(owner_id is not None).fetch(
        conn, tenant_id=tenant_id, owner_id=owner_id
    )
    by_status: Counter[str] = Counter({status: int(count) for status, count in rows})
    for row in _pending_rows(fold, task_totals):
        if owner_id in (None, row["owner_id"]):
            by_status[row["status"]] += row["tasks"]

    today = _start_of_day(now)
    monday = today - timedelta(days=today.weekday())
    completed_this_week = await _tasks_by_day(
        conn, fold, completions_by_day.c.completed_on, tenant_id, owner_id, since=monday.date()
    )

    overdue, due_today = await open_and_due(conn, fold, tenant_id, now, owner_id)
    return {
        "total": sum(by_status.values()),
        "overdue": overdue,
        "dueToday": due_today,
        "completedThisWeek": completed_this_week,
        "inProgress": by_status[Status.IN_PROGRESS],
    }


def _kept_to(
    query: sa.Select[Any],
    table: sa.Table,
    for_owner: bool,
    day: str = "",
    *,
    since: str | None = None,
    before: str | None = None,
) -> sa.Select[Any]:
    """The query kept to the tenant (the value `tenant_id`), to one owner (`owner_id`) when
    `for_owner`, and to the column `day` from the value named `since` and before the value
    named `before`, each when named."""
    c = table.c
    query = query.where(c.tenant_id == value("tenant_id"))
    if for_owner:
        query = query.where(c.owner_id == value("owner_id"))
    if since is not None:
        query = query.where(c[day] >= value(since))
    if before is not None:
        query = query.where(c[day] < value(before))
    return query


@functools.cache
def _totals_by_status(for_owner: bool) -> Compiled:
    t = task_totals.c
    query = _kept_to(sa.select(t.status, sa.func.sum(t.tasks)), task_totals, for_owner)
    return Compiled.of(query.group_by(t.status))


async def tasks_in_totals(
    conn: AsyncConnection,
    fold: Fold,
    tenant_id: str,
    owner_id: str | None,
    statuses: Collection[str],
    priorities: Collection[str],
) -> int:
    """The tenant's (or one owner's) live tasks in any of `statuses` and of `priorities`
    (none named: any), with what the runner has not applied yet."""
    statement = _totals_sum(owner_id is not None, bool(statuses), bool(priorities))
    [(stored,)] = await statement.fetch(
        conn,
        tenant_id=tenant_id,
        owner_id=owner_id,
        statuses=list(statuses),
        priorities=list(priorities),
    )
    return int(stored) + sum(
        row["tasks"]
        for row in _pending_rows(fold, task_totals)
        if owner_id in (None, row["owner_id"])
        and (not statuses or row["status"] in statuses)
        and (not priorities or row["priority"] in priorities)
    )


@functools.cache
def _totals_sum(for_owner: bool, by_status: bool, by_priority: bool) -> Compiled:
    t = task_totals.c
    query = _kept_to(sa.select(sa.func.coalesce(sa.func.sum(t.tasks), 0)), task_totals, for_owner)
    if by_status:
        query = query.where(t.status == sa.func.any(value("statuses", TEXTS)))
    if by_priority:
        query = query.where(t.priority == sa.func.any(value("priorities", TEXTS)))
    return Compiled.of(query)


@dataclass
class Buckets:
    """Task counts and completion time by (owner, status, priority); owner None for tasks
    without one."""

    tasks: Counter[tuple[str | None, str, str]] = field(default_factory=Counter)
    completion_ms: Counter[tuple[str | None, str, str]] = field(default_factory=Counter)

    def add(self, owner: str | None, status: str, priority: str, tasks: int, ms: int) -> None:
        self.tasks[(owner, status, priority)] += tasks
        self.completion_ms[(owner, status, priority)] += ms


async def task_analytics(
    conn: AsyncConnection,
    tenant_id: str,
    now: datetime,
    created_from: datetime | None,
    created_before: datetime | None,
    owner_id: str | None,
    agents: int = AGENT_PERFORMANCE_MAX,
) -> dict[str, Any]:
    """Totals, distributions and per-agent performance of the tasks created in a period: the
    first `agents` agents, most tasks first."""
    if created_from is not None or created_before is not None:
        await _plan_for_values(conn)
    fold = await pending(conn, tenant_id)
    buckets = Buckets()
    if created_from is None or created_before is None or created_from < created_before:
        spans = _period_spans(created_from, created_before)
        await _add_spans(conn, buckets, fold, spans, tenant_id, owner_id)

    totals: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    priorities: Counter[str] = Counter()
    completion_ms = 0
    for (owner, status, priority), count in buckets.tasks.items():
        statuses[status] += count
        priorities[priority] += count
        completed_here = status == Status.COMPLETED
        if completed_here:
            completion_ms += buckets.completion_ms[(owner, status, priority)]
        if owner is not None:
            totals[owner] += count
            completed[owner] += count if completed_here else 0
    completed_tasks = statuses[Status.COMPLETED]
    names = await _owner_names(conn, tenant_id, fold)
    # An owner whose tasks all moved on nets to zero here: they are no longer an agent of these.
    active = [(owner, total) for owner, total in totals.items() if total > 0]
    ranked = sorted(active, key=lambda item: (-item[1], item[0]))[:agents]
    return {
        "total_tasks": sum(statuses.values()),
        "completed_tasks": completed_tasks,
        "overdue_tasks": await _overdue(
            conn, fold, tenant_id, now, owner_id, created_from, created_before
        ),
        "avg_completion_time": (
            average_hours(completion_ms, completed_tasks) if completed_tasks else None
        ),
        "status_distribution": {status: statuses[status] for status in Status},
        "priority_distribution": {level: priorities[level] for level in Priority},
        "agent_performance": [
            {
                "agent_id": owner,
                "agent_name": names.get(owner),
                "total": total,
                "completed": completed[owner],
            }
            for owner, total in ranked
        ],
    }


async def _plan_for_values(conn: AnyConnection) -> None:
    """Have the transaction's statements planned for their values at each run. A period's
    bounds decide which index serves it: planned once for any values (PostgreSQL's generic
    plan, from a prepared statement's sixth run on), an owner's month of tasks was read
    through the index of every open task created in it, 0.3 to 0.7 s at a million tasks
    where planning for the values takes 15 ms in all."""
    driver = await driver_connection(conn) if isinstance(conn, AsyncConnection) else conn
    await driver.execute("SET LOCAL plan_cache_mode = force_custom_plan")


def average_hours(total_ms: int, tasks: int) -> float:
    """The mean of `tasks` durations summing to `total_ms`, in hours, rounded to two decimals
    or to three significant digits where that is finer: an average above zero is never
    shown as 0 (12 seconds is 0.00333 hours), and 4.5 hours stays 4.5."""
    hours = total_ms / tasks / MS_PER_HOUR
    if hours == 0:
        return 0.0
    return round(hours, max(2, 2 - math.floor(math.log10(abs(hours)))))


@dataclass(frozen=True)
class Span:
    """A stretch of a period of creation and where its tasks are counted: on the task view,
    or in a rollup; bounded on `column` from `since` and before `before` (None: unbounded)."""

    table: sa.Table
    column: str
    since: date | datetime | None = None
    before: date | datetime | None = None


def _period_spans(created_from: datetime | None, created_before: datetime | None) -> list[Span]:
    """The spans that together count the tasks created in a period: with no bound, the
    totals (a thousand rows at most, where the days hold one per day of the tenant's life);
    else its whole weeks from the weekly rollup, its other whole days from the daily one, and
    the parts of days at either end from the task view."""
    if created_from is None and created_before is None:
        return [Span(task_totals, "")]
    whole_days, part_days = _split_into_days(created_from, created_before)
    spans = [Span(task_view, "created_at", start, end) for start, end in part_days]
    if whole_days is not None:
        first_day, end_day = whole_days
        spans += _weeks_and_days(first_day and first_day.date(), end_day and end_day.date())
    return spans


def _weeks_and_days(first_day: date | None, end_day: date | None) -> list[Span]:
    """The whole days from `first_day` and before `end_day` (None where the period has no
    bound) as the rollups count them: the whole weeks among them from the weekly rollup, the
    days before and after those from the daily one."""
    first_week = None if first_day is None else week_of(first_day + timedelta(days=6))
    end_week = None if end_day is None else week_of(end_day)
    if first_week is not None and end_week is not None and first_week >= end_week:
        return [Span(tasks_by_created_day, "created_on", first_day, end_day)]
    spans = [Span(tasks_by_created_week, "created_week", first_week, end_week)]
    if first_day != first_week:
        spans.append(Span(tasks_by_created_day, "created_on", first_day, first_week))
    if end_day != end_week:
        spans.append(Span(tasks_by_created_day, "created_on", end_week, end_day))
    return spans


async def _add_spans(
    conn: AsyncConnection,
    buckets: Buckets,
    fold: Fold,
    spans: list[Span],
    tenant_id: str,
    owner_id: str | None,
) -> None:
    """The buckets the spans count for the tenant (or one owner), summed by the database in
    one statement, with what the runner has not applied to the rollups yet."""
    shape = tuple(
        (span.table.name, span.column, span.since is not None, span.before is not None)
        for span in spans
    )
    bounds: dict[str, date | datetime | None] = {}
    for number, span in enumerate(spans):
        bounds[f"since_{number}"], bounds[f"before_{number}"] = span.since, span.before
    statement = _span_sums(shape, owner_id is not None)
    for owner, status, priority, tasks, ms in await statement.fetch(
        conn, tenant_id=tenant_id, owner_id=owner_id, **bounds
    ):
        buckets.add(owner, status, priority, tasks, ms)
    for span in spans:
        if span.table is task_view:
            continue
        for row in _pending_rows(fold, span.table):
            if owner_id is not None and row["owner_id"] != owner_id:
                continue
            day = row.get(span.column)
            if (span.since is not None and day < span.since) or (
                span.before is not None and day >= span.before
            ):
                continue
            buckets.add(
                row["owner_id"], row["status"], row["priority"], row["tasks"], row["completion_ms"]
            )


@functools.cache
def _span_sums(shape: tuple[tuple[str, str, bool, bool], ...], for_owner: bool) -> Compiled:
    """Tasks and completion time by (owner, status, priority) over spans of this shape: each
    span's rows, from its table, one after the other, summed together. One statement, so that
    the worker decodes each bucket once rather than once per span."""
    counted = []
    for number, (table_name, column, since, before) in enumerate(shape):
        rows = _view_rows() if table_name == task_view.name else _rollup_rows(table_name)
        table = task_view if table_name == task_view.name else ROLLUP_TABLES[table_name]
        counted.append(
            _kept_to(
                rows,
                table,
                for_owner,
                column,
                since=f"since_{number}" if since else None,
                before=f"before_{number}" if before else None,
            )
        )
    spans = sa.union_all(*counted).subquery() if len(counted) > 1 else counted[0].subquery()
    c = spans.c
    query = sa.select(
        c.owner_id, c.status, c.priority, _bigint_sum(c.tasks), _bigint_sum(c.completion_ms)
    )
    return Compiled.of(query.group_by(c.owner_id, c.status, c.priority))


def _rollup_rows(table_name: str) -> sa.Select[Any]:
    c = ROLLUP_TABLES[table_name].c
    return sa.select(c.owner_id, c.status, c.priority, c.tasks, c.completion_ms)


def _view_rows() -> sa.Select[Any]:
    """The task view's rows as a rollup's: each task one, with its completion time in
    milliseconds if completed."""
    v = task_view.c
    ms = sa.func.round(sa.func.extract("epoch", v.completed_at - v.created_at) * 1000)
    return sa.select(
        v.owner_id,
        v.status,
        v.priority,
        sa.literal(1, sa.BigInteger).label("tasks"),
        sa.cast(sa.case((v.status == Status.COMPLETED, ms), else_=0), sa.BigInteger).label(
            "completion_ms"
        ),
    )


def _bigint_sum(column: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """The sum of a bigint column as a bigint: PostgreSQL sums bigints into numeric, which
    the driver decodes into a Decimal, a thousand of them a request."""
    return sa.cast(sa.func.sum(column), sa.BigInteger)


async def open_and_due(
    conn: AsyncConnection, fold: Fold, tenant_id: str, now: datetime, owner_id: str | None
) -> tuple[int, int]:
    """(overdue, due today): open tasks due before now, and open tasks due within today (UTC).
    The days before today are summed from their rollup; today is counted on the task view, an
    index range of one day whatever the tenant's size."""
    today = _start_of_day(now)
    before_today = await _tasks_by_day(
        conn, fold, open_tasks_by_due_day.c.due_on, tenant_id, owner_id, before=today.date()
    )

    [(overdue_today, due_within_today)] = await _due_today(owner_id is not None).fetch(
        conn,
        tenant_id=tenant_id,
        owner_id=owner_id,
        now=now,
        today=today,
        tomorrow=today + timedelta(days=1),
    )
    return before_today + overdue_today, due_within_today


@functools.cache
def _due_today(for_owner: bool) -> Compiled:
    v = task_view.c
    counts = sa.select(sa.func.count().filter(v.due_date < value("now")), sa.func.count())
    return Compiled.of(
        _kept_to(
            counts.where(v.status.not_in(CLOSED_STATUSES)),
            task_view,
            for_owner,
            "due_date",
            since="today",
            before="tomorrow",
        )
    )


async def _tasks_by_day(
    conn: AsyncConnection,
    fold: Fold,
    day: sa.Column[date],
    tenant_id: str,
    owner_id: str | None,
    *,
    since: date | None = None,
    before: date | None = None,
) -> int:
    """The tasks a daily rollup counts for the tenant (or one owner) on the days from `since`
    and before `before`, with what the runner has not applied yet."""
    table = day.table
    statement = _day_sum(
        table.name, day.name, owner_id is not None, since is not None, before is not None
    )
    [(stored,)] = await statement.fetch(
        conn, tenant_id=tenant_id, owner_id=owner_id, since=since, before=before
    )
    return int(stored) + sum(
        row["tasks"]
        for row in _pending_rows(fold, table)
        if owner_id in (None, row["owner_id"])
        and (since is None or row[day.name] >= since)
        and (before is None or row[day.name] < before)
    )


@functools.cache
def _day_sum(
    table_name: str, day_name: str, for_owner: bool, since: bool, before: bool
) -> Compiled:
    # Cached by names: columns compare into SQL expressions, not into booleans.
    table = ROLLUP_TABLES[table_name]
    return Compiled.of(
        _kept_to(
            sa.select(sa.func.coalesce(sa.func.sum(table.c.tasks), 0)),
            table,
            for_owner,
            day_name,
            since="since" if since else None,
            before="before" if before else None,
        )
    )


async def _overdue(
    conn: AsyncConnection,
    fold: Fold,
    tenant_id: str,
    now: datetime,
    owner_id: str | None,
    created_from: datetime | None,
    created_before: datetime | None,
) -> int:
    if created_from is None and created_before is None:
        overdue, _ = await open_and_due(conn, fold, tenant_id, now, owner_id)
        return overdue
    whole_days, part_days = _split_into_days(created_from, created_before)
    # The rollup by creation day knows no owners: an owner's period is counted on the view,
    # through the index of the owner's open tasks by due date.
    if owner_id is not None or whole_days is None:
        return await _overdue_on_view(conn, tenant_id, now, owner_id, created_from, created_before)
    # The whole days from the rollup, up to the tasks due before today; what the day alone
    # cannot tell (due today but already past, created in a part of a day) on the view.
    first_whole, end_whole = whole_days
    today = _start_of_day(now)
    overdue = await _overdue_by_created_day(conn, fold, tenant_id, today, first_whole, end_whole)
    [(due_earlier_today,)] = await _due_earlier_today(
        first_whole is not None, end_whole is not None
    ).fetch(
        conn,
        tenant_id=tenant_id,
        now=now,
        today=today,
        created_from=first_whole,
        created_before=end_whole,
    )
    overdue += int(due_earlier_today)
    for start, end in part_days:
        overdue += await _overdue_on_view(conn, tenant_id, now, None, start, end)
    return overdue


async def _overdue_on_view(
    conn: AsyncConnection,
    tenant_id: str,
    now: datetime,
    owner_id: str | None,
    created_from: datetime | None,
    created_before: datetime | None,
) -> int:
    statement = period_overdue(
        owner_id is not None, created_from is not None, created_before is not None
    )
    [(overdue,)] = await statement.fetch(
        conn,
        tenant_id=tenant_id,
        owner_id=owner_id,
        now=now,
        created_from=created_from,
        created_before=created_before,
    )
    return int(overdue)


@functools.cache
def period_overdue(for_owner: bool, created_from: bool, created_before: bool) -> Compiled:
    v = task_view.c
    overdue = sa.select(sa.func.count()).where(
        v.status.not_in(CLOSED_STATUSES), v.due_date < value("now")
    )
    return Compiled.of(
        _kept_to(
            overdue,
            task_view,
            for_owner,
            "created_at",
            since="created_from" if created_from else None,
            before="created_before" if created_before else None,
        )
    )


async def _overdue_by_created_day(
    conn: AsyncConnection,
    fold: Fold,
    tenant_id: str,
    today: datetime,
    first_day: datetime | None,
    end_day: datetime | None,
) -> int:
    """Open tasks created on the days from `first_day` and before `end_day`, due before
    today, with what the runner has not applied yet."""
    since = first_day and first_day.date()
    before = end_day and end_day.date()
    [(stored,)] = await _created_day_overdue_sum(since is not None, before is not None).fetch(
        conn, tenant_id=tenant_id, today=today.date(), since=since, before=before
    )
    return int(stored) + sum(
        row["tasks"]
        for row in _pending_rows(fold, open_tasks_by_created_day)
        if row["due_on"] < today.date()
        and (since is None or row["created_on"] >= since)
        and (before is None or row["created_on"] < before)
    )


@functools.cache
def _created_day_overdue_sum(since: bool, before: bool) -> Compiled:
    c = open_tasks_by_created_day.c
    query = sa.select(sa.func.coalesce(sa.func.sum(c.tasks), 0)).where(c.due_on < value("today"))
    return Compiled.of(
        _kept_to(
            query,
            open_tasks_by_created_day,
            False,
            "created_on",
            since="since" if since else None,
            before="before" if before else None,
        )
    )


@functools.cache
def _due_earlier_today(created_from: bool, created_before: bool) -> Compiled:
    v = task_view.c
    due_earlier_today = sa.select(sa.func.count()).where(
        v.status.not_in(CLOSED_STATUSES),
        v.due_date >= value("today"),
        v.due_date < value("now"),
    )
    return Compiled.of(
        _kept_to(
            due_earlier_today,
            task_view,
            False,
            "created_at",
            since="created_from" if created_from else None,
            before="created_before" if created_before else None,
        )
    )


async def _owner_names(conn: AsyncConnection, tenant_id: str, fold: Fold) -> dict[str, str | None]:
    rows = await _OWNER_NAMES.fetch(conn, tenant_id=tenant_id)
    names: dict[str, str | None] = {owner: name for owner, name in rows}
    names.update({owner: name for (_, owner), (_, name) in fold.names.items() if name is not None})
    return names


_OWNER_NAMES = Compiled.of(
    sa.select(owner_names.c.owner_id, owner_names.c.owner_name).where(
        owner_names.c.tenant_id == value("tenant_id")
    )
)
