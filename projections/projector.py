"""What every projection offers the runner, rebuilds and verification."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.log import RecordedEvent

# A table's content as a set of rows, each a tuple of its written columns in order.
Rows = set[tuple[Any, ...]]
T = TypeVar("T")


class Projector(Protocol):
    name: str
    # The tables it owns: rebuilt together, swapped in together, verified together.
    tables: tuple[sa.Table, ...]

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        """Apply a batch of events, in commit order, to its tables."""

    def replay(self, history: Sequence[RecordedEvent]) -> dict[str, Rows]:
        """The rows each table should hold after the whole history, computed in memory."""


def written_columns(table: sa.Table) -> list[sa.Column[Any]]:
    """The columns a projector writes; generated ones follow from them."""
    return [column for column in table.c if column.computed is None]


def comparable(values: Iterable[Any]) -> tuple[Any, ...]:
    """A row as a hashable tuple; JSON values become canonical JSON text."""
    return tuple(
        msgspec.json.encode(value, order="sorted").decode()
        if isinstance(value, dict | list)
        else value
        for value in values
    )


async def stored_rows(conn: AsyncConnection, table: sa.Table) -> Rows:
    query = sa.select(*written_columns(table))
    return {comparable(row) for row in await conn.execute(query)}


def task_keys(keys: Sequence[tuple[str, str]]) -> Any:
    """(tenant_id, task_id) pairs as a table, one array per column, to join or select from.
    An IN list of pairs made the planner test every pair against every row of a tenant:
    hundreds of milliseconds for a batch where this join takes one or two."""
    tenants = [tenant for tenant, _ in keys]
    tasks = [task for _, task in keys]
    return sa.func.unnest(
        sa.bindparam("key_tenants", tenants, type_=ARRAY(sa.Text)),
        sa.bindparam("key_tasks", tasks, type_=ARRAY(sa.Text)),
    ).table_valued("tenant_id", "task_id").render_derived()


def keyed_by(table: sa.Table, keys: Sequence[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """The rows of a table keyed by (tenant_id, task_id) whose key is one of `keys`."""
    pairs = task_keys(keys)
    return sa.tuple_(table.c.tenant_id, table.c.task_id).in_(
        sa.select(pairs.c.tenant_id, pairs.c.task_id)
    )


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
