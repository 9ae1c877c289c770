"""`uv run --group bench python -m bench [--quick] [--workers N]`: the benchmark of issue 5.

Creates a throwaway database, loads it with COPY, measures the ceilings, the appends, the
rebuilds and the API (served by `tasks-api serve` in its own processes, loaded by wrk), and
prints one table. It asserts nothing: the table says what passed."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from app.database import create_engine
from bench import appends, dataset
from bench.cpu import postmaster
from bench.database import create_tenants, throwaway_database, wait_until_idle
from bench.explain import explain_reads
from bench.lag import LagResult, projection_lag
from bench.load import LoadResult, ensure_wrk, run_wrk
from bench.plan import FULL, QUICK, Plan
from bench.report import Row, markdown, number, table
from bench.server import Server
from projections.rebuild import count_events, rebuild
from projections.registry import PROJECTORS

MB = 1024 * 1024
OPEN = ("not_started", "in_progress", "pending")


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of under a minute")
    parser.add_argument("--workers", type=int, default=2, help="tasks-api serve --workers")
    parser.add_argument(
        "--explain", type=Path, help="write EXPLAIN ANALYZE of the list and figure reads here"
    )
    args = parser.parse_args()
    # A stopped run still drops its database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="tasks-bench-") as scratch:
        rows, load_rows = run(plan, args.workers, Path(scratch), args.explain)
    print(f"\n{plan.name} run, {args.workers} worker(s), {time.monotonic() - started:.0f} s\n")
    print(table(rows))
    print(
        "\nWhere the CPU went: seconds per second (1.0 is one core of 2) of wrk, the server and"
        " PostgreSQL, and the server's and PostgreSQL's milliseconds per request:\n"
    )
    print(markdown(load_rows))


def run(
    plan: Plan, workers: int, scratch: Path, explain: Path | None
) -> tuple[list[Row], list[tuple[str, ...]]]:
    with throwaway_database() as url:
        say(f"database ready; loading {plan.list_tasks:,} + {plan.stats_tasks:,} tasks")
        lists, stats, *lagging = create_tenants(
            url, ["bench-lists", "bench-stats", *(f"bench-lag-{rate}" for rate in plan.lag_rates)]
        )
        lag_tenants = dict(zip(plan.lag_rates, lagging, strict=True))
        tasks = asyncio.run(
            _load(url, [(lists.tenant_id, plan.list_tasks), (stats.tenant_id, plan.stats_tasks)])
        )
        say("loaded; rebuilding every projection")
        rebuilds = asyncio.run(_rebuild_rates(url))
        asyncio.run(_analyze(url))
        if explain is not None:
            say(f"EXPLAIN ANALYZE of the reads into {explain}")
            explain.write_text(asyncio.run(explain_reads(url, lists.tenant_id, stats.tenant_id)))
        say("raw INSERT ceiling, our append, the eventsourcing recorder")
        raw = asyncio.run(appends.raw_insert_rate(url, plan.connections, plan.ceiling_seconds))
        ours, peer = appends.append_rates(url, plan.connections, plan.ceiling_seconds)

        files = _request_files(scratch, tasks[lists.tenant_id])
        say(f"starting tasks-api serve --workers {workers}")
        with Server(url, workers, scratch / "server.log") as server:
            loads = _load_api(server, plan, files, lists.api_key, stats.api_key)
            lags = []
            for rate, tenant in lag_tenants.items():
                say(f"projection lag at {rate:,} commands/s")
                lags.append(
                    asyncio.run(projection_lag(url, tenant.tenant_id, rate, plan.lag_seconds))
                )
            peak_rss = server.peak_worker_rss()
        say("done; dropping the database")
    rows = _rows(plan, raw, ours, peer, loads, lags, rebuilds, peak_rss)
    load_rows = [
        (
            "figure",
            "requests",
            "errors",
            "wrk CPU",
            "server CPU",
            "PostgreSQL CPU",
            "server ms/req",
            "PostgreSQL ms/req",
        )
    ] + [
        (
            name,
            f"{r.requests:,}",
            f"{r.errors:,}",
            f"{r.wrk_cpu:.2f}",
            f"{r.server_cpu:.2f}",
            f"{r.postgres_cpu:.2f}",
            f"{r.cpu_ms_per_request(r.server_cpu):.2f}",
            f"{r.cpu_ms_per_request(r.postgres_cpu):.2f}",
        )
        for name, r in loads.items()
    ]
    return rows, load_rows


def _request_files(scratch: Path, tasks: list[tuple[str, str]]) -> dict[str, str]:
    """The files the Lua scripts read: task ids (all, open ones to snooze, others to
    complete) and the query paths of each read."""
    open_ids = [task_id for task_id, status in tasks if status in OPEN]
    half = len(open_ids) // 2
    return {
        "ids": _write(scratch / "ids", [task_id for task_id, _ in tasks]),
        "snooze": _write(scratch / "snooze", open_ids[:half]),
        "complete": _write(scratch / "complete", open_ids[half:]),
        **{name: _write(scratch / name, paths) for name, paths in _queries().items()},
    }


def _load_api(
    server: Server, plan: Plan, files: dict[str, str], list_key: str, stats_key: str
) -> dict[str, LoadResult]:
    """Each endpoint under wrk in turn: reads first, then the commands."""
    lists, stats = {"BENCH_API_KEY": list_key}, {"BENCH_API_KEY": stats_key}
    threads = {"BENCH_WRK_THREADS": str(plan.wrk_threads)}
    runs = [
        ("constant", "constant", "/bench/constant-task", {}),
        ("GET /v1/tasks/:id", "get_task", "/", {**lists, "BENCH_IDS": files["ids"]}),
        ("list, filters", "query", "/", {**lists, "BENCH_PATHS": files["filters"]}),
        ("list, search", "query", "/", {**lists, "BENCH_PATHS": files["search"]}),
        ("stats", "query", "/", {**stats, "BENCH_PATHS": files["stats"]}),
        ("analytics", "query", "/", {**stats, "BENCH_PATHS": files["analytics"]}),
        ("POST /v1/tasks", "create_task", "/", lists),
        ("PATCH /v1/tasks/:id", "patch_task", "/", {**lists, "BENCH_IDS": files["ids"]}),
        ("snooze", "snooze_task", "/", {**lists, "BENCH_IDS": files["snooze"]}),
        ("complete", "complete_task", "/", {**lists, **threads, "BENCH_IDS": files["complete"]}),
    ]
    postgres = asyncio.run(postmaster(server.database_url))
    loads = {}
    for name, script, path, env in runs:
        # What the last load left running (a search gives up only at its statement timeout)
        # would otherwise be measured against this one.
        asyncio.run(wait_until_idle(server.database_url))
        say(f"wrk: {name}")
        loads[name] = run_wrk(server, postgres, plan, script, path, env)
    return loads


def _rows(
    plan: Plan,
    raw: float,
    ours: float,
    peer: float,
    loads: dict[str, LoadResult],
    lags: list[LagResult],
    rebuilds: dict[str, float],
    peak_rss: int,
) -> list[Row]:
    constant = loads["constant"].requests_per_second
    rows = [
        Row(f"raw INSERT commits/s, {plan.connections} connections", number(raw, "/s")),
        Row("constant task route", number(constant, "req/s")),
    ]

    def http(
        name: str, ceiling: tuple[str, float] | None, ratio_min: float | None, p99_max: float | None
    ) -> Row:
        result = loads[name]
        value = (
            f"{number(result.requests_per_second, 'req/s')}, "
            f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
        )
        if result.errors:
            value += f", {result.errors:,} errors"
        ratio = None if ceiling is None else result.requests_per_second / ceiling[1]
        targets, checks = [], []
        if ratio_min is not None and ratio is not None:
            targets.append(f"≥ {ratio_min:.2f}x")
            checks.append(ratio >= ratio_min)
        if p99_max is not None:
            targets.append(f"p99 < {p99_max:.0f} ms")
            checks.append(result.p99_ms < p99_max)
        checks.append(result.errors == 0 if targets else True)
        return Row(
            name,
            value,
            "" if ceiling is None else ceiling[0],
            ratio,
            ", ".join(targets),
            all(checks) if targets else None,
        )

    insert_ceiling = ("raw INSERT", raw)
    rows += [
        http("POST /v1/tasks", insert_ceiling, 0.30, 50),
        http("GET /v1/tasks/:id", ("constant route", constant), 0.40, 50),
        http("PATCH /v1/tasks/:id", insert_ceiling, None, None),
        http("snooze", insert_ceiling, None, None),
        http("complete", insert_ceiling, None, None),
        http("list, filters", None, None, 25),
        http("list, search", None, None, 25),
        http("stats", None, None, 50),
        http("analytics", None, None, 50),
    ]
    for lag in lags:
        rows.append(
            Row(
                f"projection lag at {lag.rate:,.0f} commands/s (service layer)",
                f"p50 {lag.lag_p50_ms:.0f} ms, p99 {lag.lag_p99_ms:.0f} ms after the commit "
                f"(from recorded_at p99 {lag.recorded_lag_p99_ms:.0f} ms; {lag.events_seen:,} "
                f"events; commands p99 {lag.command_p99_ms:.0f} ms, {lag.failed} failed)",
                target="p99 < 200 ms",
                passed=lag.lag_p99_ms < 200 and lag.failed == 0 and lag.events_seen == lag.commands,
            )
        )
    for name, rate in rebuilds.items():
        rows.append(
            Row(
                f"rebuild {name}",
                number(rate, "events/s"),
                target="≥ 50,000/s",
                passed=rate >= 50_000,
            )
        )
    rows.append(
        Row(
            "event store append",
            number(ours, "/s"),
            f"eventsourcing {number(peer, '/s')}",
            ours / peer if peer else None,
            "≥ 2.00x",
            peer > 0 and ours / peer >= 2,
        )
    )
    rows.append(
        Row(
            "peak RSS of a server worker",
            f"{peak_rss / MB:.0f} MB",
            target="< 150 MB",
            passed=0 < peak_rss < 150 * MB,
        )
    )
    return rows


async def _load(url: str, sizes: list[tuple[str, int]]) -> dict[str, list[tuple[str, str]]]:
    conn = await asyncpg.connect(url)
    try:
        return {
            tenant: await dataset.load_tenant(conn, tenant, count, seed)
            for seed, (tenant, count) in enumerate(sizes)
        }
    finally:
        await conn.close()


async def _rebuild_rates(url: str) -> dict[str, float]:
    engine = create_engine(url, pool_size=2)
    rates = {}
    try:
        total = await count_events(engine)
        for name, projector in PROJECTORS.items():
            started = time.monotonic()
            applied = await rebuild(engine, projector, lambda _: None)
            rates[name] = applied / (time.monotonic() - started)
            say(f"rebuilt {name}: {applied:,} of {total:,} events at {rates[name]:,.0f}/s")
    finally:
        await engine.dispose()
    return rates


async def _analyze(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def _queries() -> dict[str, list[str]]:
    now = datetime.now(UTC).replace(microsecond=0)
    week = (now + timedelta(days=7)).isoformat().replace("+00:00", "Z")
    today = now.isoformat().replace("+00:00", "Z")
    month_ago = (now - timedelta(days=30)).date().isoformat()
    return {
        "filters": [
            "/v1/tasks?status=in_progress&priority=high&limit=20&page=1",
            "/v1/tasks?ownerId=agent_007",
            "/v1/tasks?ownerId=agent_012&status=not_started,in_progress&sort=priority&sortDirection=desc",
            "/v1/tasks?relatedCustomerId=cust_123",
            "/v1/tasks?overdue=true&limit=50",
            f"/v1/tasks?dueAfter={today}&dueBefore={week}",
            "/v1/tasks?status=completed&sort=updated_at&sortDirection=desc&page=3",
            "/v1/tasks/customer/cust_77",
        ],
        "search": [
            "/v1/tasks?search=refund",
            "/v1/tasks?search=customer%201234",
            "/v1/tasks?search=escalation&status=not_started",
            "/v1/tasks?search=warranty&ownerId=agent_003",
            "/v1/tasks?search=no-such-words",
        ],
        "stats": ["/v1/tasks/stats", "/v1/tasks/stats?ownerId=agent_005"],
        "analytics": [
            "/v1/tasks/analytics",
            f"/v1/tasks/analytics?startDate={month_ago}",
            "/v1/tasks/analytics?ownerId=agent_009",
        ],
    }


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


if __name__ == "__main__":
    main()
