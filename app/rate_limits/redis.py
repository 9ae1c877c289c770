"""Quotas counted in Redis, when REDIS_URL is set: one Lua script per request, which Redis
runs atomically. A counter is a hash of requests by second, under one key."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ConnectionError, TimeoutError

from app.rate_limits.policy import WINDOW_SECONDS, CountersUnavailable, Quota, Tally

KEY_PREFIX = "tasks-api:rate-limit:"

# KEYS[1]: the counter. ARGV: the quota, the window in seconds, the time in seconds ("" for
# the server's). Returns {accepted, time, second, requests, second, requests, ...}: whether
# the request was counted, and what the counter had counted in the window before it.
TAKE = """
local quota, window, at = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if at == nil then
    local time = redis.call('TIME')
    at = tonumber(time[1]) + tonumber(time[2]) / 1000000
end
local this_second = math.floor(at)

local counted, used = {}, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
    local second, requests = tonumber(fields[i]), tonumber(fields[i + 1])
    if second < this_second - window then
        redis.call('HDEL', KEYS[1], fields[i])
    else
        used = used + requests
        table.insert(counted, second)
        table.insert(counted, requests)
    end
end

local accepted = 0
if used < quota then
    accepted = 1
    redis.call('HINCRBY', KEYS[1], this_second, 1)
    redis.call('EXPIRE', KEYS[1], 2 * window)
end
local reply = {accepted, string.format('%.6f', at)}
for _, value in ipairs(counted) do
    table.insert(reply, value)
end
return reply
"""


class RedisCounters:
    def __init__(self, client: Redis) -> None:
        self._take = client.register_script(TAKE)

    async def take(self, quota: Quota, at: float | None) -> Tally:
        arguments = [quota.limit, WINDOW_SECONDS, "" if at is None else repr(at)]
        try:
            accepted, taken_at, *counted = await self._take([KEY_PREFIX + quota.counter], arguments)
        except (ConnectionError, TimeoutError) as error:
            raise CountersUnavailable(str(error)) from error
        by_second = dict(zip(counted[::2], counted[1::2], strict=True))
        return Tally(bool(accepted), float(taken_at), by_second)
