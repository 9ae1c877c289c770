"""Query parameters shared by the list endpoints: times, comma lists, pages."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from enum import StrEnum

import msgspec

from app.http.errors import validation_error
from app.http.wire import TaskPage
from domain.commands import as_utc, parse_instant
from domain.task import Task


def parse_time(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 date-time, with its offset, or a bare date (its first instant, UTC)."""
    if value is None:
        return None
    try:
        day = msgspec.convert(value, date)
    except msgspec.ValidationError:
        day = None
    try:
        return as_utc(datetime.combine(day, time()), name) if day else parse_instant(value, name)
    except ValueError as problem:
        raise validation_error([str(problem)]) from None


def end_of_period(name: str, value: str | None) -> datetime | None:
    """The instant a period ending at `value` stops: a bare date covers its whole day."""
    moment = parse_time(name, value)
    if moment is None or "T" in value.upper():  # type: ignore[union-attr]
        return moment
    return moment + timedelta(days=1)


def parse_choices(name: str, value: str | None, choices: type[StrEnum]) -> list[str]:
    """A comma-separated list of enum values, e.g. status=not_started,in_progress."""
    if not value:
        return []
    items = [item.strip() for item in value.split(",") if item.strip()]
    allowed = {str(choice) for choice in choices}
    if unknown := [item for item in items if item not in allowed]:
        raise validation_error(
            [f"{name}: {', '.join(unknown)} not one of {', '.join(sorted(allowed))}"]
        )
    return items


def task_page(tasks: list[Task], total: int, page: int, limit: int) -> TaskPage:
    return TaskPage(
        tasks=tasks, total=total, page=page, limit=limit, total_pages=math.ceil(total / limit)
    )
