"""Statements compiled once for the driver: each parameter in the order the SQL numbers it, the
members of a constant IN list compiled in, and no parameter left to default to NULL."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from domain.task import CLOSED_STATUSES
from projections.driver import Compiled, value
from projections.tables import task_view

v = task_view.c


def numbered(sql: str) -> list[int]:
    return [int(number) for number in re.findall(r"\$(\d+)", sql)]


def test_arguments_follow_the_numbers_of_the_sql_with_constants_compiled_in() -> None:
    statement = Compiled.of(
        sa.select(sa.func.count()).where(
            v.due_date < value("now"),
            v.tenant_id == value("tenant_id"),
            v.status.not_in(CLOSED_STATUSES),
        )
    )

    arguments = statement.arguments(tenant_id="t-1", now="2030-01-01")

    assert sorted(set(numbered(statement.sql))) == list(range(1, len(arguments) + 1))
    assert arguments[:2] == ["2030-01-01", "t-1"]
    assert sorted(arguments[2:]) == sorted(CLOSED_STATUSES)


def test_a_parameter_used_twice_takes_one_value() -> None:
    statement = Compiled.of(
        sa.select(v.task_id).where(
            v.tenant_id == value("tenant_id"), v.owner_id == value("tenant_id")
        )
    )

    assert statement.arguments(tenant_id="t-1") == ["t-1"]


def test_a_missing_value_is_an_error_not_a_null() -> None:
    statement = Compiled.of(sa.select(v.task_id).where(v.tenant_id == value("tenant_id")))

    with pytest.raises(KeyError):
        statement.arguments()
