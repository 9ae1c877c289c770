"""GET /metrics: every metric in the Prometheus text format, for a scraper. No API key, no rate
limit, left out of the API's schema."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from sqlalchemy.exc import SQLAlchemyError

from app import clock, metrics
from app.cells import Cell, Cells
from projections.status import ProjectionStatus, projection_status

# A scrape must still answer when the database does not: the process's own figures matter
# most then. Prometheus waits 10 s for a scrape by default.
PROJECTIONS_TIMEOUT_SECONDS = 2.0

log = logging.getLogger("tasks_api.metrics")


@get("/metrics", include_in_schema=False)
async def scrape(request: Request[Any, Any, State]) -> Response[bytes]:
    statuses = await _projection_status(request)
    body, content_type = metrics.exposition(statuses, request.headers.get("accept", ""))
    # As a header: given as the media type, Litestar would append a second charset.
    return Response(body, headers={"Content-Type": content_type})


async def _projection_status(request: Request[Any, Any, State]) -> metrics.CellStatuses | None:
    """Each cell's projections, read at once; a cell that does not answer in time is left
    out (and logged), the others still reported."""
    cells: Cells = request.app.state.cells
    read = await asyncio.gather(*(_cell_status(cell) for cell in cells))
    several = len(cells) > 1
    found = [
        (cell.name if several else None, statuses)
        for cell, statuses in zip(cells, read, strict=True)
        if statuses is not None
    ]
    return found or None


async def _cell_status(cell: Cell) -> list[ProjectionStatus] | None:
    try:
        async with asyncio.timeout(PROJECTIONS_TIMEOUT_SECONDS):
            return await projection_status(cell.engine, clock.now())
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        log.warning(
            "metrics: cell %s: the projections' status could not be read: %r", cell.name, error
        )
        return None
