"""Quotas counted in PostgreSQL, when no Redis is configured: one call of the function
take_rate_limit (migration 0004) per request, in a statement of its own."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.rate_limits.policy import WINDOW_SECONDS, Quota, Tally

_TAKE = sa.text(
    "SELECT accepted, taken_at, counted_seconds, counted_requests"
    " FROM take_rate_limit(:counter, :quota, :window_seconds, :at)"
)


class PostgresCounters:
    def __init__(self, engine: AsyncEngine) -> None:
        # Without BEGIN and COMMIT, the call is the one round trip of the request.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def take(self, quota: Quota, at: float | None) -> Tally:
        parameters = {
            "counter": quota.counter,
            "quota": quota.limit,
            "window_seconds": WINDOW_SECONDS,
            "at": at,
        }
        async with self._engine.connect() as conn:
            row = (await conn.execute(_TAKE, parameters)).one()
        counted = dict(zip(row.counted_seconds or (), row.counted_requests or (), strict=True))
        return Tally(row.accepted, row.taken_at, counted)
