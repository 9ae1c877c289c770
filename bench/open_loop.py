"""Load that is not saturation: GET and POST at a fixed offered rate of half the maximum the
saturation round measured for each, sent by bench.paced on schedule whatever the server does,
each request's latency timed from its due time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bench.cpu import Postgres
from bench.database import wait_until_idle
from bench.load import LoadResult, run_paced
from bench.plan import Plan
from bench.report import Row, milliseconds, number, say
from bench.server import Server

P99_MAX_MS = 25
SHARE_OF_MAXIMUM = 0.5


@dataclass(frozen=True, slots=True)
class OpenLoop:
    result: LoadResult
    offered: float
    # How late the generator itself sent its requests, at p99 (a busy connection included).
    late_p99_ms: float | None


def open_loop_loads(
    plan: Plan,
    api: Server,
    database_url: str,
    postgres: Postgres,
    requests: dict[str, list[str]],
    maxima: dict[str, float],
) -> dict[str, OpenLoop]:
    """Each of `requests` (by the name of its saturation figure) at half its maximum."""
    loads = {}
    for name, rendered in requests.items():
        rate = max(1.0, maxima[name] * SHARE_OF_MAXIMUM)
        asyncio.run(wait_until_idle(database_url))
        say(f"open loop: {name} at {rate:,.0f} req/s")
        result, summary = run_paced(
            [api.base_url],
            rendered,
            rate,
            plan.open_loop_seconds,
            plan.connections,
            [api],
            postgres,
        )
        loads[name] = OpenLoop(result, rate, summary.late_p99_ms)
    return loads


def open_loop_rows(loads: dict[str, OpenLoop]) -> list[Row]:
    rows = []
    for name, load in loads.items():
        result, rate = load.result, load.offered
        value = f"{number(result.requests_per_second, 'req/s')} answered"
        passed = result.errors == 0
        if result.p50_ms is not None and result.p99_ms is not None:
            value += f", p50 {milliseconds(result.p50_ms)}, p99 {milliseconds(result.p99_ms)}"
            passed = passed and result.p99_ms < P99_MAX_MS
        else:
            passed = False
        if load.late_p99_ms is not None:
            value += f" (sent late by up to {milliseconds(load.late_p99_ms)} at p99)"
        if result.refused:
            value += f", {result.refused:,} answered ≥ 400"
        if result.unanswered:
            value += f", {result.unanswered:,} unanswered"
        rows.append(
            Row(
                f"{name}, {number(rate, 'req/s')} offered",
                value,
                f"half of {number(rate / SHARE_OF_MAXIMUM, 'req/s')}",
                target=f"p99 < {P99_MAX_MS} ms, no answer ≥ 400, none unanswered",
                passed=passed,
            )
        )
    return rows
