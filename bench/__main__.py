"""`uv run --group bench python -m bench [--quick] [--workers N]`: the benchmark of issue 13.

Creates a throwaway database, loads it with COPY, measures the rebuilds and the appends, then
the API as `tasks-api serve` runs it, in its own processes: at saturation beside the raw INSERT
and the bare Litestar route, once with the rate limits counted in PostgreSQL and once in Redis;
from one connection at a time; open loop at half the maximum; the rate limit slices of two
processes; and projection lag. Then over three cells (bench/cells.py): the hot path against one
cell, and the relay publishing to NATS JetStream. It prints its tables and asserts nothing:
they say what passed."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.database import create_engine
from bench import appends, dataset
from bench.cells import cells_figures, cells_rows
from bench.cpu import postgres_of
from bench.database import connect, create_tenants, throwaway_database, wait_until_idle
from bench.dataset import LoadedTenant
from bench.explain import explain_reads
from bench.lag import LagResult, projection_lag
from bench.latency import latency_rows, one_connection, search_totals
from bench.load import LoadResult, ensure_wrk
from bench.open_loop import open_loop_loads, open_loop_rows
from bench.plan import FULL, QUICK, Plan
from bench.postgres import benchmark_server
from bench.rate_limit_slices import rate_limit_slices, slices_row
from bench.relay import relay_rows
from bench.report import Row, cpu_table, number, say, table
from bench.requests import Keys, paced_creates, paced_gets, request_files
from bench.saturation import saturation_round, saturation_rows
from bench.server import api_server, bare_server, serving
from projections.rebuild import count_events, rebuild
from projections.registry import PROJECTORS

# The saturation figures whose maximum sets the open-loop rate.
PACED_FIGURES = ("GET /v1/tasks/:id", "POST /v1/tasks")
MB = 1024 * 1024
# How long the runners are given to apply the loaded log and the appends' events before the
# first load: the digests fold some 1.6 million events of a full run at about 80,000 a second.
CATCH_UP_SECONDS = 300.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(slots=True)
class Results:
    """Every table's rows, and every load for the CPU table, in the order they are printed."""

    sections: list[tuple[str, list[Row]]] = field(default_factory=list)
    loads: list[tuple[str, LoadResult]] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about three minutes")
    parser.add_argument("--workers", type=int, default=2, help="tasks-api serve --workers")
    parser.add_argument(
        "--explain", type=Path, help="write EXPLAIN ANALYZE of the list and figure reads here"
    )
    args = parser.parse_args()
    # A stopped run still drops its database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = QUICK if args.quick else FULL
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    started = time.monotonic()
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="tasks-bench-") as scratch:
        results = run(plan, args.workers, redis_url, Path(scratch), args.explain)
    print(f"\n{plan.name} run, {args.workers} worker(s), {time.monotonic() - started:.0f} s")
    for title, rows in results.sections:
        print(f"\n{title}:\n")
        print(table(rows))
    print(
        "\nWhere the CPU went: seconds per second (1.0 is one core of 2) of the load's generator"
        " (wrk, bench.paced, or for the raw INSERT this process's asyncpg client), the servers"
        " and PostgreSQL, and each one's milliseconds per request:\n"
    )
    print(cpu_table(results.loads))


def run(plan: Plan, workers: int, redis_url: str, scratch: Path, explain: Path | None) -> Results:
    results = Results()
    with benchmark_server() as server, throwaway_database(server) as url:
        say(
            f"database ready; loading {plan.list_tasks:,} + {plan.stats_tasks:,} + "
            f"{plan.command_tasks:,} tasks"
        )
        lists, stats, commands, *lagging = create_tenants(
            url,
            [
                "bench-lists",
                "bench-stats",
                "bench-commands",
                *(f"bench-lag-{rate}" for rate in plan.lag_rates),
            ],
        )
        lag_tenants = dict(zip(plan.lag_rates, lagging, strict=True))
        slicing = create_tenants(
            url, ["bench-slices-postgres", "bench-slices-redis"], plan.slices_limit
        )
        loaded = asyncio.run(
            _load(
                url,
                [
                    (lists.tenant_id, plan.list_tasks),
                    (stats.tenant_id, plan.stats_tasks),
                    (commands.tenant_id, plan.command_tasks),
                ],
            )
        )
        say("loaded; rebuilding every projection")
        rebuilds = asyncio.run(_rebuild_rates(url))
        asyncio.run(_analyze(url))
        say(f"the database holds {asyncio.run(_size(url))}")
        if explain is not None:
            say(f"EXPLAIN ANALYZE of the reads into {explain}")
            explain.write_text(asyncio.run(explain_reads(url, lists.tenant_id, stats.tenant_id)))
        postgres = asyncio.run(postgres_of(url))
        say("our append against the eventsourcing recorder")
        ours, peer = appends.append_rates(url, plan.connections, plan.ceiling_seconds, postgres)
        say("our append with the hash chain against it without")
        chain = appends.chain_cost(url, plan.connections, plan.ceiling_seconds, postgres)

        files = request_files(scratch, loaded[lists.tenant_id], loaded[commands.tenant_id], 2)
        keys = Keys(lists.api_key, stats.api_key, commands.api_key)
        bare = bare_server(workers, scratch / "bare.log")
        api = api_server(url, workers, scratch / "server.log")
        # The second process the rate limit slices are leased by.
        second = api_server(url, 1, scratch / "second.log", run_projections=False)
        with serving(bare):
            say(f"starting tasks-api serve --workers {workers}, and a second")
            with serving(api, second):
                # The log loaded and the appends measured above are new to the runners; what
                # they apply of them is not the loads' to pay for.
                say("waiting until the runners have applied the log")
                asyncio.run(wait_until_idle(url, within=CATCH_UP_SECONDS))
                say(f"one connection at a time ({plan.latency_seconds:g} s each)")
                latency = one_connection(plan, api, url, postgres, files, keys)
                totals = search_totals(api, lists.api_key, loaded[lists.tenant_id])
                say("saturation, rate limits counted in PostgreSQL")
                in_postgres = saturation_round(plan, api, bare, url, postgres, files, keys, 0)
                open_loop = open_loop_loads(
                    plan,
                    api,
                    url,
                    postgres,
                    {
                        "GET /v1/tasks/:id": paced_gets(loaded[lists.tenant_id], lists.api_key),
                        "POST /v1/tasks": paced_creates(commands.api_key),
                    },
                    {name: in_postgres[name].requests_per_second for name in PACED_FIGURES},
                )
                say("rate limit slices, counted in PostgreSQL")
                slices_in_postgres = rate_limit_slices(
                    plan, [api, second], slicing[0], url, postgres, scratch / "slices-pg.json"
                )
                lags = []
                for rate, tenant in lag_tenants.items():
                    say(f"projection lag at {rate:,} commands/s")
                    lags.append(
                        asyncio.run(projection_lag(url, tenant.tenant_id, rate, plan.lag_seconds))
                    )
                peak_rss = api.peak_worker_rss()
            api = api_server(url, workers, scratch / "server-redis.log", redis_url)
            second = api_server(url, 1, scratch / "second-redis.log", redis_url, False)
            say(f"starting both again with REDIS_URL={redis_url}")
            with serving(api, second):
                say("saturation, rate limits counted in Redis")
                in_redis = saturation_round(plan, api, bare, url, postgres, files, keys, 1)
                say("rate limit slices, counted in Redis")
                slices_in_redis = rate_limit_slices(
                    plan, [api, second], slicing[1], url, postgres, scratch / "slices-redis.json"
                )
                peak_rss = max(peak_rss, api.peak_worker_rss())
        say("done; dropping the database")
    say("three cells against one, and the relay")
    cells = cells_figures(plan, workers, scratch)
    say("done; stopping the cells")

    for title, short, loads in (
        (
            f"Saturation, wrk at {plan.connections} connections, rate limits counted in PostgreSQL "
            "(REDIS_URL unset, the default)",
            "limits in PostgreSQL",
            in_postgres,
        ),
        (
            f"Saturation, wrk at {plan.connections} connections, rate limits counted in Redis "
            f"(REDIS_URL={redis_url})",
            "limits in Redis",
            in_redis,
        ),
    ):
        results.sections.append((title, saturation_rows(loads)))
        results.loads += [(f"{name} ({short})", result) for name, result in loads.items()]
    results.sections.append(
        (
            "One connection at a time (wrk -c1 -t1, closed loop), rate limits in PostgreSQL",
            latency_rows(plan, latency, totals, plan.list_tasks),
        )
    )
    results.loads += [(f"{name} (one connection)", result) for name, result in latency.items()]
    results.sections.append(
        (
            "Open loop at half the maximum above (bench.paced, latency from each request's due "
            "time), rate limits in PostgreSQL",
            open_loop_rows(open_loop),
        )
    )
    results.loads += [(f"{name} (open loop)", each.result) for name, each in open_loop.items()]
    results.sections.append(
        (
            "Rate limit slices",
            [
                slices_row("PostgreSQL", slices_in_postgres),
                slices_row("Redis", slices_in_redis),
            ],
        )
    )
    results.loads += [
        ("rate limit slices (PostgreSQL)", slices_in_postgres.load),
        ("rate limit slices (Redis)", slices_in_redis.load),
    ]
    results.sections.append(
        (
            f"Cells: wrk at {plan.connections} connections over three cells against one, rate "
            "limits in PostgreSQL; the relay publishing a burst to NATS JetStream",
            cells_rows(cells) + relay_rows(cells.relay),
        )
    )
    results.loads += [
        (f"{name} ({over})", result)
        for name, loads in cells.hot_path.items()
        for over, result in loads.items()
    ]
    results.sections.append(("The rest", _rows(ours, peer, chain, lags, rebuilds, peak_rss)))
    return results


def _rows(
    ours: float,
    peer: float,
    chain: appends.ChainCost,
    lags: list[LagResult],
    rebuilds: dict[str, float],
    peak_rss: int,
) -> list[Row]:
    rows = []
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
    for stream, chained, unchained in (
        ("a new", chain.new_chained, chain.new_unchained),
        ("an existing", chain.existing_chained, chain.existing_unchained),
    ):
        ratio = chained.per_second / unchained.per_second if unchained.per_second else None
        rows.append(
            Row(
                f"append to {stream} stream, hash-chained",
                f"{number(chained.per_second, '/s')}, PostgreSQL {chained.postgres_ms:.3f} ms each",
                f"unchained {number(unchained.per_second, '/s')}, "
                f"{unchained.postgres_ms:.3f} ms each",
                ratio,
                "≥ 0.90x",
                ratio is not None and ratio >= 0.9,
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


async def _load(url: str, sizes: list[tuple[str, int]]) -> dict[str, LoadedTenant]:
    conn = await connect(url)
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
    conn = await connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _size(url: str) -> str:
    conn = await connect(url)
    try:
        size: str = await conn.fetchval(
            "SELECT pg_size_pretty(pg_database_size(current_database()))"
        )
        return size
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
