"""Analytics over a period count exactly the tasks created in it, however the period falls on
the rollups' weeks and days: whole weeks, whole days before and after them, part days, open
ends, with and without an owner, before the runner has applied the events and after."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import clock, ids
from app.store import event_log
from domain import decide as rules
from domain.commands import CreateTask
from domain.evolve import evolve
from domain.task import Priority, Status, Task
from projections.driver import driver_connection
from projections.figures import task_analytics
from projections.rollups import week_of
from tests.conftest import new_tenant
from tests.integration.projection_support import apply_rollups
from tests.tenant_connection import tenant_connection
from tests.unit.tasks import complete, decoded

pytestmark = pytest.mark.asyncio

OWNERS = ("u-0", "u-1", "u-2", None)
PRIORITIES = tuple(Priority)
TASKS = 80
# Tasks are created this far apart, so that they fall at every hour of the day and on
# every day of the week.
SPACING = timedelta(hours=13, minutes=7)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Created:
    created_at: datetime
    owner_id: str | None
    priority: str
    status: str
    due_date: datetime


def first_monday() -> datetime:
    """Midnight UTC of the Monday seven weeks back: the tasks end within the last week."""
    today = clock.now().astimezone(UTC).date()
    monday = week_of(today) - timedelta(weeks=7)
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


async def write_tasks(engine: AsyncEngine, tenant_id: str, start: datetime) -> list[Created]:
    """TASKS tasks created in the past, SPACING apart from `start`, every third one completed
    five hours after its creation, as commands would have appended them then."""
    written = []
    for number in range(TASKS):
        created_at = start + number * SPACING
        owner_id, priority = OWNERS[number % 4], PRIORITIES[number % 3]
        due_date = created_at + timedelta(days=(number % 5) * 6)
        body: dict[str, Any] = {"title": f"Call {number}", "priority": priority}
        body["dueDate"] = due_date.isoformat()
        if owner_id is not None:
            body["ownerId"] = owner_id
        task_id = ids.new_id()
        new_events = rules.create(decoded(CreateTask, body), task_id, created_at)
        task = await append(engine, tenant_id, task_id, 0, None, new_events, created_at)
        if number % 3 == 0:
            completed_at = created_at + timedelta(hours=5)
            new_events = rules.decide(complete(), task, completed_at)
            task = await append(engine, tenant_id, task_id, 1, task, new_events, completed_at)
        written.append(Created(created_at, owner_id, priority, task.status, due_date))
    return written


async def append(
    engine: AsyncEngine,
    tenant_id: str,
    task_id: str,
    version: int,
    task: Task | None,
    new_events: list[Any],
    now: datetime,
) -> Task:
    """The task after `new_events`, appended after `version` at `now`."""
    after = task
    for event in new_events:
        after = evolve(after, event, now)
    assert after is not None
    async with engine.begin() as conn:
        await event_log.append(
            await driver_connection(conn), tenant_id, task_id, version, new_events, {}, now, after
        )
    return after


def counted(
    tasks: list[Created],
    now: datetime,
    created_from: datetime | None,
    created_before: datetime | None,
    owner_id: str | None,
) -> dict[str, Any]:
    """The figures, counted one task at a time."""
    kept = [
        task
        for task in tasks
        if (created_from is None or task.created_at >= created_from)
        and (created_before is None or task.created_at < created_before)
        and (owner_id is None or task.owner_id == owner_id)
    ]
    statuses = Counter(task.status for task in kept)
    agents = Counter(task.owner_id for task in kept if task.owner_id is not None)
    done = Counter(
        task.owner_id for task in kept if task.owner_id and task.status == Status.COMPLETED
    )
    return {
        "total_tasks": len(kept),
        "completed_tasks": statuses[Status.COMPLETED],
        "overdue_tasks": sum(
            task.status != Status.COMPLETED and task.due_date < now for task in kept
        ),
        "status_distribution": {status: statuses[status] for status in Status},
        "priority_distribution": {
            level: sum(task.priority == level for task in kept) for level in Priority
        },
        "agents": {agent: (total, done[agent]) for agent, total in agents.items()},
    }


def answered(figures: dict[str, Any]) -> dict[str, Any]:
    """The same figures as task_analytics answers them."""
    kept = {key: figures[key] for key in ("total_tasks", "completed_tasks", "overdue_tasks")}
    return {
        **kept,
        "status_distribution": dict(figures["status_distribution"]),
        "priority_distribution": dict(figures["priority_distribution"]),
        "agents": {
            agent["agent_id"]: (agent["total"], agent["completed"])
            for agent in figures["agent_performance"]
        },
    }


def periods(start: datetime) -> list[tuple[datetime | None, datetime | None]]:
    """Periods over the tasks' seven weeks: starting and ending on Mondays, on other days,
    within days, open at either end, shorter than a week, within one week and across two."""
    odd_time = timedelta(hours=7, minutes=13, seconds=21)
    return [
        (None, None),
        (start, None),
        (start + 9 * DAY, None),
        (start + 9 * DAY + odd_time, None),
        (None, start + 21 * DAY),
        (None, start + 24 * DAY),
        (None, start + 24 * DAY + odd_time),
        (start + 7 * DAY, start + 28 * DAY),
        (start + 2 * DAY, start + 30 * DAY),
        (start + 2 * DAY + odd_time, start + 30 * DAY + odd_time),
        (start + 7 * DAY + odd_time, start + 35 * DAY),
        (start + 8 * DAY, start + 11 * DAY),
        (start + 5 * DAY, start + 9 * DAY),
        (start + 5 * DAY + odd_time, start + 9 * DAY - odd_time),
        (start + DAY, start + 8 * DAY),
        (start + 14 * DAY, start + 21 * DAY),
        (start + 10 * DAY, start + 10 * DAY),
        (start + 10 * DAY + odd_time, start + 10 * DAY + 2 * odd_time),
    ]


async def test_a_periods_figures_are_the_tasks_created_in_it_wherever_it_falls(
    engine: AsyncEngine,
) -> None:
    tenant_id = (await new_tenant(engine, "periods")).tenant_id
    start = first_monday()
    tasks = await write_tasks(engine, tenant_id, start)

    async def compare() -> None:
        now = clock.now()
        async with tenant_connection(engine, tenant_id) as conn:
            for created_from, created_before in periods(start):
                for owner_id in (None, "u-1"):
                    figures = await task_analytics(
                        conn, tenant_id, now, created_from, created_before, owner_id
                    )
                    expected = counted(tasks, now, created_from, created_before, owner_id)
                    assert answered(figures) == expected, (created_from, created_before, owner_id)

    await compare()
    await apply_rollups(engine)
    await compare()
