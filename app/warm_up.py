"""A worker's connections opened, and their first command and read made, before it takes
requests.

PostgreSQL compiles a function and plans each of its statements once per session: on a new
connection the first command cost 13-22 ms where the next cost 2.4, and a worker that met its
first load with its pool unopened answered for half a second at a p99 of 200 ms and more,
every connection paying at once. Each connection of the pool now makes a task's command and
its read at start, in a transaction rolled back: nothing of it stays, and a database that
does not answer, or takes no writes, only leaves the pool as cold as it was."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from app import clock, ids
from app.store import event_log
from domain import decide as rules
from domain.commands import CreateTask
from domain.evolve import fold
from projections import task_view
from store.pool import connection

log = logging.getLogger("tasks_api.warm_up")

WARM_UP_SECONDS = 5.0
# No tenant's: ids are 24 hex characters, and this one is never issued.
NO_TENANT = "0" * 24


async def warm_up(pool: asyncpg.Pool, size: int) -> None:
    """Open `size` connections of `pool` and make each one's first calls, within
    WARM_UP_SECONDS; what fails or is late is left cold."""
    try:
        async with asyncio.timeout(WARM_UP_SECONDS):
            await asyncio.gather(*(_warm_one(pool) for _ in range(size)))
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.info("connections left cold: %s", error)


async def _warm_one(pool: asyncpg.Pool) -> None:
    task_id, now = ids.new_id(), clock.now()
    events = rules.create(CreateTask(title="warm-up"), task_id, now)
    task = fold((event, now) for event in events)
    async with connection(pool) as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await task_view.load(conn, NO_TENANT, task_id)
            await event_log.append(conn, NO_TENANT, task_id, 0, events, {}, now, task)
        finally:
            await transaction.rollback()
