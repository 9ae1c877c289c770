"""How far behind the log each projection is, and the runner of the tenants' log digests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.log import Checkpoint, after
from projections.registry import ASYNCHRONOUS, FOLLOWED, INLINE
from projections.runner import Follower, read_checkpoint_unlocked
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
    """The status as of `now` of everything the runners follow."""
    async with engine.connect() as conn:
        return await read_projection_status(conn, now, FOLLOWED)


async def every_projection_status(engine: AsyncEngine, now: datetime) -> list[ProjectionStatus]:
    """Every projection's status as of `now`: the inline ones, at the log's head by
    construction, then what the runners follow."""
    async with engine.connect() as conn:
        head = await _head(conn)
        inline = [ProjectionStatus(p.name, head, 0, 0, inline=True) for p in INLINE]
        return inline + await read_projection_status(conn, now, FOLLOWED)


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


async def read_projection_status(
    conn: AsyncConnection, now: datetime, followers: Sequence[Follower] = ASYNCHRONOUS
) -> list[ProjectionStatus]:
    """The status of each of the runners' `followers` (every asynchronous projection), on a
    connection the caller already holds."""
    statuses = []
    for follower in followers:
        checkpoint = await read_checkpoint_unlocked(conn, follower.name)
        behind, oldest = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.min(events.c.recorded_at)).where(
                    after(checkpoint)
                )
            )
        ).one()
        lag = 0 if oldest is None else max(0, int((now - oldest).total_seconds() * 1000))
        statuses.append(ProjectionStatus(follower.name, checkpoint, behind, lag))
    return statuses
