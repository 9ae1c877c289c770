"""Work that runs beside the API: the projection runners and the auto-complete sweep."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from app import auto_complete
from projections import runner
from projections.registry import ASYNCHRONOUS


async def run_background(engine: AsyncEngine, stop: asyncio.Event) -> None:
    """Until `stop` is set; each runner stops at a batch boundary."""
    await asyncio.gather(
        *(runner.run(engine, projector, stop) for projector in ASYNCHRONOUS),
        auto_complete.sweep(engine, stop),
    )
