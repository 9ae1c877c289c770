"""Who may send how many requests: the quotas, and what a count against one decides.

A quota allows `limit` requests in any WINDOW_SECONDS-long interval. The stores count the
requests a quota accepted per whole second, and a second's requests count against it in that
second and the WINDOW_SECONDS seconds after. Any interval of WINDOW_SECONDS seconds lies within
WINDOW_SECONDS + 1 such seconds, so it never holds more than the limit: a sliding window, with
no calendar minute to let twice the limit through across its boundary, at the price of keeping
a request in the count up to one second longer than the window. The counts stay small (one per
second, not per request) whatever the rate.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from app.tenants import Principal

WINDOW_SECONDS = 60
TIER_LIMITS = {"starter": 300, "growth": 1_200, "enterprise": 6_000}
# A third of the lowest tier: a client that keeps guessing keys soon hears 429 instead of 401,
# while one whose key was just revoked, or a suite of checks of the 401s, has room to fail.
FAILED_AUTHENTICATIONS_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `limit` requests in any WINDOW_SECONDS, counted under `counter`; `policy` is the
    name clients see in the RateLimit fields."""

    policy: str
    counter: str
    limit: int


@dataclass(frozen=True, slots=True)
class Lease:
    """A store's answer to a lease: the requests of the quota it granted (0 when it had no
    room), the time it was taken at, and the requests the quota had counted in the window
    before it, by second."""

    granted: int
    at: float
    counted: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class Returned:
    """Requests a process leased of an earlier second and did not use."""

    second: int
    requests: int


@dataclass(frozen=True, slots=True)
class Decision:
    """A tally as the client is told it: the requests still allowed now, and the seconds until
    one more is (for a refused request, until one is at all)."""

    quota: Quota
    accepted: bool
    remaining: int
    seconds_until_room: int


class Counters(Protocol):
    """A store the quotas are counted in, shared by every server of the service."""

    async def lease(
        self, quota: Quota, at: float | None, wanted: int, returned: Returned | None
    ) -> Lease:
        """Count up to `wanted` requests against `quota` in the current second, as many as
        it has room for, after taking back what `returned` gives back. `at` is the time in
        seconds, None for the store's clock, which every server shares."""
        ...


class CountersUnavailable(Exception):
    """The store the quotas are counted in cannot be reached."""


def tenant_quota(principal: Principal) -> Quota:
    limit = principal.rate_limit or TIER_LIMITS[principal.tier]
    return Quota("tenant", f"tenant:{principal.tenant_id}", limit)


def failed_authentications_quota(client_address: str) -> Quota:
    return Quota(
        "failed-authentication", f"address:{_network(client_address)}", FAILED_AUTHENTICATIONS_LIMIT
    )


def _network(client_address: str) -> str:
    # One IPv6 host can roam its whole /64: count the /64.
    try:
        address = ipaddress.ip_address(client_address)
    except ValueError:
        return client_address
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class Window:
    """The requests a quota had counted in the window, by second, oldest first."""

    by_second: tuple[tuple[int, int], ...]
    total: int

    @classmethod
    def of(cls, counted: Mapping[int, int]) -> Window:
        return cls(tuple(sorted(counted.items())), sum(counted.values()))


def decide(quota: Quota, accepted: bool, at: float, counted: Window, own: int = 0) -> Decision:
    """What a count tells the client of a request made at `at`, accepted or not, given what
    the window counted before it and the `own` requests counted in the same second since
    (a process's slice): the room left, and when there is more."""
    this_second = (math.floor(at), own + accepted)
    used = counted.total + this_second[1]
    limit = quota.limit
    # Requests that must leave the window before one more fits: one, or the excess and one.
    to_leave = max(used - limit + 1, 1)
    seconds_until_room = WINDOW_SECONDS
    for second, requests in itertools.chain(counted.by_second, (this_second,)):
        to_leave -= requests
        if to_leave <= 0:
            seconds_until_room = math.ceil(second + WINDOW_SECONDS + 1 - at)
            break
    return Decision(quota, accepted, max(limit - used, 0), seconds_until_room)
