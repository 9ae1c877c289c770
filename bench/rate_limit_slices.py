"""How often a request is refused while slices of its tenant's quota stand unused elsewhere.

Each process leases slices of a quota from the shared store and admits from memory
(app/rate_limits/slices.py): never more than the quota, by construction, but a process whose
slice is spent may be refused while another's is unused. Two `tasks-api serve` processes (the
round's, with its workers, and one more) share a tenant of `slices_limit` requests a minute,
sent twice that within `slices_seconds` (one window), the requests alternating between them:
the figure is how many were accepted against the limit, and how many 429s came while fewer
than the limit had been accepted."""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass
from pathlib import Path

import msgspec

from bench.cpu import Postgres
from bench.database import CreatedTenant, wait_until_idle
from bench.load import LoadResult, run_paced
from bench.paced import Record, render
from bench.plan import Plan
from bench.report import Row, number
from bench.server import Server

TOO_MANY = 429
CONNECTIONS = 8


@dataclass(frozen=True, slots=True)
class SlicesResult:
    limit: int
    sent: int
    seconds: float
    accepted: int
    refused: int
    # 429s answered while fewer than the limit had been accepted: counted among the accepted
    # only those sent before the 429 was answered, so no later acceptance makes room seem.
    refused_with_room: int
    # Any other answer, or none.
    failed: int
    load: LoadResult


def rate_limit_slices(
    plan: Plan,
    servers: list[Server],
    tenant: CreatedTenant,
    database_url: str,
    postgres: Postgres,
    records_path: Path,
) -> SlicesResult:
    """`tenant`, of `plan.slices_limit` requests a minute, sent twice that in
    `plan.slices_seconds` through `servers` in turn."""
    # A list of the tenant's (no) tasks: the cheapest read that is counted.
    requests = [render("GET", "/v1/tasks?limit=1", tenant.api_key)]
    rate = 2 * plan.slices_limit / plan.slices_seconds
    asyncio.run(wait_until_idle(database_url))
    load, summary = run_paced(
        [server.base_url for server in servers],
        requests,
        rate,
        plan.slices_seconds,
        CONNECTIONS,
        servers,
        postgres,
        records_path,
    )
    records = msgspec.json.decode(records_path.read_bytes(), type=list[Record])
    accepted = [record for record in records if 200 <= record[3] < 300]
    refused = [record for record in records if record[3] == TOO_MANY]
    return SlicesResult(
        limit=plan.slices_limit,
        sent=summary.sent,
        seconds=plan.slices_seconds,
        accepted=len(accepted),
        refused=len(refused),
        refused_with_room=_refused_with_room(accepted, refused, plan.slices_limit),
        failed=summary.sent - len(accepted) - len(refused),
        load=load,
    )


def _refused_with_room(accepted: list[Record], refused: list[Record], limit: int) -> int:
    sent_times = sorted(sent for _, sent, _, _ in accepted)
    with_room = 0
    for _, _, answered, _ in refused:
        with_room += bisect.bisect_left(sent_times, answered) < limit
    return with_room


def slices_row(store: str, result: SlicesResult) -> Row:
    value = (
        f"{result.accepted:,} accepted of {result.limit:,}; {result.refused:,} refused, "
        f"{result.refused_with_room:,} of them while fewer than {result.limit:,} "
        "had been accepted"
    )
    if result.failed:
        value += f"; {result.failed:,} otherwise answered or unanswered"
    return Row(
        f"rate limit slices in {store}: {result.sent:,} requests in "
        f"{number(result.seconds)} s through two processes",
        value,
        f"{result.limit:,} a minute",
        result.accepted / result.limit,
        f"accepted ≤ {result.limit:,}",
        result.accepted <= result.limit and result.failed == 0,
    )
