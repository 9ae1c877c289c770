"""The latency one client feels: each read and POST from one connection at a time (wrk -c1
-t1, closed loop), with the lists and the search at the lists tenant's size and stats and
analytics at the stats tenant's. A search is timed for words each found in 15% of the tasks,
and its `total` checked against the loader's own count, so a fast answer is an exact one."""

from __future__ import annotations

import asyncio
import urllib.request
from dataclasses import dataclass

import msgspec

from bench.cpu import Postgres
from bench.database import wait_until_idle
from bench.dataset import LoadedTenant
from bench.load import LoadResult, run_wrk
from bench.plan import Plan
from bench.report import Row, milliseconds, say
from bench.requests import SEARCH_WORDS, Keys, RequestFiles, search_path
from bench.server import Server


@dataclass(frozen=True, slots=True)
class Latency:
    name: str
    script: str
    tenant: str  # "lists", "stats" or "commands"
    paths: str  # the file of paths in RequestFiles.paths, "" for none
    p50_max_ms: float | None
    p99_max_ms: float


def latencies(plan: Plan) -> tuple[Latency, ...]:
    lists, stats = f"{plan.list_tasks:,} tasks", f"{plan.stats_tasks:,} tasks"
    return (
        Latency("GET /v1/tasks/:id", "get_task", "lists", "", 1, 4),
        Latency(f"list, filters, {lists}", "query", "lists", "filters", None, 20),
        Latency(f"search, a word in 15% of {lists}", "query", "lists", "common-word", None, 50),
        Latency(f"stats, {stats}", "query", "stats", "stats", None, 15),
        Latency(f"analytics, {stats}", "query", "stats", "analytics", None, 40),
        Latency(
            f"analytics, startDate/endDate, {stats}",
            "query",
            "stats",
            "analytics-period",
            None,
            40,
        ),
        # Last: it adds tasks, though to the tenant the commands write to.
        Latency("POST /v1/tasks", "create_task", "commands", "", 2, 8),
    )


class _Page(msgspec.Struct):
    total: int


def one_connection(
    plan: Plan,
    api: Server,
    database_url: str,
    postgres: Postgres,
    files: RequestFiles,
    keys: Keys,
) -> dict[str, LoadResult]:
    loads = {}
    for latency in latencies(plan):
        env = {"BENCH_API_KEY": getattr(keys, latency.tenant), "BENCH_IDS": files.read_ids}
        if latency.paths:
            env["BENCH_PATHS"] = files.paths[latency.paths]
        asyncio.run(wait_until_idle(database_url))
        say(f"one connection: {latency.name}")
        url = f"{api.base_url}/"
        # The loads before this one left other pages in PostgreSQL's buffers: its first
        # requests would read theirs from the kernel's cache (a common word's first search
        # took 300 ms), which is a figure of the run's order, not of the request.
        run_wrk(url, latency.script, env, plan.warm_up_seconds, 1, 1, [api], postgres)
        loads[latency.name] = run_wrk(
            url, latency.script, env, plan.latency_seconds, 1, 1, [api], postgres
        )
    return loads


def search_totals(api: Server, api_key: str, loaded: LoadedTenant) -> dict[str, tuple[int, int]]:
    """Each common word's search `total` as the API answers it, and as the loader counted."""
    totals = {}
    for word in SEARCH_WORDS:
        request = urllib.request.Request(
            f"{api.base_url}{search_path(word)}", headers={"x-tenant-api-key": api_key}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            page = msgspec.json.decode(answer.read(), type=_Page)
        totals[word] = (page.total, loaded.word_counts[word])
    return totals


def latency_rows(
    plan: Plan, loads: dict[str, LoadResult], totals: dict[str, tuple[int, int]], tasks: int
) -> list[Row]:
    rows = []
    for latency in latencies(plan):
        result = loads[latency.name]
        assert result.p50_ms is not None and result.p99_ms is not None
        value = f"p50 {milliseconds(result.p50_ms)}, p99 {milliseconds(result.p99_ms)}"
        value += f", {result.requests_per_second:,.0f} req/s"
        if result.errors:
            value += f", {result.errors:,} failed"
        targets, passed = [f"p99 < {latency.p99_max_ms:g} ms"], result.p99_ms < latency.p99_max_ms
        if latency.p50_max_ms is not None:
            targets.insert(0, f"p50 < {latency.p50_max_ms:g} ms")
            passed = passed and result.p50_ms < latency.p50_max_ms
        if latency.paths == "common-word":
            exact = all(answered == counted for answered, counted in totals.values())
            value += "; " + _totals(totals, tasks)
            targets.append("total exact")
            passed = passed and exact
        rows.append(
            Row(latency.name, value, target=", ".join(targets), passed=passed and not result.errors)
        )
    return rows


def _totals(totals: dict[str, tuple[int, int]], tasks: int) -> str:
    shown = []
    for word, (answered, counted) in totals.items():
        share = f"{counted / tasks:.1%}" if tasks else "-"
        if answered == counted:
            shown.append(f"{word} {counted:,} ({share})")
        else:
            shown.append(f"{word} answered {answered:,} of {counted:,} ({share})")
    return "totals: " + ", ".join(shown)
