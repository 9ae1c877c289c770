"""Quotas counted in PostgreSQL, when no Redis is configured: one call of the function
lease_rate_limit (migration 0012) per slice, in a statement of its own."""

from __future__ import annotations

import asyncpg

from app.rate_limits.policy import WINDOW_SECONDS, Lease, Quota, Returned
from store.pool import connection

_LEASE = (
    "SELECT granted, taken_at, counted_seconds, counted_requests"
    " FROM lease_rate_limit($1, $2, $3, $4, $5, $6, $7)"
)


class PostgresCounters:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def lease(
        self, quota: Quota, at: float | None, wanted: int, returned: Returned | None
    ) -> Lease:
        async with connection(self._pool) as conn:
            granted, taken_at, seconds, requests = await conn.fetchrow(
                _LEASE,
                quota.counter,
                quota.limit,
                WINDOW_SECONDS,
                at,
                wanted,
                returned.second if returned else 0,
                returned.requests if returned else 0,
            )
        return Lease(granted, taken_at, dict(zip(seconds or (), requests or (), strict=True)))
