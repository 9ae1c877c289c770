"""Rate limits: each tenant's requests per minute, and the failed authentications of each
client address, counted in a store every server shares (Redis when REDIS_URL is set, else
PostgreSQL), never per process. Each process leases slices of a quota from the store and
admits from them (app/rate_limits/slices.py), so the store is not written per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.rate_limits.policy import (
    Counters,
    Decision,
    failed_authentications_quota,
    tenant_quota,
)
from app.rate_limits.postgres import PostgresCounters
from app.rate_limits.redis import RedisCounters
from app.rate_limits.slices import Slices
from app.tenants import Principal

# Past it, a request is answered 503 rather than wait: a client retries sooner than a hung one.
REDIS_TIMEOUT_SECONDS = 2.0


class RateLimiter:
    """The two rate limits a request meets, counted in one store."""

    def __init__(
        self, counters: Counters, ping: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self._slices = Slices(counters)
        self._ping = ping

    async def store_answers(self) -> bool | None:
        """Whether a store of its own (Redis) answers now, within REDIS_TIMEOUT_SECONDS; None
        when the quotas are counted in the database, whose own checks say as much."""
        if self._ping is None:
            return None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                await self._ping()
        except (RedisError, OSError, TimeoutError):
            return False
        return True

    async def admit(self, principal: Principal, at: float | None = None) -> Decision:
        """Count an authenticated request against its tenant's quota, and its tenant's only:
        failures from its address never lock a tenant out (its clients may share the address
        with anyone, or sit behind a proxy)."""
        return await self._slices.take(tenant_quota(principal), at)

    async def fail_authentication(self, client_address: str, at: float | None = None) -> Decision:
        """Count a failed authentication against its client address."""
        return await self._slices.take(failed_authentications_quota(client_address), at)

    async def close(self) -> None:
        await self._slices.close()


@asynccontextmanager
async def open_rate_limiter(
    redis_url: str | None, pool: asyncpg.Pool
) -> AsyncIterator[RateLimiter]:
    """The rate limiter on Redis at `redis_url`, or on the database behind `pool`."""
    if redis_url is None:
        limiter = RateLimiter(PostgresCounters(pool))
        try:
            yield limiter
        finally:
            await limiter.close()
        return
    client = Redis.from_url(
        redis_url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    limiter = RateLimiter(RedisCounters(client), client.ping)
    try:
        yield limiter
    finally:
        await limiter.close()
        await client.aclose()
