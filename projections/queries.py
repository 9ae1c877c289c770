"""Reads of the task view: lists with filters and sorting."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.task import CLOSED_STATUSES, Task
from projections.tables import task_view
from projections.task_view import TASK_COLUMNS, task_from_row

SORT_COLUMNS = {
    "dueDate": task_view.c.due_date,
    "created_at": task_view.c.created_at,
    "updated_at": task_view.c.updated_at,
    "priority": task_view.c.priority_rank,
    "status": task_view.c.status,
    "title": task_view.c.title,
}


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

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        c = task_view.c
        equal_to = {
            c.owner_id: self.owner_id,
            c.queue_id: self.queue_id,
            c.related_customer_id: self.related_customer_id,
            c.linked_entity_type: self.linked_entity_type,
            c.linked_entity_id: self.linked_entity_id,
            c.linked_pipeline_id: self.linked_pipeline_id,
        }
        conditions = [c.tenant_id == self.tenant_id]
        conditions += [column == value for column, value in equal_to.items() if value is not None]
        if self.statuses:
            conditions.append(c.status.in_(self.statuses))
        if self.priorities:
            conditions.append(c.priority.in_(self.priorities))
        if self.due_before is not None:
            conditions.append(c.due_date < self.due_before)
        if self.due_after is not None:
            conditions.append(c.due_date > self.due_after)
        if self.overdue:
            conditions.append(overdue_at(self.now))
        if self.search:
            # Found by a function of the tables' owner, which can use the trigram indexes
            # that row-level security keeps ILIKE from (migration 0009).
            pattern = "%" + _escape_like(self.search) + "%"
            matching = sa.func.task_ids_matching(pattern).table_valued("task_id")
            conditions.append(c.task_id.in_(sa.select(matching.c.task_id)))
        return conditions


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int = 1
    limit: int = 20
    sort: str = "dueDate"
    descending: bool = False


def overdue_at(now: datetime) -> sa.ColumnElement[bool]:
    """Due before now and neither completed nor deferred."""
    c = task_view.c
    return sa.and_(c.due_date < now, c.status.not_in(CLOSED_STATUSES))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_tasks(
    conn: AsyncConnection, task_filter: TaskFilter, page: PageRequest
) -> tuple[list[Task], int]:
    """One page of the tasks matching the filter, and how many match in all.

    Tasks without a due date come last; ties fall back to the id so pages never overlap."""
    conditions = task_filter.conditions()
    sort_column = SORT_COLUMNS[page.sort]
    direction = sa.desc if page.descending else sa.asc
    query = (
        sa.select(*TASK_COLUMNS)
        .where(*conditions)
        .order_by(direction(sort_column).nulls_last(), direction(task_view.c.task_id))
        .limit(page.limit)
        .offset((page.page - 1) * page.limit)
    )
    if task_filter.search:
        # A search finds all its matches before the page is cut from them: counting them in
        # the same statement spares finding them again. Past the last page no row carries
        # the count, and it is counted on its own.
        rows = (await conn.execute(query.add_columns(sa.func.count().over().label("total")))).all()
        if rows:
            return [task_from_row(row) for row in rows], rows[0].total
    else:
        rows = (await conn.execute(query)).all()
    total = await conn.scalar(sa.select(sa.func.count()).select_from(task_view).where(*conditions))
    return [task_from_row(row) for row in rows], total or 0
