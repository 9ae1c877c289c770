"""Reads of the task view: lists with filters and sorting, statistics and analytics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.task import CLOSED_STATUSES, Priority, Status, Task
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
AGENT_PERFORMANCE_MAX = 5000


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
            pattern = "%" + _escape_like(self.search) + "%"
            conditions.append(
                sa.or_(
                    c.title.ilike(pattern, escape="\\"), c.description.ilike(pattern, escape="\\")
                )
            )
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
    rows = await conn.execute(
        sa.select(*TASK_COLUMNS)
        .where(*conditions)
        .order_by(direction(sort_column).nulls_last(), direction(task_view.c.task_id))
        .limit(page.limit)
        .offset((page.page - 1) * page.limit)
    )
    total = await conn.scalar(sa.select(sa.func.count()).select_from(task_view).where(*conditions))
    return [task_from_row(row) for row in rows], total or 0


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.count().filter(condition)


async def task_stats(
    conn: AsyncConnection, tenant_id: str, now: datetime, owner_id: str | None = None
) -> dict[str, int]:
    """total, overdue, dueToday (open, due within today UTC), completedThisWeek (since
    Monday 00:00 UTC) and inProgress."""
    c = task_view.c
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    query = sa.select(
        sa.func.count().label("total"),
        _count(overdue_at(now)).label("overdue"),
        _count(
            sa.and_(
                c.due_date >= today,
                c.due_date < today + timedelta(days=1),
                c.status.not_in(CLOSED_STATUSES),
            )
        ).label("dueToday"),
        _count(sa.and_(c.status == Status.COMPLETED, c.completed_at >= monday)).label(
            "completedThisWeek"
        ),
        _count(c.status == Status.IN_PROGRESS).label("inProgress"),
    ).where(c.tenant_id == tenant_id)
    if owner_id is not None:
        query = query.where(c.owner_id == owner_id)
    return dict((await conn.execute(query)).one()._mapping)


async def task_analytics(
    conn: AsyncConnection,
    tenant_id: str,
    now: datetime,
    created_from: datetime | None,
    created_before: datetime | None,
    owner_id: str | None,
) -> dict[str, Any]:
    """Totals, distributions and per-agent performance of the tasks created in a period."""
    c = task_view.c
    conditions = [c.tenant_id == tenant_id]
    if created_from is not None:
        conditions.append(c.created_at >= created_from)
    if created_before is not None:
        conditions.append(c.created_at < created_before)
    if owner_id is not None:
        conditions.append(c.owner_id == owner_id)
    completion_hours = sa.func.extract("epoch", c.completed_at - c.created_at) / 3600
    totals = (
        await conn.execute(
            sa.select(
                sa.func.count().label("total"),
                _count(c.status == Status.COMPLETED).label("completed"),
                _count(overdue_at(now)).label("overdue"),
                sa.func.avg(completion_hours).filter(c.status == Status.COMPLETED).label("hours"),
            ).where(*conditions)
        )
    ).one()
    statuses = await _counts_by(conn, c.status, conditions)
    priorities = await _counts_by(conn, c.priority, conditions)
    latest_name = sa.func.array_agg(aggregate_order_by(c.owner_name, c.updated_at.desc()))[1]
    agents = await conn.execute(
        sa.select(
            c.owner_id,
            latest_name,
            sa.func.count().label("total"),
            _count(c.status == Status.COMPLETED).label("completed"),
        )
        .where(*conditions, c.owner_id.is_not(None))
        .group_by(c.owner_id)
        .order_by(sa.desc("total"), c.owner_id)
        .limit(AGENT_PERFORMANCE_MAX)
    )
    return {
        "total_tasks": totals.total,
        "completed_tasks": totals.completed,
        "overdue_tasks": totals.overdue,
        "avg_completion_time": None if totals.hours is None else round(float(totals.hours), 2),
        "status_distribution": {status: statuses.get(status, 0) for status in Status},
        "priority_distribution": {level: priorities.get(level, 0) for level in Priority},
        "agent_performance": [
            {
                "agent_id": row[0],
                "agent_name": row[1],
                "total": row.total,
                "completed": row.completed,
            }
            for row in agents
        ],
    }


async def _counts_by(
    conn: AsyncConnection, column: sa.Column[str], conditions: list[sa.ColumnElement[bool]]
) -> dict[str, int]:
    query = sa.select(column, sa.func.count()).where(*conditions).group_by(column)
    return {value: count for value, count in await conn.execute(query)}
