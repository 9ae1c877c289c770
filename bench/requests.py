"""What each load sends: the tenants' API keys, the files of task ids and query paths the Lua
scripts read, and the requests the paced generator sends, rendered once."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.dataset import LoadedTenant
from bench.paced import render

OPEN = ("not_started", "in_progress", "pending")
# Common words of the loaded text (each in 15% of the tasks): what a search is timed for.
SEARCH_WORDS = ("refund", "escalation", "warranty", "invoice")
# The open tasks that snooze takes: snoozed again and again, so a share is enough; the rest
# are completed, once each, in their own share per saturation round.
SNOOZE_SHARE = 0.1
PACED_REQUESTS = 5_000


@dataclass(frozen=True, slots=True)
class Keys:
    """The API keys of the tenants read from and written to."""

    lists: str
    stats: str
    commands: str


@dataclass(frozen=True, slots=True)
class RequestFiles:
    """Paths of the files the Lua scripts read (BENCH_IDS, BENCH_PATHS)."""

    read_ids: str
    command_ids: str
    snooze_ids: str
    # One share of open tasks to complete per saturation round.
    complete_ids: tuple[str, ...]
    paths: dict[str, str]


def request_files(
    scratch: Path, reads: LoadedTenant, commands: LoadedTenant, rounds: int
) -> RequestFiles:
    open_ids = [task_id for task_id, status in commands.tasks if status in OPEN]
    snoozed = max(1, int(len(open_ids) * SNOOZE_SHARE))
    to_complete = open_ids[snoozed:]
    share = len(to_complete) // rounds
    return RequestFiles(
        read_ids=task_ids_file(scratch / "read-ids", reads),
        command_ids=_write(scratch / "command-ids", [task_id for task_id, _ in commands.tasks]),
        snooze_ids=_write(scratch / "snooze-ids", open_ids[:snoozed]),
        complete_ids=tuple(
            _write(scratch / f"complete-ids-{n}", to_complete[n * share : (n + 1) * share])
            for n in range(rounds)
        ),
        paths={name: _write(scratch / name, paths) for name, paths in query_paths().items()},
    )


def task_ids_file(path: Path, tenant: LoadedTenant) -> str:
    """The tenant's task ids, one a line, for GET by id (BENCH_IDS)."""
    return _write(path, [task_id for task_id, _ in tenant.tasks])


def query_paths(now: datetime | None = None) -> dict[str, list[str]]:
    """The reads, by figure: lists with filters, searches (a mix, and the common words
    alone), stats, and analytics without and with a period."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    week = _instant(now + timedelta(days=7))
    today = _instant(now)
    month_ago = (now - timedelta(days=30)).date()
    week_ago = (now - timedelta(days=7)).date()
    analytics = ["/v1/tasks/analytics", "/v1/tasks/analytics?ownerId=agent_009"]
    periods = [
        f"/v1/tasks/analytics?startDate={month_ago}",
        f"/v1/tasks/analytics?startDate={month_ago}&endDate={week_ago}",
        # Off whole days at both ends.
        f"/v1/tasks/analytics?startDate={month_ago}T13:45:10Z&endDate={week_ago}T08:12:33Z",
        f"/v1/tasks/analytics?startDate={month_ago}&endDate={week_ago}&ownerId=agent_009",
    ]
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
        "common-word": [search_path(word) for word in SEARCH_WORDS],
        "stats": ["/v1/tasks/stats", "/v1/tasks/stats?ownerId=agent_005"],
        "analytics": analytics,
        "analytics-period": periods,
        "analytics-mix": analytics + periods,
    }


def search_path(word: str) -> str:
    return f"/v1/tasks?search={word}"


def paced_gets(reads: LoadedTenant, api_key: str, seed: int = 11) -> list[str]:
    """GET /v1/tasks/{id} of random tasks, as the paced generator sends them."""
    rng = random.Random(seed)
    ids = [task_id for task_id, _ in reads.tasks]
    count = min(PACED_REQUESTS, len(ids))
    return [render("GET", f"/v1/tasks/{task_id}", api_key) for task_id in rng.sample(ids, count)]


def paced_creates(api_key: str) -> list[str]:
    """POST /v1/tasks with the body bench/lua/create_task.lua sends."""
    return [
        render(
            "POST",
            "/v1/tasks",
            api_key,
            f'{{"title": "Call back customer {n}", "priority": "high", '
            f'"dueDate": "2031-04-15T10:00:00Z", "ownerId": "agent_{n % 50:03d}", '
            f'"ownerName": "Agent", "relatedCustomerId": "cust_{n % 2000}", '
            f'"tags": ["followup"], "metadata": {{"orderId": "ord_{n}"}}}}',
        )
        for n in range(PACED_REQUESTS)
    ]


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)
