"""Work that runs beside the API: the projection runners and the auto-complete sweep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from app import auto_complete
from app.database import Database
from projections import runner
from projections.registry import ASYNCHRONOUS

log = logging.getLogger("tasks_api.background")


async def run_background(engine: AsyncEngine, db: Database, stop: asyncio.Event) -> None:
    """Until `stop` is set; each runner stops at a batch boundary. The runners work through
    `engine`, the sweep's commands through `db` as a client's do."""
    await asyncio.gather(
        *(runner.run(engine, projector, stop) for projector in ASYNCHRONOUS),
        auto_complete.sweep(db, stop),
    )


@asynccontextmanager
async def running_in_background(
    engine: AsyncEngine, db: Database, stop_within: float
) -> AsyncIterator[None]:
    """The background work, for as long as the block runs. On leaving, each runner finishes
    the batch it is applying and stops; work still busy after `stop_within` seconds is
    cancelled, and the transaction it had open rolls back whole."""
    stop = asyncio.Event()
    work = asyncio.create_task(run_background(engine, db, stop))
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(work, stop_within)
        except TimeoutError:
            log.warning("background work cancelled: still busy %s s after the stop", stop_within)
