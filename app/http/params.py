"""Query parameters shared by the list endpoints: times, comma lists, pages."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from enum import StrEnum

import msgspec

from app.http.errors import validation_error
from app.http.wire import TaskPage
from domain.commands import as_utc
from domain.task import Task


def parse_time(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 time (UTC when it has no offset) or a bare date (its first instant)."""
    if value is None:
        return None
    moment = _moment(value)
    if moment is None:
        raise validation_error([f"{name}: expected an RFC 3339 date-time or date"])
    try:
        return as_utc(moment, name)
    except ValueError as out_of_range:
        raise validation_error([str(out_of_range)]) from None


def _moment(value: str) -> datetime | None:
    for kind in (datetime, date):
        try:
            parsed = msgspec.convert(value, kind)
        except msgspec.ValidationError:
            continue
        return parsed if isinstance(parsed, datetime) else datetime.combine(parsed, time())
    return None


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
