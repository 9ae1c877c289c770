"""Reads of the task view: lists with filters and sorting.

A list's statements are compiled once for each shape (the criteria it filters on, its sort)
and run on the driver's connection, its rows named as the task's fields are on the wire:
SQLAlchemy's work per statement and per row was most of a list's time in the worker."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import ColumnClause

from domain.task import CLOSED_STATUSES, Task
from projections import figures
from projections.driver import TEXTS, Compiled, value
from projections.tables import task_search, task_view
from projections.task_view import WIRE_COLUMNS, task_from_row

SORT_COLUMNS = {
    "dueDate": task_view.c.due_date,
    "created_at": task_view.c.created_at,
    "updated_at": task_view.c.updated_at,
    "priority": task_view.c.priority_rank,
    "status": task_view.c.status,
    "title": task_view.c.title,
}
# Criteria that keep the tasks whose column equals the criterion's value.
EQUAL_TO = (
    "owner_id",
    "queue_id",
    "related_customer_id",
    "linked_entity_type",
    "linked_entity_id",
    "linked_pipeline_id",
)
# Lists whose total the rollups hold, by the criteria they filter on: an owner's tasks, their
# statuses and priorities in the totals; the overdue ones (an owner's) by the day they fall
# due. Read there, a total is a sum of a thousand rows at most, not a count of every match on
# the view (61,000 overdue tasks of 100,000: 9 ms).
IN_TOTALS = frozenset({"tenant_id", "owner_id", "statuses", "priorities"})
IN_OVERDUE = frozenset({"tenant_id", "owner_id", "overdue_at"})
# How many shapes of list statement are kept compiled.
SHAPES_KEPT = 512


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which of a tenant's tasks a list shows; unset criteria do not filter."""

    tenant_id: str
    now: datetime
    owner_id: str | None = None
    queue_id: str | None = None
    statuses: list[str] = field(default_factory=list)
    priorities: list[str] = field(default_factory=list)
    related_customer_id: str | None = None
    linked_entity_type: str | None = None
    linked_entity_id: str | None = None
    linked_pipeline_id: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool = False
    search: str | None = None

    def values(self) -> dict[str, Any]:
        """The criteria that filter, by name, with the values the statements take."""
        values: dict[str, Any] = {"tenant_id": self.tenant_id}
        values |= {name: getattr(self, name) for name in EQUAL_TO if getattr(self, name)}
        if self.statuses:
            values["statuses"] = self.statuses
        if self.priorities:
            values["priorities"] = self.priorities
        if self.due_before is not None:
            values["due_before"] = self.due_before
        if self.due_after is not None:
            values["due_after"] = self.due_after
        if self.overdue:
            values["overdue_at"] = self.now
        if self.search:
            values["search"] = "%" + _escape_like(self.search) + "%"
        return values


def _condition(name: str, c: Any = task_view.c) -> sa.ColumnElement[bool]:
    """The condition of a criterion on the columns `c` (the task view's, or those of a
    search's matches), its value a parameter of the same name."""
    if name in EQUAL_TO:
        return c[name] == value(name)
    match name:
        case "tenant_id":
            return c.tenant_id == value(name)
        case "statuses":
            return c.status == sa.func.any(value(name, TEXTS))
        case "priorities":
            return c.priority == sa.func.any(value(name, TEXTS))
        case "due_before":
            return c.due_date < value(name)
        case "due_after":
            return c.due_date > value(name)
        case "overdue_at":
            return overdue_at(value(name), c)
    raise ValueError(f"unknown criterion {name}")


def _matches(criteria: tuple[str, ...], sort: str | None = None) -> Any:
    """A search's matches, found by a function of the tables' owner, which can use the
    trigram indexes that row-level security keeps LIKE from (migrations 0009 and 0029); each
    with its id and the columns the criteria test and `sort` sorts on, no more: the function
    holds every match in memory before the statement reads them."""
    tested = _match_conditions(criteria, _ALL_MATCH_COLUMNS)
    used = {
        e.name
        for condition in tested
        for e in visitors.iterate(condition)
        if isinstance(e, ColumnClause)
    }
    if sort is not None:
        used.add(SORT_COLUMNS[sort].name)
    names = ["task_id", *(name for name in MATCH_COLUMNS if name in used)]
    wanted = sa.bindparam("wanted", names, type_=TEXTS)
    columns = (sa.column(name, task_search.c[name].type) for name in names)
    return (
        sa.func.tasks_matching(value("search"), wanted)
        .table_valued(*columns)
        .render_derived(with_types=True)
    )


# The columns `tasks_matching` can return with each match: what a list filters and sorts on.
MATCH_COLUMNS = tuple(
    dict.fromkeys(
        (*(column.name for column in SORT_COLUMNS.values()), "status", "priority", *EQUAL_TO)
    )
)
_ALL_MATCH_COLUMNS = sa.table("matches", *(sa.column(name) for name in MATCH_COLUMNS))


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int = 1
    limit: int = 20
    sort: str = "dueDate"
    descending: bool = False


def overdue_at(
    now: datetime | sa.BindParameter[Any], c: Any = task_view.c
) -> sa.ColumnElement[bool]:
    """Due before now and neither completed nor deferred."""
    return sa.and_(c.due_date < now, c.status.not_in(CLOSED_STATUSES))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@functools.lru_cache(maxsize=SHAPES_KEPT)
def _page(criteria: tuple[str, ...], sort: str, descending: bool) -> Compiled:
    """One page of the tasks matching the criteria."""
    direction = sa.desc if descending else sa.asc

    def order(c: Any) -> tuple[Any, ...]:
        return (direction(c[SORT_COLUMNS[sort].name]).nulls_last(), direction(c.task_id))

    if "search" not in criteria:
        return Compiled.of(
            sa.select(*WIRE_COLUMNS)
            .where(*(_condition(name) for name in criteria))
            .order_by(*order(task_view.c))
            .limit(value("limit"))
            .offset(value("offset"))
        )
    # A search finds all its matches before the page is cut from them: it counts them in the
    # same statement, over the columns the function returns, then joins the page's rows back:
    # a window over every match's whole row spilled to disk.
    matches = _matches(criteria, sort)
    page = (
        sa.select(matches.c.task_id, sa.func.count().over().label("total"))
        .where(*_match_conditions(criteria, matches))
        .order_by(*order(matches.c))
        .limit(value("limit"))
        .offset(value("offset"))
        .subquery()
    )
    joined = sa.and_(
        task_view.c.tenant_id == value("tenant_id"), task_view.c.task_id == page.c.task_id
    )
    return Compiled.of(
        sa.select(*WIRE_COLUMNS, page.c.total)
        .join_from(task_view, page, joined)
        .order_by(*order(task_view.c))
    )


def _match_conditions(criteria: tuple[str, ...], matches: Any) -> list[sa.ColumnElement[bool]]:
    """The criteria but the search on a search's matches, which are the tenant's only."""
    return [_condition(name, matches.c) for name in criteria if name not in ("tenant_id", "search")]


@functools.lru_cache(maxsize=SHAPES_KEPT)
def _count(criteria: tuple[str, ...]) -> Compiled:
    if "search" not in criteria:
        return Compiled.of(
            sa.select(sa.func.count()).select_from(task_view).where(*map(_condition, criteria))
        )
    matches = _matches(criteria)
    return Compiled.of(
        sa.select(sa.func.count()).select_from(matches).where(*_match_conditions(criteria, matches))
    )


async def list_tasks(
    conn: AsyncConnection, task_filter: TaskFilter, page: PageRequest
) -> tuple[list[Task], int]:
    """One page of the tasks matching the filter, and how many match in all.

    Tasks without a due date come last; ties fall back to the id so pages never overlap."""
    values = task_filter.values()
    criteria = tuple(values)
    rows = await _page(criteria, page.sort, page.descending).fetch(
        conn, **values, limit=page.limit, offset=(page.page - 1) * page.limit
    )
    tasks = [task_from_row(row) for row in rows]
    if rows and "search" in values:
        return tasks, rows[0]["total"]
    # Past a search's last page no row carries its count: it is counted on its own.
    return tasks, await _total(conn, values)


async def _total(conn: AsyncConnection, values: dict[str, Any]) -> int:
    """How many tasks match: from the rollups where they hold it and are not too far behind
    the log, else counted on the view."""
    if values.keys() <= IN_TOTALS or values.keys() <= IN_OVERDUE:
        with contextlib.suppress(figures.RollupsBehind):
            return await _total_in_rollups(conn, values)
    [(total,)] = await _count(tuple(values)).fetch(conn, **values)
    return int(total)


async def _total_in_rollups(conn: AsyncConnection, values: dict[str, Any]) -> int:
    """A total the rollups hold, with what they have not applied yet: a list's statements
    share one snapshot (REPEATABLE READ), so the two add up to the view."""
    tenant_id, owner_id = values["tenant_id"], values.get("owner_id")
    fold = await figures.pending(conn, tenant_id)
    if "overdue_at" in values:
        overdue, _ = await figures.open_and_due(
            conn, fold, tenant_id, values["overdue_at"], owner_id
        )
        return overdue
    return await figures.tasks_in_totals(
        conn, fold, tenant_id, owner_id, values.get("statuses", ()), values.get("priorities", ())
    )
