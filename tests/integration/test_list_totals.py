"""A list's total is exact however it is counted: from the rollups, with the events the
runner has not applied yet folded in, or on the task view when the rollups cannot say (other
criteria) or are too far behind."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import clock
from app.database import Database
from domain.task import CLOSED_STATUSES
from projections import figures
from projections.queries import PageRequest, TaskFilter, list_tasks
from store.tenant import tenant_transaction
from tests.conftest import new_tenant
from tests.integration.projection_support import apply_rollups
from tests.integration.test_period_figures import Created, first_monday, write_tasks

pytestmark = pytest.mark.asyncio

CRITERIA: list[dict[str, Any]] = [
    {},
    {"owner_id": "u-1"},
    {"statuses": ["completed"]},
    {"statuses": ["not_started", "in_progress"], "priorities": ["high"]},
    {"owner_id": "u-2", "priorities": ["low", "medium"]},
    {"overdue": True},
    {"owner_id": "u-0", "overdue": True},
    # Not in the rollups: counted on the view.
    {"overdue": True, "priorities": ["high"]},
]


def matching(tasks: list[Created], criteria: dict[str, Any], now: Any) -> int:
    """The tasks the criteria keep, one at a time."""
    return sum(
        criteria.get("owner_id") in (None, task.owner_id)
        and task.status in criteria.get("statuses", [task.status])
        and task.priority in criteria.get("priorities", [task.priority])
        and (
            not criteria.get("overdue")
            or (task.due_date < now and task.status not in CLOSED_STATUSES)
        )
        for task in tasks
    )


async def totals(db: Database, tenant_id: str, now: Any) -> list[int]:
    async with tenant_transaction(db.pool, tenant_id, "REPEATABLE READ") as conn:
        return [
            (await list_tasks(conn, TaskFilter(tenant_id, now, **criteria), PageRequest(limit=1)))[
                1
            ]
            for criteria in CRITERIA
        ]


async def test_a_lists_total_is_exact_before_the_runner_applies_its_events_and_after(
    engine: AsyncEngine, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id = (await new_tenant(engine, "list-totals")).tenant_id
    tasks = await write_tasks(engine, tenant_id, first_monday())
    now = clock.now()
    expected = [matching(tasks, criteria, now) for criteria in CRITERIA]
    assert all(expected) and len(set(expected)) > 4

    assert await totals(db, tenant_id, now) == expected
    # Too far behind to fold in: every total is counted on the view.
    monkeypatch.setattr(figures, "PENDING_EVENTS_MAX", 0)
    assert await totals(db, tenant_id, now) == expected
    monkeypatch.undo()

    await apply_rollups(engine)
    assert await totals(db, tenant_id, now) == expected
