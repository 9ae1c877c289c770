"""GET /v1/tasks/stats and GET /v1/tasks/analytics: exactly the reference's figures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import figures
from projections.registry import ROLLUPS
from projections.runner import catch_up
from tests.api.task_api import TaskApi, moment, now, timestamp
from tests.integration.projection_support import caught_up, wait_until

STATS_FIELDS = {"total", "overdue", "dueToday", "completedThisWeek", "inProgress"}
ANALYTICS_FIELDS = {
    "totalTasks",
    "completedTasks",
    "overdueTasks",
    "avgCompletionTime",
    "statusDistribution",
    "priorityDistribution",
    "agentPerformance",
}
NO_STATUSES = {"not_started": 0, "in_progress": 0, "pending": 0, "completed": 0, "deferred": 0}
NO_PRIORITIES = {"low": 0, "normal": 0, "high": 0, "urgent": 0}


@pytest.fixture(autouse=True)
async def same_day_throughout() -> None:
    """Figures depend on today's date: never straddle midnight UTC (or Monday's)."""
    midnight = datetime.combine(now().date() + timedelta(days=1), time(), UTC)
    if (wait := (midnight - now()).total_seconds()) < 5:
        await asyncio.sleep(wait + 0.1)


def today_start() -> datetime:
    return datetime.combine(now().date(), time(), UTC)


def today_at(hour: int, minute: int = 0, days: int = 0) -> str:
    day = now().date() + timedelta(days=days)
    return timestamp(datetime.combine(day, time(hour, minute), UTC))


async def stats(tasks: TaskApi, **params: Any) -> dict[str, Any]:
    return await tasks.list("/v1/tasks/stats", **params)


async def analytics(tasks: TaskApi, **params: Any) -> dict[str, Any]:
    return await tasks.list("/v1/tasks/analytics", **params)


async def test_stats_of_a_tenant_without_tasks_are_zero(tasks: TaskApi) -> None:
    assert await stats(tasks) == dict.fromkeys(STATS_FIELDS, 0)


async def test_stats_count_totals_overdue_due_today_completed_and_in_progress(
    tasks: TaskApi,
) -> None:
    yesterday = today_at(12, 0, days=-1)
    await tasks.create(title="overdue", dueDate=yesterday, status="in_progress")
    await tasks.create(title="closed overdue", dueDate=yesterday, status="deferred")
    await tasks.create(title="due early today", dueDate=today_at(0, 0))
    await tasks.create(title="due late today", dueDate=today_at(23, 59))
    await tasks.create(title="completed due today", dueDate=today_at(23, 59), status="completed")
    await tasks.create(title="due tomorrow", dueDate=today_at(0, 0, days=1), status="pending")
    await tasks.create(title="due yesterday", dueDate=today_at(23, 59, days=-1))
    await tasks.create(title="in progress", status="in_progress")
    completed = await tasks.create(title="completed later")
    await tasks.act(completed["_id"], "complete")

    figures = await stats(tasks)

    assert set(figures) == STATS_FIELDS
    assert figures["total"] == 9
    assert figures["overdue"] == 3
    assert figures["dueToday"] == 2
    assert figures["completedThisWeek"] == 2
    assert figures["inProgress"] == 2


async def test_stats_follow_changes_to_the_tasks(tasks: TaskApi) -> None:
    reopened = await tasks.create(status="completed")
    deleted = await tasks.create(status="in_progress")

    await tasks.update("PATCH", reopened["_id"], {"status": "in_progress"})
    await tasks.call("DELETE", f"/v1/tasks/{deleted['_id']}")

    figures = await stats(tasks)
    assert (figures["total"], figures["completedThisWeek"], figures["inProgress"]) == (1, 0, 1)


async def test_stats_can_be_limited_to_one_owner(tasks: TaskApi) -> None:
    await tasks.create(ownerId="agent_1", status="in_progress")
    await tasks.create(ownerId="agent_1", status="completed")
    await tasks.create(ownerId="agent_2", status="in_progress")
    await tasks.create(status="in_progress")

    figures = await stats(tasks, ownerId="agent_1")

    assert figures == {
        "total": 2,
        "overdue": 0,
        "dueToday": 0,
        "completedThisWeek": 1,
        "inProgress": 1,
    }


async def move_due_dates_every_way(tasks: TaskApi) -> None:
    """Tasks whose due dates or open statuses changed every way they can: five end overdue,
    one of them due earlier today, one agent_1's and one agent_2's."""
    three_days_ago, two_days_ago = today_at(9, 0, days=-3), today_at(9, 0, days=-2)
    yesterday, tomorrow = today_at(12, 0, days=-1), today_at(12, 0, days=1)
    snoozed = await tasks.create(title="snoozed away", dueDate=three_days_ago)
    await tasks.act(snoozed["_id"], "snooze", {"newDueDate": tomorrow})
    brought_forward = await tasks.create(title="brought forward", dueDate=tomorrow)
    await tasks.update("PATCH", brought_forward["_id"], {"dueDate": two_days_ago})
    undated = await tasks.create(title="no longer dated", dueDate=yesterday)
    await tasks.update("PATCH", undated["_id"], {"dueDate": None})
    reopened = await tasks.create(title="reopened", dueDate=yesterday, ownerId="agent_1")
    await tasks.act(reopened["_id"], "complete")
    await tasks.update("PATCH", reopened["_id"], {"status": "in_progress"})
    handed_over = await tasks.create(title="handed over", dueDate=yesterday, ownerId="agent_1")
    await tasks.act(handed_over["_id"], "reassign", {"newOwnerId": "agent_2"})
    deleted = await tasks.create(title="deleted", dueDate=yesterday)
    await tasks.call("DELETE", f"/v1/tasks/{deleted['_id']}")
    deferred = await tasks.create(title="deferred", dueDate=yesterday)
    await tasks.update("PATCH", deferred["_id"], {"status": "deferred"})
    # Late yesterday in UTC, though "today" where it was written.
    await tasks.create(title="offset", dueDate=timestamp(today_start() - timedelta(minutes=30)))
    await tasks.create(title="earlier today", dueDate=today_at(0, 0))


async def test_overdue_and_due_today_follow_due_dates_as_they_move(
    tasks: TaskApi, engine: AsyncEngine
) -> None:
    """Every way a due date or an open status changes moves the counts, whether the rollups
    have applied the change yet or it is folded in at read time."""
    await move_due_dates_every_way(tasks)

    async def figures() -> tuple[Any, ...]:
        everyone, agent_1, agent_2 = (
            await stats(tasks),
            await stats(tasks, ownerId="agent_1"),
            await stats(tasks, ownerId="agent_2"),
        )
        return (
            (everyone["overdue"], everyone["dueToday"]),
            (agent_1["overdue"], agent_2["overdue"]),
            (await analytics(tasks))["overdueTasks"],
            (await analytics(tasks, ownerId="agent_2"))["overdueTasks"],
        )

    expected = ((5, 1), (1, 1), 5, 1)
    assert await figures() == expected

    async def rollups_applied() -> bool:
        # The API's tests run no projection runner: the rollups are brought up to date here.
        await catch_up(engine, ROLLUPS)
        return await caught_up(engine)

    await wait_until(rollups_applied)
    assert await figures() == expected


async def test_the_overdue_tasks_of_a_period_are_those_created_in_it(
    tasks: TaskApi, engine: AsyncEngine
) -> None:
    """Over whole days, part days and both, with one owner or all, before and after the
    rollups apply the changes: each period that holds the tasks' creation counts the same
    overdue tasks as no period, each that does not counts none."""
    before = now() - timedelta(seconds=1)
    await move_due_dates_every_way(tasks)
    after = now() + timedelta(seconds=1)
    day = {days: str(now().date() + timedelta(days=days)) for days in (-1, 0, 1)}
    periods = [
        ({"startDate": day[0]}, 5),
        ({"startDate": day[0], "endDate": day[0]}, 5),
        ({"startDate": day[-1], "endDate": day[1]}, 5),
        ({"startDate": timestamp(before)}, 5),
        ({"endDate": timestamp(after)}, 5),
        ({"startDate": timestamp(before), "endDate": timestamp(after)}, 5),
        ({"startDate": day[-1], "endDate": timestamp(after)}, 5),
        ({"startDate": day[0], "ownerId": "agent_2"}, 1),
        ({"startDate": day[0], "ownerId": "agent_1"}, 1),
        ({"startDate": day[1]}, 0),
        ({"endDate": day[-1]}, 0),
        ({"startDate": timestamp(after)}, 0),
        ({"endDate": timestamp(before)}, 0),
    ]

    async def overdue() -> list[int]:
        return [(await analytics(tasks, **period))["overdueTasks"] for period, _ in periods]

    expected = [count for _, count in periods]
    assert (await analytics(tasks))["overdueTasks"] == 5
    assert await overdue() == expected

    async def rollups_applied() -> bool:
        await catch_up(engine, ROLLUPS)
        return await caught_up(engine)

    await wait_until(rollups_applied)
    assert await overdue() == expected


async def test_figures_the_rollups_are_too_far_behind_for_are_refused_503(
    tasks: TaskApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No runner applies the tenant's events here: they all wait to be folded in at read time.
    monkeypatch.setattr(figures, "PENDING_EVENTS_MAX", 2)
    for _ in range(2):
        await tasks.create()
    assert (await tasks.call("GET", "/v1/tasks/stats")).status_code == 200
    await tasks.create()

    for path in ("/v1/tasks/stats", "/v1/tasks/analytics"):
        response = await tasks.call("GET", path)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "ServiceUnavailableError"


async def test_analytics_of_a_tenant_without_tasks_name_every_status_and_priority(
    tasks: TaskApi,
) -> None:
    assert await analytics(tasks) == {
        "totalTasks": 0,
        "completedTasks": 0,
        "overdueTasks": 0,
        "avgCompletionTime": None,
        "statusDistribution": NO_STATUSES,
        "priorityDistribution": NO_PRIORITIES,
        "agentPerformance": [],
    }


async def test_analytics_count_tasks_by_status_priority_and_agent(tasks: TaskApi) -> None:
    past = timestamp(now() - timedelta(hours=1))
    await tasks.create(ownerId="agent_a", ownerName="Ann", priority="high")
    for _ in range(3):
        await tasks.create(ownerId="agent_b", ownerName="Bob", status="completed")
    await tasks.create(ownerId="agent_c", ownerName="Cy", status="pending", dueDate=past)
    await tasks.create(ownerId="agent_c", ownerName="Cy", priority="urgent", status="in_progress")
    await tasks.create(priority="low", status="deferred", dueDate=past)

    figures = await analytics(tasks)

    assert set(figures) == ANALYTICS_FIELDS
    assert (figures["totalTasks"], figures["completedTasks"], figures["overdueTasks"]) == (7, 3, 1)
    assert figures["statusDistribution"] == {
        "not_started": 1,
        "in_progress": 1,
        "pending": 1,
        "completed": 3,
        "deferred": 1,
    }
    assert figures["priorityDistribution"] == {"low": 1, "normal": 4, "high": 1, "urgent": 1}
    assert figures["agentPerformance"] == [
        {"agentId": "agent_b", "agentName": "Bob", "total": 3, "completed": 3},
        {"agentId": "agent_c", "agentName": "Cy", "total": 2, "completed": 0},
        {"agentId": "agent_a", "agentName": "Ann", "total": 1, "completed": 0},
    ]


async def test_a_short_average_completion_time_is_in_hours_and_never_zero(
    tasks: TaskApi,
) -> None:
    task = await tasks.create()
    await asyncio.sleep(0.05)
    completed = (await tasks.act(task["_id"], "complete"))["task"]
    await tasks.create()

    average = (await analytics(tasks))["avgCompletionTime"]

    took = moment(completed["completedAt"]) - moment(completed["created_at"])
    hours = took.total_seconds() / 3600
    assert 0 < average == float(f"{hours:.3g}")


@pytest.mark.parametrize(
    ("total_ms", "tasks", "shown"),
    [
        (12_000, 1, 0.00333),
        (45 * 3_600_000, 10, 4.5),
        (4_444_444_444, 1, 1234.57),
        (1, 1_000_000, 2.78e-13),
        (0, 3, 0.0),
    ],
)
def test_an_average_is_rounded_to_two_decimals_or_three_significant_digits(
    total_ms: int, tasks: int, shown: float
) -> None:
    assert figures.average_hours(total_ms, tasks) == shown


async def test_analytics_follow_reopenings(tasks: TaskApi) -> None:
    task = await tasks.create(ownerId="agent_a", status="completed")
    await tasks.update("PATCH", task["_id"], {"status": "pending"})

    figures = await analytics(tasks)

    assert figures["completedTasks"] == 0
    assert figures["avgCompletionTime"] is None
    assert figures["statusDistribution"] == {**NO_STATUSES, "pending": 1}
    assert figures["agentPerformance"] == [
        {"agentId": "agent_a", "agentName": None, "total": 1, "completed": 0}
    ]


async def test_an_agent_whose_tasks_were_all_reassigned_is_not_listed(tasks: TaskApi) -> None:
    task = await tasks.create(ownerId="agent_a")
    await tasks.act(task["_id"], "reassign", {"newOwnerId": "agent_b", "newOwnerName": "Bob"})

    figures = await analytics(tasks)

    assert figures["agentPerformance"] == [
        {"agentId": "agent_b", "agentName": "Bob", "total": 1, "completed": 0}
    ]


async def test_a_task_that_leaves_its_owner_unnamed_does_not_erase_the_name(
    tasks: TaskApi,
) -> None:
    await tasks.create(ownerId="agent_x", ownerName="Xavier")
    await tasks.create(ownerId="agent_x")

    figures = await analytics(tasks)

    assert figures["agentPerformance"] == [
        {"agentId": "agent_x", "agentName": "Xavier", "total": 2, "completed": 0}
    ]


async def test_analytics_can_be_limited_to_one_owner(tasks: TaskApi) -> None:
    await tasks.create(ownerId="agent_a", status="completed")
    await tasks.create(ownerId="agent_b")

    figures = await analytics(tasks, ownerId="agent_a")

    assert (figures["totalTasks"], figures["completedTasks"]) == (1, 1)
    assert [agent["agentId"] for agent in figures["agentPerformance"]] == ["agent_a"]


async def test_analytics_list_the_first_agents_up_to_the_limit(tasks: TaskApi) -> None:
    for owner, count in (("agent_a", 1), ("agent_b", 3), ("agent_c", 2)):
        for _ in range(count):
            await tasks.create(ownerId=owner)

    figures = await analytics(tasks, limit=2)

    assert figures["totalTasks"] == 6
    assert [agent["agentId"] for agent in figures["agentPerformance"]] == ["agent_b", "agent_c"]


@pytest.mark.parametrize("limit", ["0", "5001", "all"])
async def test_an_agents_limit_outside_1_to_5000_is_refused(tasks: TaskApi, limit: str) -> None:
    response = await tasks.call("GET", "/v1/tasks/analytics", params={"limit": limit})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert error["details"][0].startswith("limit"), error


@pytest.mark.parametrize(
    ("period", "counted"),
    [
        ({"startDate": 0}, True),
        ({"endDate": 0}, True),
        ({"startDate": 0, "endDate": 0}, True),
        ({"startDate": -1, "endDate": -1}, False),
        ({"startDate": 1}, False),
        ({"endDate": -1}, False),
        ({"startDate": -7, "endDate": 7}, True),
    ],
)
async def test_a_bare_date_in_the_period_covers_its_whole_day(
    tasks: TaskApi, period: dict[str, int], counted: bool
) -> None:
    await tasks.create(status="completed")
    params = {name: str(now().date() + timedelta(days=days)) for name, days in period.items()}

    figures = await analytics(tasks, **params)

    assert (figures["totalTasks"], figures["completedTasks"]) == ((1, 1) if counted else (0, 0))


async def test_a_period_of_date_times_bounds_the_creation_time(tasks: TaskApi) -> None:
    before = now() - timedelta(seconds=1)
    await tasks.create(ownerId="agent_a")
    after = now() + timedelta(seconds=1)

    assert (await analytics(tasks, startDate=timestamp(before)))["totalTasks"] == 1
    assert (await analytics(tasks, startDate=timestamp(after)))["totalTasks"] == 0
    assert (await analytics(tasks, endDate=timestamp(before)))["totalTasks"] == 0
    assert (await analytics(tasks, endDate=timestamp(after)))["totalTasks"] == 1
    within = await analytics(tasks, startDate=timestamp(before), endDate=timestamp(after))
    assert within["agentPerformance"] == [
        {"agentId": "agent_a", "agentName": None, "total": 1, "completed": 0}
    ]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-04-02", "2026-04-01"),
        ("2026-04-01T12:00:00Z", "2026-04-01T11:59:59Z"),
        ("2026-04-02T00:00:00Z", "2026-04-01"),
    ],
)
async def test_a_period_that_starts_after_it_ends_is_refused_naming_both_dates(
    tasks: TaskApi, start: str, end: str
) -> None:
    response = await tasks.call(
        "GET", "/v1/tasks/analytics", params={"startDate": start, "endDate": end}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    [detail] = error["details"]
    assert "startDate" in detail and "endDate" in detail


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-04-01", "2026-04-01"),
        ("2026-04-01T23:59:59Z", "2026-04-01"),
        ("2026-04-01T12:00:00Z", "2026-04-01T12:00:00Z"),
    ],
)
async def test_a_period_that_ends_where_it_starts_is_answered(
    tasks: TaskApi, start: str, end: str
) -> None:
    figures = await analytics(tasks, startDate=start, endDate=end)

    assert figures["totalTasks"] == 0


@pytest.mark.parametrize("path", ["/v1/tasks/stats", "/v1/tasks/analytics"])
async def test_an_empty_owner_id_names_no_owner_and_is_refused(tasks: TaskApi, path: str) -> None:
    await tasks.create(dueDate=today_at(0, 0, days=-1))

    response = await tasks.call("GET", path, params={"ownerId": ""})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert any(detail.startswith("ownerId") for detail in error["details"]), error


@pytest.mark.parametrize("param", ["startDate", "endDate"])
async def test_an_invalid_period_is_rejected(tasks: TaskApi, param: str) -> None:
    response = await tasks.call("GET", "/v1/tasks/analytics", params={param: "last week"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert error["details"] == [f"{param} must be an RFC 3339 date-time or a date"]
