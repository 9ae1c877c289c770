"""An analyst given only the README and the docs answers the business questions right from
their own role: a tenant populated through the API (updates, snoozes, reassignments,
completions with auto-completions and reopenings, deletions), the questions asked with the
very SQL of docs/analytics.md from a tenant analyst's role in three session time zones, and
each answer checked against a recomputation from `tasks-api audit export` and against the
API's own figures.

The auto-complete sweep and the rollups work on the whole database: this module has one of
its own."""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from click.testing import CliRunner, Result
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app import tenants
from app.auto_complete import complete_due_tasks
from app.cli import main
from app.database import create_engine, open_database
from app.http.app import create_app
from app.published_events import AuditEvent
from app.settings import Settings
from domain.evolve import evolve
from domain.task import CLOSED_STATUSES, Priority, Status, Task
from projections.figures import average_hours
from tests.api.task_api import TaskApi, timestamp
from tests.conftest import Tenant
from tests.database import migrated_database
from tests.integration.projection_support import apply_rollups

ANALYTICS_PAGE = Path(__file__).parents[2] / "docs" / "analytics.md"
QUESTION = re.compile(r"^```sql ([a-z-]+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# UTC, the zone furthest ahead and the one furthest behind: at any moment at least one of the
# last two is on another calendar day than UTC.
ZONES = ("UTC", "Pacific/Kiritimati", "Etc/GMT+12")
TASKS = 120
AGENTS = ("agent_1", "agent_2", "agent_3", "agent_4")
MS_PER_HOUR = 3_600_000


def questions() -> dict[str, str]:
    """The eight questions' SQL, as docs/analytics.md writes it."""
    return dict(QUESTION.findall(ANALYTICS_PAGE.read_text()))


def now() -> datetime:
    return datetime.now(UTC)


def cli(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url})


@pytest.fixture(scope="module")
def questions_database_url(database_url: str) -> Iterator[str]:
    with migrated_database(database_url) as url:
        yield url


@pytest.fixture(scope="module")
async def engine(questions_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(questions_database_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def api(questions_database_url: str) -> AsyncIterator[AsyncTestClient]:
    app = create_app(Settings(database_url=questions_database_url, run_projections=False))
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        yield client


@dataclass(frozen=True)
class Populated:
    tenant_id: str
    tasks: TaskApi


async def away_from_midnight() -> None:
    """Days and weeks turn at midnight UTC: never straddle it."""
    midnight = datetime.combine(now().date() + timedelta(days=1), time(), UTC)
    if (wait := (midnight - now()).total_seconds()) < 120:
        await asyncio.sleep(wait + 1)


async def populate(tasks: TaskApi, rng: random.Random) -> None:
    """Tasks as a team works them, each step through the API."""
    start = now()
    today = datetime.combine(start.date(), time(), UTC)
    due_dates = [
        None,
        start - timedelta(days=3),
        start - timedelta(hours=30),
        today + (start - today) / 2,  # earlier today: due today and overdue
        start + (today + timedelta(days=1) - start) / 2,  # later today: due today
        start + timedelta(days=3),
    ]
    for number in range(TASKS):
        owner = rng.choice([None, *AGENTS])
        fields: dict[str, Any] = {
            "title": f"Task {number}",
            "priority": rng.choice(list(Priority)),
            "status": rng.choice(["not_started"] * 5 + ["in_progress", "pending", "completed"]),
            "queueId": rng.choice([None, "q-sales", "q-support"]),
        }
        if owner is not None:
            fields["ownerId"] = owner
            if rng.random() < 0.7:
                fields["ownerName"] = f"Agent {owner[-1]}"
        if (due := rng.choice(due_dates)) is not None:
            fields["dueDate"] = timestamp(due)
        automatic = fields["status"] != "completed" and rng.random() < 0.1
        if automatic:
            fields["autoComplete"] = {"at": timestamp(start - timedelta(hours=1))}
        task = await tasks.create(**fields)
        await work_on(tasks, rng, task, automatic)


async def work_on(
    tasks: TaskApi, rng: random.Random, task: dict[str, Any], automatic: bool
) -> None:
    task_id, status = task["_id"], task["status"]
    if rng.random() < 0.3:
        await tasks.update("PATCH", task_id, {"priority": rng.choice(list(Priority))})
    if status != "completed":
        for days in range(rng.choice([0, 0, 1, 2, 3])):
            due = timestamp(now() + timedelta(days=days + 1))
            await tasks.act(task_id, "snooze", {"newDueDate": due})
    if rng.random() < 0.3:
        owner = rng.choice(AGENTS)
        if rng.random() < 0.5:
            await tasks.act(task_id, "reassign", {"newOwnerId": owner})
        else:
            await tasks.update("PATCH", task_id, {"ownerId": rng.choice([None, owner])})
    if not automatic and status not in ("completed", "deferred"):
        if rng.random() < 0.4:
            status = await complete(tasks, rng, task_id)
        elif rng.random() < 0.1:
            status = (await tasks.update("PATCH", task_id, {"status": "deferred"}))["status"]
    if status == "completed" and rng.random() < 0.3:
        await tasks.update("PATCH", task_id, {"status": "in_progress"})
        if rng.random() < 0.5:
            await complete(tasks, rng, task_id)
    if rng.random() < 0.1:
        assert (await tasks.call("DELETE", f"/v1/tasks/{task_id}")).status_code == 200


async def complete(tasks: TaskApi, rng: random.Random, task_id: str) -> str:
    outcome = rng.choice(["resolved", "no_answer", "escalated"])
    if rng.random() < 0.5:
        task = (await tasks.act(task_id, "complete", {"outcome": outcome}))["task"]
    else:
        task = await tasks.update("PATCH", task_id, {"status": "completed", "outcome": outcome})
    return str(task["status"])


@pytest.fixture(scope="module")
async def populated(
    api: AsyncTestClient, engine: AsyncEngine, questions_database_url: str
) -> Populated:
    await away_from_midnight()
    async with engine.begin() as conn:
        # A team's day of work in a few seconds: more than the starter tier's rate.
        issued = await tenants.create_tenant(conn, "analysed", "enterprise")
    tenant = Tenant(issued.tenant_id, issued.key_id, issued.api_key)
    tasks = TaskApi(api, tenant)
    await populate(tasks, random.Random(15))
    async with open_database(questions_database_url, pool_size=1) as db:
        await complete_due_tasks(db)
    await apply_rollups(engine)
    return Populated(tenant.tenant_id, tasks)


@dataclass
class Truth:
    """The answers, recomputed from the tenant's exported log."""

    events: list[AuditEvent]
    live: dict[str, Task]

    @classmethod
    def of(cls, lines: list[bytes]) -> Truth:
        decoder = msgspec.json.Decoder(AuditEvent)
        events = [decoder.decode(line) for line in lines]
        tasks: dict[str, Task | None] = {}
        for event in events:
            recorded = event.recorded()
            tasks[event.task_id] = evolve(
                tasks.get(event.task_id), recorded.decode(), recorded.recorded_at
            )
        return cls(events, {task_id: task for task_id, task in tasks.items() if task})

    def of_type(self, event_type: str) -> list[AuditEvent]:
        return [event for event in self.events if event.type == event_type]

    def open(self) -> list[Task]:
        return [task for task in self.live.values() if task.status not in CLOSED_STATUSES]

    def answers(self, at: datetime) -> dict[str, Any]:
        today = datetime.combine(at.date(), time(), UTC)
        monday = today - timedelta(days=today.weekday())
        completions = Counter(
            day_of(event.data["completedAt"]) for event in self.of_type("TASK_COMPLETED")
        )
        snoozes = Counter(event.recorded_at.date() for event in self.of_type("TASK_SNOOZED"))
        received, handed_over = Counter[str | None](), Counter[str | None]()
        for event in self.of_type("TASK_REASSIGNED"):
            received[event.data["newOwnerId"]] += 1
            handed_over[event.data["previousOwnerId"]] += 1
        completed = [task for task in self.live.values() if task.status == Status.COMPLETED]
        return {
            "completions-per-day": sorted(completions.items()),
            "snoozes-per-day": sorted(snoozes.items()),
            "reassignments-per-agent": [
                (agent, received[agent], handed_over[agent])
                for agent in sorted(received.keys() | handed_over.keys(), key=nulls_first)
            ],
            "overdue-now": [(sum(1 for t in self.open() if t.due_date and t.due_date < at),)],
            "due-today": [
                (
                    sum(
                        1
                        for task in self.open()
                        if task.due_date and today <= task.due_date < today + timedelta(days=1)
                    ),
                )
            ],
            "completed-this-week": [
                (
                    sum(1 for task in completed if task.completed_at >= monday),  # type: ignore[operator]
                    sum(day >= monday.date() for day in completions.elements()),
                )
            ],
            "tasks-by-status-and-priority": sorted(
                (status, priority, count)
                for (status, priority), count in Counter(
                    (task.status.value, task.priority.value) for task in self.live.values()
                ).items()
            ),
            "agent-performance": self.agents(),
        }

    def agents(self) -> list[tuple[Any, ...]]:
        owned: dict[str, list[Task]] = defaultdict(list)
        for task in self.live.values():
            if task.owner_id is not None:
                owned[task.owner_id].append(task)
        rows = []
        for agent, its in owned.items():
            done = [task for task in its if task.status == Status.COMPLETED]
            ms = sum(completion_ms(task) for task in done)
            average = hours(Fraction(ms, len(done) * MS_PER_HOUR)) if done else None
            rows.append((agent, self.names().get(agent), len(its), len(done), average))
        return sorted(rows, key=lambda row: (-row[2], row[0]))

    def names(self) -> dict[str, str]:
        """The name the log last gave each owner it named (an unnamed mention keeps it)."""
        names = {}
        for event in self.events:
            if event.type == "TASK_CREATED":
                owner, name = event.data["task"]["ownerId"], event.data["task"]["ownerName"]
            elif event.type == "TASK_REASSIGNED":
                owner, name = event.data["newOwnerId"], event.data["newOwnerName"]
            else:
                continue
            if owner is not None and name is not None:
                names[owner] = name
        return names


def hours(value: Fraction | Decimal) -> float:
    """Hours to nine decimals: PostgreSQL divides numerics to a finite scale."""
    return round(float(value), 9)


def day_of(moment: str) -> date:
    return msgspec.convert(moment, datetime).astimezone(UTC).date()


def nulls_first(value: str | None) -> tuple[bool, str]:
    return (value is not None, value or "")


def completion_ms(task: Task) -> int:
    assert task.completed_at is not None
    return round((task.completed_at - task.created_at).total_seconds() * 1000)


def plain(row: asyncpg.Record) -> tuple[Any, ...]:
    """A row of an answer, its sums as integers and its averages as `hours`."""
    return tuple(
        (int(value) if value == value.to_integral_value() else hours(value))
        if isinstance(value, Decimal)
        else value
        for value in row.values()
    )


async def exported(database_url: str, tenant_id: str) -> list[bytes]:
    result = await asyncio.to_thread(cli, database_url, "audit", "export", "--tenant", tenant_id)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes.splitlines()


@pytest.fixture
async def analyst_url(questions_database_url: str, populated: Populated) -> AsyncIterator[str]:
    role = f"test_analyst_{secrets.token_hex(5)}"
    made = await asyncio.to_thread(
        cli,
        questions_database_url,
        "analyst",
        "create",
        role,
        "--tenant",
        populated.tenant_id,
        "--json",
    )
    assert made.exit_code == 0, made.output
    try:
        yield json.loads(made.stdout)["url"]
    finally:
        revoked = await asyncio.to_thread(cli, questions_database_url, "analyst", "revoke", role)
        assert revoked.exit_code == 0, revoked.output


async def ask(url: str, tenant_id: str, zone: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"SET TIME ZONE '{zone}'")
        return {
            name: [plain(row) for row in await conn.fetch(sql, tenant_id)]
            for name, sql in questions().items()
        }
    finally:
        await conn.close()


def test_the_page_asks_eight_questions() -> None:
    assert list(questions()) == [
        "completions-per-day",
        "snoozes-per-day",
        "reassignments-per-agent",
        "overdue-now",
        "due-today",
        "completed-this-week",
        "tasks-by-status-and-priority",
        "agent-performance",
    ]


async def test_an_analyst_answers_the_eight_questions_as_the_log_does_in_any_time_zone(
    populated: Populated, analyst_url: str, questions_database_url: str
) -> None:
    truth = Truth.of(await exported(questions_database_url, populated.tenant_id))

    answers = {zone: await ask(analyst_url, populated.tenant_id, zone) for zone in ZONES}
    expected = truth.answers(now())

    # The history is there to count: more completions and snoozes than live tasks show.
    assert len(truth.of_type("TASK_DELETED")) > 0
    assert sum(count for _, count in expected["completions-per-day"]) > sum(
        1 for task in truth.live.values() if task.status == Status.COMPLETED
    )
    assert any(event.metadata["actor"] == "system" for event in truth.of_type("TASK_COMPLETED")), (
        "no auto-completion"
    )
    for zone in ZONES:
        assert answers[zone] == expected, zone


async def test_the_api_gives_the_figures_the_log_gives(
    populated: Populated, questions_database_url: str
) -> None:
    truth = Truth.of(await exported(questions_database_url, populated.tenant_id))
    at = now()
    stats = await populated.tasks.list("/v1/tasks/stats")
    analytics = await populated.tasks.list("/v1/tasks/analytics")
    expected = truth.answers(at)
    completed = [task for task in truth.live.values() if task.status == Status.COMPLETED]

    assert stats == {
        "total": len(truth.live),
        "overdue": expected["overdue-now"][0][0],
        "dueToday": expected["due-today"][0][0],
        "completedThisWeek": expected["completed-this-week"][0][0],
        "inProgress": sum(task.status == Status.IN_PROGRESS for task in truth.live.values()),
    }
    assert analytics["statusDistribution"] == {
        status.value: sum(task.status == status for task in truth.live.values())
        for status in Status
    }
    assert analytics["avgCompletionTime"] == average_hours(
        sum(completion_ms(task) for task in completed), len(completed)
    )
    assert analytics["agentPerformance"] == [
        {"agentId": agent, "agentName": name, "total": total, "completed": done}
        for agent, name, total, done, _ in expected["agent-performance"]
    ]
