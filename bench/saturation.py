"""Every endpoint at saturation (wrk, 64 connections, closed loop), side by side with the two
ceilings it is weighed against, each measured in the same round just before the loads it is
weighed with: the bare Litestar route (GET) first, and the raw single-row INSERT (the
commands) after the reads, once the servers are idle. The machine is shared and its speed
drifts over minutes (a 10-million-step Python loop took 0.47 to 0.83 s of CPU within a few
minutes, the machine otherwise idle): a ceiling measured minutes before its loads weighed
them against another machine. The constant route through our stack shows what the stack
itself costs against the bare one."""

from __future__ import annotations

import asyncio

from bench import appends
from bench.cpu import Postgres
from bench.database import wait_until_idle
from bench.load import LoadResult, run_wrk
from bench.plan import Plan
from bench.report import Row, number, rate_and_latency, say
from bench.requests import Keys, RequestFiles
from bench.server import CONSTANT_PATH, Server

RAW = "raw INSERT, 64 connections"
BARE = "bare Litestar route"
CONSTANT = "constant route through our stack"
# Each endpoint's ceiling (None: none) and the share of it the target asks for.
TARGETS: tuple[tuple[str, str | None, float | None], ...] = (
    ("POST /v1/tasks", RAW, 0.12),
    ("GET /v1/tasks/:id", BARE, 0.20),
    ("PATCH /v1/tasks/:id", RAW, 0.10),
    ("snooze", RAW, 0.10),
    ("complete", RAW, 0.10),
    ("list, filters", None, None),
    ("list, search", None, None),
    ("stats", None, None),
    ("analytics", None, None),
)
CEILING_NAMES = {RAW: "raw INSERT", BARE: "bare route"}
# The raw INSERT is measured just before this load, the first of the commands.
FIRST_COMMAND = "POST /v1/tasks"


def saturation_round(
    plan: Plan,
    api: Server,
    bare: Server,
    database_url: str,
    postgres: Postgres,
    files: RequestFiles,
    keys: Keys,
    round_number: int,
) -> dict[str, LoadResult]:
    """The bare route, then each endpoint under wrk in turn: reads first, then commands."""
    lists, stats, commands = (
        {"BENCH_API_KEY": keys.lists},
        {"BENCH_API_KEY": keys.stats},
        {"BENCH_API_KEY": keys.commands},
    )
    paths = files.paths
    patch = {**commands, "BENCH_IDS": files.command_ids}
    snooze = {**commands, "BENCH_IDS": files.snooze_ids}
    complete = {**commands, "BENCH_IDS": files.complete_ids[round_number]}
    runs: list[tuple[str, Server, str, str, dict[str, str]]] = [
        (BARE, bare, "constant", CONSTANT_PATH, {}),
        (CONSTANT, api, "constant", CONSTANT_PATH, {}),
        ("GET /v1/tasks/:id", api, "get_task", "/", {**lists, "BENCH_IDS": files.read_ids}),
        ("list, filters", api, "query", "/", {**lists, "BENCH_PATHS": paths["filters"]}),
        ("list, search", api, "query", "/", {**lists, "BENCH_PATHS": paths["search"]}),
        ("stats", api, "query", "/", {**stats, "BENCH_PATHS": paths["stats"]}),
        ("analytics", api, "query", "/", {**stats, "BENCH_PATHS": paths["analytics-mix"]}),
        ("POST /v1/tasks", api, "create_task", "/", commands),
        ("PATCH /v1/tasks/:id", api, "patch_task", "/", patch),
        ("snooze", api, "snooze_task", "/", snooze),
        ("complete", api, "complete_task", "/", complete),
    ]
    loads = {}
    for name, server, script, path, env in runs:
        if name == FIRST_COMMAND:
            loads[RAW] = raw_insert_ceiling(plan, database_url, postgres)
        loads[name] = saturated(plan, name, server, path, script, env, database_url, postgres)
    return loads


def saturated(
    plan: Plan,
    name: str,
    server: Server,
    path: str,
    script: str,
    env: dict[str, str],
    database_url: str,
    postgres: Postgres,
) -> LoadResult:
    """One load under wrk at the plan's connections, once the database is idle: what the last
    load left running (a search gives up only at its statement timeout) would otherwise be
    measured against this one."""
    asyncio.run(wait_until_idle(database_url))
    say(name)
    return run_wrk(
        f"{server.base_url}{path}",
        script,
        env,
        plan.seconds,
        plan.connections,
        plan.wrk_threads,
        [server],
        postgres,
    )


def raw_insert_ceiling(plan: Plan, database_url: str, postgres: Postgres) -> LoadResult:
    """Measured once the runners have applied every event before, so that the servers idle."""
    asyncio.run(wait_until_idle(database_url))
    say(RAW)
    return asyncio.run(
        appends.raw_inserts(database_url, plan.connections, plan.ceiling_seconds, postgres)
    )


def saturation_rows(loads: dict[str, LoadResult]) -> list[Row]:
    raw, bare, constant = loads[RAW], loads[BARE], loads[CONSTANT]
    rows = [
        Row(RAW, number(raw.requests_per_second, "commits/s")),
        Row(BARE, rate_and_latency(bare)),
        Row(
            CONSTANT,
            rate_and_latency(constant),
            "bare route",
            constant.requests_per_second / bare.requests_per_second,
        ),
    ]
    for name, ceiling, share in TARGETS:
        result = loads[name]
        ratio = None
        if ceiling is not None:
            ratio = result.requests_per_second / loads[ceiling].requests_per_second
        targets, passed = ["no answer ≥ 400, none unanswered"], result.errors == 0
        if share is not None and ratio is not None:
            targets.insert(0, f"≥ {share:.2f}x")
            passed = passed and ratio >= share
        rows.append(
            Row(
                name,
                rate_and_latency(result),
                CEILING_NAMES.get(ceiling or "", ""),
                ratio,
                ", ".join(targets),
                passed,
            )
        )
    return rows
