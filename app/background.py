"""Work that runs beside the API: the projection runners and the auto-complete sweep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from app import auto_complete
from app.cells import Cells
from app.database import Database
from app.relay import Publisher, Relay, StreamAddress
from projections import runner
from projections.registry import FOLLOWED

log = logging.getLogger("tasks_api.background")

# The connections a cell's background work holds through its engine: each runner's listening
# session and its batch's, and the auto-complete sweep's.
ENGINE_CONNECTIONS = 2 * len(FOLLOWED) + 1


async def run_background(
    engine: AsyncEngine, db: Database, stop: asyncio.Event, publisher: Publisher | None = None
) -> None:
    """Until `stop` is set; each runner stops at a batch boundary. The runners work through
    `engine`, the sweep's commands through `db` as a client's do. With a publisher, the
    relay publishes the log to it as a runner too."""
    relay = [] if publisher is None else [runner.run(engine, Relay(publisher), stop)]
    await asyncio.gather(
        *(runner.run(engine, follower, stop) for follower in FOLLOWED),
        *relay,
        auto_complete.sweep(db, stop),
    )


async def run_on_every_cell(
    cells: Cells, stop: asyncio.Event, stream: StreamAddress | None = None
) -> None:
    """The background work of every cell, each cell's apart: one that is down holds back
    none of the others. With a stream, every cell's relay publishes to it, on one
    connection."""
    publisher = None if stream is None else Publisher(stream)
    try:
        await asyncio.gather(
            *(run_background(cell.engine, cell.db, stop, publisher) for cell in cells)
        )
    finally:
        if publisher is not None:
            await publisher.close()


@asynccontextmanager
async def running_in_background(
    cells: Cells, stop_within: float, stream: StreamAddress | None = None
) -> AsyncIterator[None]:
    """The background work of every cell, for as long as the block runs. On leaving, each
    runner finishes the batch it is applying and stops; work still busy after `stop_within`
    seconds is cancelled, and the transaction it had open rolls back whole."""
    stop = asyncio.Event()
    work = asyncio.create_task(run_on_every_cell(cells, stop, stream))
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(work, stop_within)
        except TimeoutError:
            log.warning("background work cancelled: still busy %s s after the stop", stop_within)
