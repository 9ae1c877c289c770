"""Quotas counted in PostgreSQL, when no Redis is configured: one call of the function
take_rate_limit (migration 0004) per request, in a statement of its own."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.rate_limits.policy import WINDOW_SECONDS, Quota, Tally
from app.store.tenant_scope import driver_errors
from projections.driver import driver_connection

_TAKE = (
    "SELECT accepted, taken_at, counted_seconds, counted_requests"
    " FROM take_rate_limit($1, $2, $3, $4)"
)


class PostgresCounters:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def take(self, quota: Quota, at: float | None) -> Tally:
        # On the driver's own connection, outside any transaction: the call is the one round
        # trip of the request, and SQLAlchemy's work per statement would cost every request.
        async with self._engine.connect() as conn, driver_errors(conn):
            driver = await driver_connection(conn)
            row = await driver.fetchrow(_TAKE, quota.counter, quota.limit, WINDOW_SECONDS, at)
        accepted, taken_at, seconds, requests = row
        return Tally(accepted, taken_at, dict(zip(seconds or (), requests or (), strict=True)))
