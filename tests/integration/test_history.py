"""The history tables count what happened, per UTC day, owner and queue, and only ever grow;
the present-state rollups count live tasks as they stand. A task without an owner is NULL in
every table an analyst joins."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import clock, service
from app.database import Database
from domain.commands import DeleteTask
from projections.rebuild import rebuild
from projections.registry import ROLLUPS
from projections.tables import (
    completions_by_day,
    completions_history,
    open_tasks_by_due_day,
    reassignments_history,
    rollup_tasks,
    snoozes_history,
    task_totals,
    task_view,
    tasks_by_created_day,
)
from projections.verify import verify
from tests.integration.projection_support import apply_rollups, create, new_caller
from tests.unit.tasks import complete, patch, reassign, snooze

pytestmark = pytest.mark.asyncio


def today() -> date:
    return clock.now().astimezone(UTC).date()


async def rows_of(engine: AsyncEngine, table: sa.Table, tenant_id: str) -> list[tuple[Any, ...]]:
    """The tenant's rows of a table, without the tenant, in a stable order."""
    columns = [column for column in table.c if column.name != "tenant_id"]
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(*columns).where(table.c.tenant_id == tenant_id))
    return sorted((tuple(row) for row in rows), key=repr)


async def test_the_history_counts_every_completion_snooze_and_reassignment_and_never_shrinks(
    db: Database,
    engine: AsyncEngine,
) -> None:
    caller = await new_caller(engine, "history")
    tenant_id = caller.principal.tenant_id
    due = clock.now() + timedelta(days=2)
    created = await create(db, caller, ownerId="agent_a", queueId="q-1", dueDate=due.isoformat())
    assert created.task is not None
    task_id = created.task.id
    await service.run(db, caller, task_id, snooze(due + timedelta(days=1)))
    await service.run(db, caller, task_id, snooze(due + timedelta(days=2)))
    await service.run(db, caller, task_id, reassign("agent_b"))
    await service.run(db, caller, task_id, complete())
    await service.run(db, caller, task_id, patch({"status": "in_progress"}))
    await service.run(db, caller, task_id, patch({"status": "completed"}))
    await apply_rollups(engine)
    day = today()
    expected = {
        completions_history: [
            (day, "agent_b", "q-1", "resolved", 2),
        ],
        snoozes_history: [(day, "agent_a", "q-1", 2)],
        reassignments_history: [(day, "agent_a", "agent_b", "q-1", 1)],
    }
    for table, rows in expected.items():
        assert await rows_of(engine, table, tenant_id) == rows, table.name

    await service.run(db, caller, task_id, DeleteTask())
    await apply_rollups(engine)

    for table, rows in expected.items():
        assert await rows_of(engine, table, tenant_id) == rows, table.name
    # The present state has forgotten the task; the history has not.
    assert await rows_of(engine, completions_by_day, tenant_id) == []
    assert await rows_of(engine, task_totals, tenant_id) == []
    assert await verify(engine, ROLLUPS) == []


async def test_a_rebuilt_history_equals_the_one_the_runner_wrote(
    db: Database, engine: AsyncEngine
) -> None:
    caller = await new_caller(engine, "history-rebuilt")
    tenant_id = caller.principal.tenant_id
    for number in range(3):
        created = await create(db, caller, ownerId=f"agent_{number % 2}")
        assert created.task is not None
        await service.run(db, caller, created.task.id, reassign(f"agent_{number + 5}"))
        await service.run(db, caller, created.task.id, complete({"outcome": "escalated"}))
    await apply_rollups(engine)
    tables = (completions_history, snoozes_history, reassignments_history)
    applied = [await rows_of(engine, table, tenant_id) for table in tables]

    await rebuild(engine, ROLLUPS, lambda _: None)

    assert [await rows_of(engine, table, tenant_id) for table in tables] == applied
    assert await verify(engine, ROLLUPS) == []


async def test_a_task_without_an_owner_is_null_in_every_table_an_analyst_joins(
    db: Database,
    engine: AsyncEngine,
) -> None:
    caller = await new_caller(engine, "unowned")
    tenant_id = caller.principal.tenant_id
    due = (clock.now() + timedelta(days=3)).isoformat()
    open_task = await create(db, caller, dueDate=due)
    done = await create(db, caller, queueId="q-9")
    handed = await create(db, caller)
    assert open_task.task and done.task and handed.task
    await service.run(db, caller, open_task.task.id, snooze(clock.now() + timedelta(days=4)))
    await service.run(db, caller, done.task.id, complete())
    await service.run(db, caller, handed.task.id, reassign("agent_x"))
    await apply_rollups(engine)

    owners: dict[str, set[Any]] = {}
    for table in (
        task_view,
        rollup_tasks,
        task_totals,
        tasks_by_created_day,
        completions_by_day,
        open_tasks_by_due_day,
        completions_history,
        snoozes_history,
    ):
        async with engine.connect() as conn:
            found = await conn.scalars(
                sa.select(table.c.owner_id).where(table.c.tenant_id == tenant_id).distinct()
            )
            owners[table.name] = set(found)
    async with engine.connect() as conn:
        handed_over = (
            await conn.execute(
                sa.select(
                    reassignments_history.c.from_owner_id, reassignments_history.c.to_owner_id
                ).where(reassignments_history.c.tenant_id == tenant_id)
            )
        ).all()

    assert owners == {
        "task_view": {None, "agent_x"},
        "rollup_tasks": {None, "agent_x"},
        "task_totals": {None, "agent_x"},
        "tasks_by_created_day": {None, "agent_x"},
        "completions_by_day": {None},
        "open_tasks_by_due_day": {None},
        "completions_history": {None},
        "snoozes_history": {None},
    }
    assert handed_over == [(None, "agent_x")]


async def test_the_unowned_tasks_join_the_task_view_to_the_rollups(
    db: Database, engine: AsyncEngine
) -> None:
    caller = await new_caller(engine, "unowned-join")
    tenant_id = caller.principal.tenant_id
    for _ in range(2):
        await create(db, caller)
    await create(db, caller, ownerId="agent_y")
    await apply_rollups(engine)
    v, t = task_view.c, task_totals.c
    live = (
        sa.select(v.owner_id, sa.func.count().label("tasks"))
        .where(v.tenant_id == tenant_id)
        .group_by(v.owner_id)
        .subquery()
    )
    joined = (
        sa.select(live.c.owner_id, live.c.tasks, sa.func.sum(t.tasks))
        .join_from(live, task_totals, t.owner_id.is_not_distinct_from(live.c.owner_id))
        .where(t.tenant_id == tenant_id)
        .group_by(live.c.owner_id, live.c.tasks)
    )

    async with engine.connect() as conn:
        rows = sorted((await conn.execute(joined)).all(), key=repr)

    assert rows == [("agent_y", 1, 1), (None, 2, 2)]
