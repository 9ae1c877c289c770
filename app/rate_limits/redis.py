"""Quotas counted in Redis, when REDIS_URL is set: one Lua script per slice, which Redis runs
atomically. A counter is a hash of requests by second, under one key."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ConnectionError, TimeoutError

from app.rate_limits.policy import WINDOW_SECONDS, CountersUnavailable, Lease, Quota, Returned

KEY_PREFIX = "tasks-api:rate-limit:"

# KEYS[1]: the counter. ARGV: the quota, the window in seconds, the time in seconds ("" for
# the server's), the requests wanted, and the second and requests given back. Returns
# {granted, time, second, requests, second, requests, ...}: how many requests were counted,
# and what the counter had counted in the window before them.
LEASE = """
local quota, window, at = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wanted, returned = tonumber(ARGV[4]), tonumber(ARGV[6])
if at == nil then
    local time = redis.call('TIME')
    at = tonumber(time[1]) + tonumber(time[2]) / 1000000
end
local this_second = math.floor(at)

if returned > 0 and redis.call('HEXISTS', KEYS[1], ARGV[5]) == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[5], -returned)
end

local counted, used = {}, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
    local second, requests = tonumber(fields[i]), tonumber(fields[i + 1])
    if second < this_second - window or requests <= 0 then
        redis.call('HDEL', KEYS[1], fields[i])
    else
        used = used + requests
        table.insert(counted, second)
        table.insert(counted, requests)
    end
end

local granted = math.max(math.min(wanted, quota - used), 0)
if granted > 0 then
    redis.call('HINCRBY', KEYS[1], this_second, granted)
    redis.call('EXPIRE', KEYS[1], 2 * window)
end
local reply = {granted, string.format('%.6f', at)}
for _, value in ipairs(counted) do
    table.insert(reply, value)
end
return reply
"""


class RedisCounters:
    def __init__(self, client: Redis) -> None:
        self._lease = client.register_script(LEASE)

    async def lease(
        self, quota: Quota, at: float | None, wanted: int, returned: Returned | None
    ) -> Lease:
        arguments = [
            quota.limit,
            WINDOW_SECONDS,
            "" if at is None else repr(at),
            wanted,
            returned.second if returned else 0,
            returned.requests if returned else 0,
        ]
        try:
            granted, taken_at, *counted = await self._lease([KEY_PREFIX + quota.counter], arguments)
        except (ConnectionError, TimeoutError) as error:
            raise CountersUnavailable(str(error)) from error
        by_second = dict(zip(counted[::2], counted[1::2], strict=True))
        return Lease(int(granted), float(taken_at), by_second)
