"""Tasks that complete themselves: an open task whose autoComplete.at has passed is completed
with outcome auto_completed by the actor `system`, through the same command as a client's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import sqlalchemy as sa

from app import clock, service
from app.database import Database
from app.store.event_log import TenantMoving
from app.tenants import Principal
from domain.commands import CompleteTask
from domain.errors import RuleViolation
from domain.task import CLOSED_STATUSES, Outcome
from projections.driver import Compiled, value
from projections.tables import task_view
from store.pool import connection

SYSTEM_ACTOR = "system"
SWEEP_SECONDS = 1.0
BATCH = 200
AUTO_COMPLETION = CompleteTask(outcome=Outcome.AUTO_COMPLETED)

log = logging.getLogger("tasks_api.auto_complete")


_DUE = Compiled.of(
    sa.select(task_view.c.tenant_id, task_view.c.task_id)
    .where(task_view.c.auto_complete_at <= value("now"), task_view.c.status.not_in(CLOSED_STATUSES))
    .order_by(task_view.c.auto_complete_at)
    .limit(BATCH)
)


async def complete_due_tasks(db: Database) -> int:
    """Complete every open task whose time has come; how many were completed."""
    completed = 0
    while True:
        async with connection(db.pool) as conn:
            due = await _DUE.fetch(conn, now=clock.now())
        for tenant_id, task_id in due:
            caller = service.Caller(Principal(tenant_id, SYSTEM_ACTOR), uuid.uuid4().hex)
            # Another sweeper or a client may get there first: then there is nothing to do.
            # A tenant moving away is swept on its new cell.
            with contextlib.suppress(RuleViolation, service.TaskNotFound, TenantMoving):
                await service.run(db, caller, task_id, AUTO_COMPLETION)
                completed += 1
        if len(due) < BATCH:
            return completed


async def sweep(db: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await complete_due_tasks(db)
        except Exception:
            log.exception("auto-complete sweep failed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SWEEP_SECONDS):
                await stop.wait()
