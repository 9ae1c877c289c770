"""Rate limits: each tenant's requests per minute, and the failed authentications of each
client address, counted in a store every server shares (Redis when REDIS_URL is set, else
PostgreSQL), never per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.rate_limits.policy import (
    Counters,
    Decision,
    decide,
    failed_authentications_quota,
    tenant_quota,
)
from app.rate_limits.postgres import PostgresCounters
from app.rate_limits.redis import RedisCounters
from app.tenants import Principal

# Past it, a request is answered 503 rather than wait: a client retries sooner than a hung one.
REDIS_TIMEOUT_SECONDS = 2.0


class RateLimiter:
    """The two rate limits a request meets, counted in one store."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    async def admit(self, principal: Principal, at: float | None = None) -> Decision:
        """Count an authenticated request against its tenant's quota, and its tenant's only:
        failures from its address never lock a tenant out (its clients may share the address
        with anyone, or sit behind a proxy)."""
        quota = tenant_quota(principal)
        return decide(quota, await self._counters.take(quota, at))

    async def fail_authentication(self, client_address: str, at: float | None = None) -> Decision:
        """Count a failed authentication against its client address."""
        quota = failed_authentications_quota(client_address)
        return decide(quota, await self._counters.take(quota, at))


@asynccontextmanager
async def open_rate_limiter(
    redis_url: str | None, engine: AsyncEngine
) -> AsyncIterator[RateLimiter]:
    """The rate limiter on Redis at `redis_url`, or on the database behind `engine`."""
    if redis_url is None:
        yield RateLimiter(PostgresCounters(engine))
        return
    client = Redis.from_url(
        redis_url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    try:
        yield RateLimiter(RedisCounters(client))
    finally:
        await client.aclose()
