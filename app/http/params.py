"""Query parameters: the filters and the paging the task list shares with a customer's tasks,
times, comma-separated choices; each read once, and declared with the schema the OpenAPI
document shows for it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import FromQuery, QueryParameter

from app import clock
from app.http.auth import caller_of
from app.http.errors import validation_error
from app.http.wire import TaskPage
from domain.commands import parse_instant_or_day
from domain.task import Priority, Status, Task
from projections import queries
from projections.figures import AGENT_PERFORMANCE_MAX

Page = Annotated[int, QueryParameter(ge=1, le=100_000, description="Page number")]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Items per page (max 100)")]
AgentsLimit = Annotated[
    int,
    QueryParameter(
        ge=1,
        le=AGENT_PERFORMANCE_MAX,
        description=f"Agents in `agentPerformance`, most tasks first (max {AGENT_PERFORMANCE_MAX})",
    ),
]
SortField = Literal["dueDate", "created_at", "updated_at", "priority", "status", "title"]
SortDirection = Literal["asc", "desc"]


def text_parameter(name: str, description: str, **schema: Any) -> Any:
    """A query parameter shown as a string of `schema` (Schema's fields): it may be left out,
    never sent as null."""
    extra = {"one_of": None, "type": OpenAPIType.STRING, **schema}
    return QueryParameter(name=name, description=description, schema_extra=extra)


def id_filter(name: str) -> Any:
    """An optional id-sized query parameter under its wire name: 1 to 200 characters, as
    every id is, so an empty one (which names no owner, queue or customer) is refused with
    400 rather than read as a filter that no task or every task passes. (Nesting one
    Annotated alias in another would lose the name: Litestar keeps only the inner
    Parameter.)"""
    return QueryParameter(name=name, min_length=1, max_length=200)


def choices_pattern(choices: type[StrEnum]) -> str:
    """One or more of the choices, separated by commas: what parse_choices reads."""
    one = "|".join(re.escape(choice) for choice in choices)
    return f"^(?:{one})(?:,(?:{one}))*$"


def choices_parameter(name: str, choices: type[StrEnum], plural: str) -> Any:
    listed = ", ".join(f"`{choice}`" for choice in choices)
    example = ",".join(list(choices)[:2])
    description = f"{plural}, comma-separated, any of {listed}: e.g. `{example}`"
    return text_parameter(name, description, pattern=choices_pattern(choices))


def time_parameter(name: str, description: str) -> Any:
    """A time: an RFC 3339 date-time with its offset, or a date, read by parse_time."""
    return text_parameter(
        name,
        f"{description}: an RFC 3339 date-time with its offset (Z or +hh:mm), or a date",
        any_of=[
            Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
            Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE),
        ],
    )


def parse_time(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 date-time, with its offset, or a bare date (its first instant, UTC)."""
    if value is None:
        return None
    try:
        return parse_instant_or_day(value, name)
    except ValueError as problem:
        raise validation_error([str(problem)]) from None


def end_of_period(name: str, value: str | None) -> datetime | None:
    """The instant a period ending at `value` stops: a bare date covers its whole day."""
    moment = parse_time(name, value)
    if moment is None or "T" in value.upper():  # type: ignore[union-attr]
        return moment
    return moment + timedelta(days=1)


def creation_period(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """The period from startDate until endDate stops; 400 naming both when it starts after
    the last moment it covers (a bare date as the end covers its whole day)."""
    since, until = parse_time("startDate", start), end_of_period("endDate", end)
    if since is not None and until is not None:
        last = until if "T" in end.upper() else until - timedelta(microseconds=1)  # type: ignore[union-attr]
        if since > last:
            raise validation_error([f"startDate ({start}) is after endDate ({end})"])
    return since, until


def parse_choices(name: str, value: str | None, choices: type[StrEnum]) -> list[str]:
    """A comma-separated list of enum values, e.g. status=not_started,in_progress."""
    if value is None:
        return []
    items = value.split(",")
    allowed = {str(choice) for choice in choices}
    if unknown := [item for item in items if item not in allowed]:
        quoted = ", ".join(f'"{item}"' for item in unknown)
        raise validation_error([f"{name}: {quoted} not one of {', '.join(sorted(allowed))}"])
    return items


@dataclass(frozen=True, slots=True)
class TaskListing:
    """Which tasks a page lists, and which page of them."""

    criteria: queries.TaskFilter
    order: queries.PageRequest


def task_listing(
    request: Request[Any, Any, State],
    page: Page = 1,
    limit: Limit = 20,
    sort: FromQuery[SortField] = "dueDate",
    sort_direction: Annotated[SortDirection, QueryParameter(name="sortDirection")] = "asc",
    owner_id: Annotated[str | None, id_filter("ownerId")] = None,
    status: Annotated[str | None, choices_parameter("status", Status, "Statuses")] = None,
    priority: Annotated[str | None, choices_parameter("priority", Priority, "Priorities")] = None,
    due_before: Annotated[str | None, time_parameter("dueBefore", "Due before")] = None,
    due_after: Annotated[str | None, time_parameter("dueAfter", "Due after")] = None,
    overdue: Annotated[
        bool, QueryParameter(description="Only open tasks past their due date")
    ] = False,
    search: Annotated[
        str | None,
        QueryParameter(max_length=500, description="Text found in the title or description"),
    ] = None,
) -> TaskListing:
    """The filters and the page a list of the caller's tasks takes, whatever else narrows it."""
    criteria = queries.TaskFilter(
        tenant_id=caller_of(request).principal.tenant_id,
        now=clock.now(),
        owner_id=owner_id,
        statuses=parse_choices("status", status, Status),
        priorities=parse_choices("priority", priority, Priority),
        due_before=parse_time("dueBefore", due_before),
        due_after=parse_time("dueAfter", due_after),
        overdue=overdue,
        search=search,
    )
    order = queries.PageRequest(page, limit, sort, sort_direction == "desc")
    return TaskListing(criteria, order)


TASK_LISTING = {"listing": Provide(task_listing, sync_to_thread=False)}


def task_page(tasks: list[Task], total: int, page: int, limit: int) -> TaskPage:
    return TaskPage(
        tasks=tasks, total=total, page=page, limit=limit, total_pages=math.ceil(total / limit)
    )
