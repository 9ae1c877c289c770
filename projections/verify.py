"""Verification: replay the log in memory and compare with what the projections hold."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.log import Checkpoint, RecordedEvent, read_after
from projections.projector import Projector, Rows, stored_rows
from projections.registry import INLINE
from projections.runner import read_checkpoint

BATCH_SIZE = 10_000


@dataclass
class Difference:
    """Rows of one table that a replay and the stored projection disagree on."""

    projection: str
    table: str
    missing: Rows = field(default_factory=set)  # a replay has them, the table has not
    unexpected: Rows = field(default_factory=set)  # the table has them, a replay has not


async def verify(engine: AsyncEngine, projector: Projector) -> list[Difference]:
    """Every table of the projection that differs from a replay of the log it has applied."""
    async with engine.connect() as conn:
        # One snapshot for the log, the checkpoint and the tables, so they agree in time.
        await conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        history = await _applied_history(conn, projector)
        expected = projector.replay(history)
        differences = []
        for table in projector.tables:
            stored = await stored_rows(conn, table)
            wanted = expected[table.name]
            if stored != wanted:
                differences.append(
                    Difference(projector.name, table.name, wanted - stored, stored - wanted)
                )
        await conn.rollback()
    return differences


async def _applied_history(conn: AsyncConnection, projector: Projector) -> list[RecordedEvent]:
    """The events the projection has applied: all of them for an inline one, else those up to
    its checkpoint."""
    until = None if projector in INLINE else await read_checkpoint(conn, projector.name)
    history: list[RecordedEvent] = []
    checkpoint = Checkpoint()
    while batch := await read_after(conn, checkpoint, BATCH_SIZE, until=until, horizon=False):
        history += batch
        checkpoint = Checkpoint(batch[-1].transaction_id, batch[-1].position)
    return history
