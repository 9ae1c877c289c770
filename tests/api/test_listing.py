"""GET /v1/tasks and GET /v1/tasks/customer/{id}: filters, sorting and pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api.task_api import TASK_OBJECT_FIELDS, TaskApi, now, timestamp

PAGE_FIELDS = {"tasks", "total", "page", "limit", "totalPages"}
SORT_FIELDS = ["dueDate", "created_at", "updated_at", "priority", "status", "title"]
LISTS = ["/v1/tasks", "/v1/tasks/customer/cust_1"]


async def test_a_list_answers_a_page_of_full_task_objects(tasks: TaskApi) -> None:
    task = await tasks.create(title="Listed", tags=["t"])

    page = await tasks.list()

    assert set(page) == PAGE_FIELDS
    assert (page["total"], page["page"], page["limit"], page["totalPages"]) == (1, 1, 20, 1)
    assert page["tasks"] == [task]
    assert set(page["tasks"][0]) == TASK_OBJECT_FIELDS


async def test_an_empty_list_has_no_pages(tasks: TaskApi) -> None:
    page = await tasks.list()

    assert (page["tasks"], page["total"], page["totalPages"]) == ([], 0, 0)


@pytest.mark.parametrize("path", LISTS)
async def test_total_pages_is_the_total_divided_by_the_limit_rounded_up(
    tasks: TaskApi, path: str
) -> None:
    for n in range(5):
        await tasks.create(title=f"task {n}", relatedCustomerId="cust_1")

    pages = [await tasks.list(path, limit=2, page=page) for page in (1, 2, 3, 4)]

    assert [len(page["tasks"]) for page in pages] == [2, 2, 1, 0]
    assert {(page["total"], page["limit"], page["totalPages"]) for page in pages} == {(5, 2, 3)}
    assert [page["page"] for page in pages] == [1, 2, 3, 4]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "params",
    [
        {"page": 0},
        {"page": -1},
        {"page": "first"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "all"},
        {"limit": "1.5"},
        {"sort": "ownerId"},
        {"sortDirection": "up"},
    ],
)
async def test_an_invalid_page_or_order_is_rejected(
    tasks: TaskApi, path: str, params: dict[str, Any]
) -> None:
    response = await tasks.call("GET", path, params=params)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert any(next(iter(params)) in detail for detail in error["details"]), error


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"status": "in_progress,done"},
        {"status": "in_progress, completed"},
        {"status": "in_progress,"},
        {"status": ""},
        {"priority": "critical"},
        {"priority": "HIGH"},
        {"dueBefore": "soon"},
        {"dueAfter": "2030-13-01"},
        {"overdue": "maybe"},
        {"ownerId": "o" * 201},
    ],
)
@pytest.mark.parametrize("path", LISTS)
async def test_an_invalid_filter_is_rejected(
    tasks: TaskApi, path: str, params: dict[str, Any]
) -> None:
    response = await tasks.call("GET", path, params=params)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert any(next(iter(params)) in detail for detail in error["details"]), error


async def test_a_limit_of_100_is_allowed(tasks: TaskApi) -> None:
    assert (await tasks.list(limit=100))["limit"] == 100


@pytest.mark.parametrize(
    ("param", "fields", "value"),
    [
        ("ownerId", {"ownerId": "agent_1"}, "agent_1"),
        ("queueId", {"queueId": "queue_1"}, "queue_1"),
        ("relatedCustomerId", {"relatedCustomerId": "cust_1"}, "cust_1"),
        ("linkedEntityType", {"linkedEntity": {"type": "deal", "id": "d1"}}, "deal"),
        ("linkedEntityId", {"linkedEntity": {"type": "deal", "id": "d1"}}, "d1"),
        (
            "linkedPipelineId",
            {"linkedEntity": {"type": "deal", "id": "d1", "pipelineId": "pipe_1"}},
            "pipe_1",
        ),
    ],
)
async def test_a_list_filters_by_an_exact_value(
    tasks: TaskApi, param: str, fields: dict[str, Any], value: str
) -> None:
    await tasks.create(title="match", **fields)
    await tasks.create(
        title="other",
        ownerId="agent_2",
        queueId="queue_2",
        relatedCustomerId="cust_2",
        linkedEntity={"type": "lead", "id": "l1", "pipelineId": "pipe_2"},
    )
    await tasks.create(title="bare")

    assert await tasks.titles(**{param: value}) == ["match"]


async def test_status_takes_a_comma_separated_list(tasks: TaskApi) -> None:
    for status in ("not_started", "in_progress", "pending", "deferred", "completed"):
        await tasks.create(title=status, status=status)

    assert await tasks.titles(status="pending") == ["pending"]
    assert sorted(await tasks.titles(status="in_progress,completed")) == [
        "completed",
        "in_progress",
    ]


async def test_priority_takes_a_comma_separated_list(tasks: TaskApi) -> None:
    for priority in ("low", "normal", "high", "urgent"):
        await tasks.create(title=priority, priority=priority)

    assert await tasks.titles(priority="high,urgent", sort="priority") == ["high", "urgent"]


async def test_filters_combine(tasks: TaskApi) -> None:
    await tasks.create(title="match", ownerId="agent_1", priority="high", status="pending")
    await tasks.create(title="wrong owner", ownerId="agent_2", priority="high", status="pending")
    await tasks.create(title="wrong priority", ownerId="agent_1", status="pending")
    await tasks.create(title="wrong status", ownerId="agent_1", priority="high")

    assert await tasks.titles(ownerId="agent_1", priority="high", status="pending") == ["match"]


async def test_due_before_and_due_after_bound_the_due_date(tasks: TaskApi) -> None:
    for month in ("01", "02", "03"):
        await tasks.create(title=month, dueDate=f"2030-{month}-01T00:00:00Z")
    await tasks.create(title="undated")

    assert await tasks.titles(dueBefore="2030-02-01T00:00:00Z") == ["01"]
    assert await tasks.titles(dueAfter="2030-02-01T00:00:00Z") == ["03"]
    assert await tasks.titles(dueAfter="2030-01-15T00:00:00Z", dueBefore="2030-02-15") == ["02"]


async def test_a_due_bound_is_read_in_its_offset(tasks: TaskApi) -> None:
    await tasks.create(title="ten", dueDate="2030-01-01T10:00:00Z")

    assert await tasks.titles(dueBefore="2030-01-01T10:30:00Z") == ["ten"]
    assert await tasks.titles(dueBefore="2030-01-01T10:30:00+01:00") == []


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/v1/tasks", "dueBefore", "2030-01-01T10:30:00"),
        ("/v1/tasks", "dueAfter", "2030-01-01T10:30:00.250"),
        ("/v1/tasks/{task_id}", "asOf", "2030-01-01T10:30:00"),
        ("/v1/tasks/analytics", "startDate", "2030-01-01T00:00:00"),
        ("/v1/tasks/analytics", "endDate", "2030-01-31T23:59:59.5"),
    ],
)
async def test_a_time_without_an_offset_is_refused_naming_the_parameter(
    tasks: TaskApi, path: str, name: str, value: str
) -> None:
    task = await tasks.create()

    response = await tasks.call("GET", path.format(task_id=task["_id"]), params={name: value})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        f"{name} must give its offset from UTC (Z or +hh:mm)"
    ]


async def test_overdue_lists_open_tasks_due_before_now(tasks: TaskApi) -> None:
    past = timestamp(now() - timedelta(hours=1))
    future = timestamp(now() + timedelta(hours=1))
    for status in ("not_started", "in_progress", "pending", "completed", "deferred"):
        await tasks.create(title=f"past {status}", status=status, dueDate=past)
    await tasks.create(title="future", dueDate=future)
    await tasks.create(title="undated")

    overdue = await tasks.titles(overdue="true", sort="title")

    assert overdue == ["past in_progress", "past not_started", "past pending"]
    assert len(await tasks.titles(overdue="false")) == 7


async def test_search_is_a_case_insensitive_substring_of_title_or_description(
    tasks: TaskApi,
) -> None:
    await tasks.create(title="Call about the INVOICE")
    await tasks.create(title="Follow up", description="Customer asked for an invoice copy")
    await tasks.create(title="Unrelated", description="Nothing here")

    found = await tasks.titles(search="Invoic", sort="title")

    assert found == ["Call about the INVOICE", "Follow up"]


async def test_a_task_matching_in_title_and_description_is_found_and_counted_once(
    tasks: TaskApi,
) -> None:
    both = await tasks.create(title="Refund request", description="Customer wants a refund")
    await tasks.create(title="Refund only in the title")
    await tasks.create(title="Other", description="refund only in the description")

    found = await tasks.list(search="refund", sort="title")

    assert found["total"] == 3
    assert [task["title"] for task in found["tasks"]] == [
        "Other",
        "Refund only in the title",
        "Refund request",
    ]
    assert sum(task["_id"] == both["_id"] for task in found["tasks"]) == 1


async def test_search_folds_the_case_of_letters_beyond_ascii(tasks: TaskApi) -> None:
    await tasks.create(title="Überweisung prüfen", description="Rückruf beim KUNDEN")
    await tasks.create(title="Ueberweisung", description="Rueckruf")

    assert await tasks.titles(search="üBERW") == ["Überweisung prüfen"]
    assert await tasks.titles(search="RÜCKRUF") == ["Überweisung prüfen"]
    assert await tasks.titles(search="kunden") == ["Überweisung prüfen"]


async def test_a_search_follows_every_command_on_its_matches(tasks: TaskApi) -> None:
    renamed = await tasks.create(title="Quarterly review", description="first draft")
    other = await tasks.create(title="Other", description="mentions the review")

    await tasks.update("PATCH", renamed["_id"], {"title": "Budget", "description": "revised"})
    assert await tasks.titles(search="review") == ["Other"]
    assert await tasks.titles(search="revised") == ["Budget"]

    await tasks.update("PATCH", other["_id"], {"status": "in_progress"})
    assert await tasks.titles(search="review", status="in_progress") == ["Other"]
    assert await tasks.titles(search="review", status="not_started") == []

    response = await tasks.call("DELETE", f"/v1/tasks/{other['_id']}")
    assert response.status_code == 200, response.text
    assert (await tasks.list(search="review"))["total"] == 0


async def test_a_search_counts_all_its_matches_on_every_page_and_past_the_last(
    tasks: TaskApi,
) -> None:
    for n in range(5):
        await tasks.create(title=f"Match {n}", description="the word is in the title")
    await tasks.create(title="Other", description="a match in the description")
    await tasks.create(title="Unrelated")

    pages = [await tasks.list(search="match", limit=2, page=page) for page in (1, 2, 3, 4, 5)]

    assert [len(page["tasks"]) for page in pages] == [2, 2, 2, 0, 0]
    assert {(page["total"], page["totalPages"]) for page in pages} == {(6, 3)}
    assert len({task["_id"] for page in pages for task in page["tasks"]}) == 6


@pytest.mark.parametrize(
    ("search", "expected"),
    [("%", ["100% done"]), ("_", ["snake_case"]), ("0%", ["100% done"]), ("\\", ["back\\slash"])],
)
async def test_search_takes_wildcard_characters_literally(
    tasks: TaskApi, search: str, expected: list[str]
) -> None:
    for title in ("100% done", "100 done", "snake_case", "snakeXcase", "back\\slash"):
        await tasks.create(title=title)

    assert await tasks.titles(search=search) == expected


async def test_tasks_sort_by_due_date_ascending_by_default_with_undated_last(
    tasks: TaskApi,
) -> None:
    due_dates = {
        "c": "2030-03-01T00:00:00Z",
        "none": None,
        "a": "2030-01-01T00:00:00Z",
        "b": "2030-02-01T00:00:00Z",
    }
    for title, due in due_dates.items():
        await tasks.create(title=title, dueDate=due)

    assert await tasks.titles() == ["a", "b", "c", "none"]
    assert await tasks.titles(sortDirection="desc") == ["c", "b", "a", "none"]


async def test_priority_sorts_by_urgency_not_by_name(tasks: TaskApi) -> None:
    for priority in ("high", "low", "urgent", "normal"):
        await tasks.create(title=priority, priority=priority)

    assert await tasks.titles(sort="priority") == ["low", "normal", "high", "urgent"]
    assert await tasks.titles(sort="priority", sortDirection="desc") == [
        "urgent",
        "high",
        "normal",
        "low",
    ]


async def test_title_sorts_alphabetically(tasks: TaskApi) -> None:
    for title in ("banana", "cherry", "apple"):
        await tasks.create(title=title)

    assert await tasks.titles(sort="title") == ["apple", "banana", "cherry"]
    assert await tasks.titles(sort="title", sortDirection="desc") == ["cherry", "banana", "apple"]


async def test_status_sorts_one_way_and_the_other(tasks: TaskApi) -> None:
    for status in ("pending", "completed", "in_progress"):
        await tasks.create(title=status, status=status)

    ascending = await tasks.titles(sort="status")

    assert ascending == ["completed", "in_progress", "pending"]
    assert await tasks.titles(sort="status", sortDirection="desc") == ascending[::-1]


async def test_created_at_sorts_by_creation(tasks: TaskApi) -> None:
    for title in ("first", "second", "third"):
        await tasks.create(title=title)

    assert await tasks.titles(sort="created_at") == ["first", "second", "third"]
    assert await tasks.titles(sort="created_at", sortDirection="desc") == [
        "third",
        "second",
        "first",
    ]


async def test_updated_at_sorts_by_the_last_change(tasks: TaskApi) -> None:
    created = [await tasks.create(title=title) for title in ("first", "second", "third")]
    await tasks.update("PATCH", created[0]["_id"], {"priority": "high"})

    assert await tasks.titles(sort="updated_at") == ["second", "third", "first"]
    assert await tasks.titles(sort="updated_at", sortDirection="desc") == [
        "first",
        "third",
        "second",
    ]


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("sort", SORT_FIELDS)
async def test_paging_through_a_sorted_list_returns_every_task_exactly_once(
    tasks: TaskApi, sort: str, direction: str
) -> None:
    # Many ties on every sort field: only the id can tell these tasks apart.
    created = [
        await tasks.create(
            title="same" if n % 2 else "other",
            priority="high" if n % 3 else "low",
            dueDate=None if n % 4 == 0 else "2030-01-01T00:00:00Z",
        )
        for n in range(7)
    ]

    seen = [
        task["_id"]
        for page in (1, 2, 3)
        for task in (await tasks.list(sort=sort, sortDirection=direction, limit=3, page=page))[
            "tasks"
        ]
    ]

    assert sorted(seen) == sorted(task["_id"] for task in created)


async def test_ties_are_broken_by_id(tasks: TaskApi) -> None:
    ids = [(await tasks.create(title="same"))["_id"] for _ in range(3)]

    listed = [task["_id"] for task in (await tasks.list(sort="title"))["tasks"]]

    assert listed == sorted(ids)


async def test_customer_tasks_are_the_tasks_related_to_that_customer(tasks: TaskApi) -> None:
    await tasks.create(title="b", relatedCustomerId="cust_1", dueDate="2030-02-01T00:00:00Z")
    await tasks.create(title="a", relatedCustomerId="cust_1", dueDate="2030-01-01T00:00:00Z")
    await tasks.create(title="other customer", relatedCustomerId="cust_2")
    await tasks.create(title="no customer")

    page = await tasks.list("/v1/tasks/customer/cust_1")

    assert set(page) == PAGE_FIELDS
    assert [task["title"] for task in page["tasks"]] == ["a", "b"]
    assert (page["total"], page["page"], page["limit"], page["totalPages"]) == (2, 1, 20, 1)
    assert await tasks.titles("/v1/tasks/customer/cust_1", sort="title", sortDirection="desc") == [
        "b",
        "a",
    ]


@pytest.mark.parametrize(
    ("customer", "path"),
    [("wa/123", "wa%2F123"), ("a//b", "a%2F%2Fb"), ("./x", ".%2Fx"), ("50%", "50%25")],
)
async def test_a_customer_id_that_holds_a_slash_finds_its_tasks(
    tasks: TaskApi, customer: str, path: str
) -> None:
    task = await tasks.create(title="slashed", relatedCustomerId=customer)
    await tasks.create(title="other", relatedCustomerId="wa")

    page = await tasks.list(f"/v1/tasks/customer/{path}")

    assert [found["_id"] for found in page["tasks"]] == [task["_id"]]


async def test_a_customer_without_tasks_has_an_empty_list(tasks: TaskApi) -> None:
    page = await tasks.list("/v1/tasks/customer/nobody")

    assert (page["tasks"], page["total"], page["totalPages"]) == ([], 0, 0)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "in_progress,pending"}, ["due soon", "urgent one"]),
        ({"priority": "urgent"}, ["urgent one"]),
        ({"ownerId": "agent_1"}, ["due soon"]),
        ({"dueBefore": "2030-01-15"}, ["due soon", "overdue"]),
        ({"dueAfter": "2030-01-15T00:00:00+01:00"}, ["urgent one"]),
        ({"search": "URGENT"}, ["urgent one"]),
        ({"overdue": "true"}, ["overdue"]),
    ],
)
async def test_customer_tasks_take_the_list_filters(
    tasks: TaskApi, params: dict[str, Any], expected: list[str]
) -> None:
    customer = {"relatedCustomerId": "cust_1"}
    soon, later = "2030-01-02T00:00:00Z", "2030-02-01T00:00:00Z"
    await tasks.create(
        title="due soon", status="in_progress", ownerId="agent_1", dueDate=soon, **customer
    )
    await tasks.create(
        title="urgent one", status="pending", priority="urgent", dueDate=later, **customer
    )
    await tasks.create(title="overdue", dueDate=timestamp(now() - timedelta(days=1)), **customer)
    await tasks.create(title="another customer's", status="pending", relatedCustomerId="cust_2")

    assert await tasks.titles("/v1/tasks/customer/cust_1", sort="title", **params) == expected
