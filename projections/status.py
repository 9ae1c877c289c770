"""How far behind the log each projection is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.log import Checkpoint, after
from projections.registry import ASYNCHRONOUS, INLINE
from projections.runner import read_checkpoint_unlocked
from projections.tables import events


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    checkpoint: Checkpoint
    events_behind: int
    # How long the oldest event not yet applied has waited; 0 when caught up.
    lag_ms: int
    # Projected in each command's own transaction: never behind the log.
    inline: bool = False


async def projection_status(engine: AsyncEngine, now: datetime) -> list[ProjectionStatus]:
    """Every asynchronous projection's status as of `now`."""
    async with engine.connect() as conn:
        return await read_projection_status(conn, now)


async def every_projection_status(engine: AsyncEngine, now: datetime) -> list[ProjectionStatus]:
    """Every projection's status as of `now`: the inline ones, at the log's head by
    construction, then the asynchronous ones."""
    async with engine.connect() as conn:
        head = await _head(conn)
        inline = [ProjectionStatus(p.name, head, 0, 0, inline=True) for p in INLINE]
        return inline + await read_projection_status(conn, now)


async def _head(conn: AsyncConnection) -> Checkpoint:
    """The last event committed, in commit order."""
    c = events.c
    row = (
        await conn.execute(
            sa.select(c.transaction_id.cast(sa.Text).cast(sa.BigInteger), c.global_position)
            .order_by(c.transaction_id.desc(), c.global_position.desc())
            .limit(1)
        )
    ).first()
    return Checkpoint() if row is None else Checkpoint(*row)


async def read_projection_status(conn: AsyncConnection, now: datetime) -> list[ProjectionStatus]:
    """Every asynchronous projection's status, on a connection the caller already holds."""
    statuses = []
    for projector in ASYNCHRONOUS:
        checkpoint = await read_checkpoint_unlocked(conn, projector.name)
        behind, oldest = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.min(events.c.recorded_at)).where(
                    after(checkpoint)
                )
            )
        ).one()
        lag = 0 if oldest is None else max(0, int((now - oldest).total_seconds() * 1000))
        statuses.append(ProjectionStatus(projector.name, checkpoint, behind, lag))
    return statuses
