"""A process's slices of the quotas: requests are admitted from memory, and the shared store is
asked only for a new slice.

A slice is a number of requests the store has counted against a quota in one second, leased
by this process in one call. The process admits that many requests in that second without
asking again; when the second ends, what it did not use goes back to the store with its next
lease, or after the second if it has gone idle. The store counts every slice whole, so however
many processes lease, no window ever holds more than the quota: "never over" holds by
construction, and the store is written once per slice, never per request.

A slice is no bigger than what this process used in the second before (doubling within a
second that outruns it), and never more than a small share of the quota's room: as a quota
runs out, slices shrink to single requests, and then a request another process's unused
slice could have taken is refused for at most the rest of a second."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from app.rate_limits.policy import Counters, Decision, Quota, Returned, Window, decide

# A slice takes at most this share of the room a quota had left when it was leased.
ROOM_SHARE = 64

log = logging.getLogger("tasks_api.rate_limits")


@dataclass(slots=True)
class _Slice:
    """This process's slice of one quota: the store second it counts in, the requests granted
    and used, and what the store had counted in the window before it."""

    quota: Quota
    second: int
    granted: int
    used: int
    counted: Window
    # Requests this process used in the same second before this slice (earlier slices).
    used_earlier: int = 0
    idle_return: asyncio.TimerHandle | None = None

    @property
    def unused(self) -> int:
        return self.granted - self.used

    def used_in_second(self) -> int:
        return self.used_earlier + self.used

    def take(self, at: float) -> Decision | None:
        """A request at `at` counted from this slice, or refused as its lease was; None when
        the slice cannot tell (its second is over, or it has run out)."""
        if math.floor(at) != self.second:
            return None
        if self.unused > 0:
            self.used += 1
            return self.decision(at, accepted=True)
        if self.granted == 0:
            return self.decision(at, accepted=False)
        return None

    def decision(self, at: float, accepted: bool) -> Decision:
        # The store has counted this slice whole; the client is told what is left of it.
        return decide(self.quota, accepted, at, self.counted, self.used - accepted)


@dataclass
class Slices:
    """The slices this process holds, one per quota counter, leased from `counters`."""

    counters: Counters
    _held: dict[str, _Slice] = field(default_factory=dict)
    _leasing: dict[str, asyncio.Lock] = field(default_factory=dict)
    # The store's clock less this process's monotonic clock, as the last lease showed it
    # (never less than the truth, so a slice is given up no later than its second ends).
    _store_offset: float | None = None

    async def take(self, quota: Quota, at: float | None) -> Decision:
        """Count one request against the quota: from this process's slice while it has room,
        else from a new slice. `at` is a time the tests set, None for the store's clock."""
        if (decided := self._from_slice(quota, at)) is not None:
            return decided
        async with self._leasing.setdefault(quota.counter, asyncio.Lock()):
            # Another request may have leased while this one waited.
            if (decided := self._from_slice(quota, at)) is not None:
                return decided
            return await self._lease(quota, at)

    def _from_slice(self, quota: Quota, at: float | None) -> Decision | None:
        held = self._held.get(quota.counter)
        now = self._store_time(at)
        if held is None or now is None:
            return None
        return held.take(now)

    async def _lease(self, quota: Quota, at: float | None) -> Decision:
        held = self._held.get(quota.counter)
        wanted = _wanted(quota, held, self._store_time(at))
        returned = _take_unused(held)
        sent = time.monotonic()
        lease = await self.counters.lease(quota, at, wanted, returned)
        if at is None:
            self._store_offset = lease.at - sent
        second = math.floor(lease.at)
        earlier = held.used_in_second() if held is not None and held.second == second else 0
        fresh = _Slice(quota, second, lease.granted, 0, Window.of(lease.counted), earlier)
        self._held[quota.counter] = fresh
        if lease.granted == 0:
            return fresh.decision(lease.at, accepted=False)
        fresh.used = 1
        if at is None and fresh.unused > 0:
            fresh.idle_return = asyncio.get_running_loop().call_later(
                second + 1 - lease.at, self._return_if_idle, fresh
            )
        return fresh.decision(lease.at, accepted=True)

    def _store_time(self, at: float | None) -> float | None:
        if at is not None:
            return at
        if self._store_offset is None:
            return None
        return time.monotonic() + self._store_offset

    def _return_if_idle(self, held: _Slice) -> None:
        """The slice's second is over and no request has leased since: give back what it
        did not use, so that other processes may."""
        if self._held.get(held.quota.counter) is held:
            asyncio.get_running_loop().create_task(self._give_back(held))

    async def _give_back(self, held: _Slice) -> None:
        if (returned := _take_unused(held)) is None:
            return
        try:
            await self.counters.lease(held.quota, None, 0, returned)
        except Exception:
            log.warning("could not give back %s unused requests", returned.requests)

    async def close(self) -> None:
        """Give back what the slices have not used."""
        held, self._held = list(self._held.values()), {}
        for each in held:
            await self._give_back(each)


def _take_unused(held: _Slice | None) -> Returned | None:
    """What an ended slice did not use, taken off it so that it is given back once."""
    if held is None or held.unused <= 0:
        return None
    returned = Returned(held.second, held.unused)
    held.granted = held.used
    if held.idle_return is not None:
        held.idle_return.cancel()
    return returned


def _wanted(quota: Quota, held: _Slice | None, now: float | None) -> int:
    """How many requests to lease: what this process used in the second before, or twice
    the slice it ran out of within this second; never more than a share of the room the
    quota had at the last lease."""
    second = None if now is None else math.floor(now)
    if held is None or second is None:
        wanted, room = 1, quota.limit
    else:
        room = quota.limit - held.counted.total - held.granted
        if held.second == second:
            wanted = 2 * max(held.granted, 1)
        elif held.second == second - 1:
            wanted = held.used_in_second()
        else:
            wanted = 1
    return max(1, min(wanted, room // ROOM_SHARE))
