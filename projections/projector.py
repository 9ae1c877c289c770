"""What every projection offers the runner, rebuilds and verification."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.driver import TEXTS, driver_connection
from projections.log import RecordedEvent
from projections.tables import key_columns

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

    def loader(self) -> Loader:
        """A rebuild's first pass: writes the log into the projection's empty tables."""


class Loader(Protocol):
    """Writes whole streams into empty tables, reading nothing back: a stream arrives once,
    with all its events, so each row is written once, in its final state."""

    # The tables whose rows it adds to again and again, as sums: each addition leaves a dead
    # version behind, and the rows end up scattered over the table (a rebuild repacks them).
    summed: tuple[sa.Table, ...]

    async def add(self, conn: AsyncConnection, streams: Sequence[RecordedEvent]) -> None:
        """The events of whole streams, each stream's oldest first and no stream seen before;
        streams in any order (not the order of commit)."""

    async def finish(self, conn: AsyncConnection) -> None:
        """Write what was held back until every stream was seen."""


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


async def stored_rows(conn: AsyncConnection, table: sa.Table, tenant_id: str | None = None) -> Rows:
    """The table's rows (the tenant's only, when given)."""
    query = sa.select(*written_columns(table))
    if tenant_id is not None:
        query = query.where(table.c.tenant_id == tenant_id)
    return {comparable(row) for row in await conn.execute(query)}


def task_keys(keys: Sequence[tuple[str, str]] | None = None) -> Any:
    """(tenant_id, task_id) pairs as a table, one array per column, to join or select from.
    An IN list of pairs made the planner test every pair against every row of a tenant:
    hundreds of milliseconds for a batch where this join takes one or two. Without `keys`,
    the arrays are the values `key_tenants` and `key_tasks` of a compiled statement."""
    tenants = None if keys is None else [tenant for tenant, _ in keys]
    tasks = None if keys is None else [task for _, task in keys]
    return (
        sa.func.unnest(
            sa.bindparam("key_tenants", tenants, type_=TEXTS),
            sa.bindparam("key_tasks", tasks, type_=TEXTS),
        )
        .table_valued("tenant_id", "task_id")
        .render_derived()
    )


def keyed_by(table: sa.Table, keys: Sequence[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """The rows of a table keyed by (tenant_id, task_id) whose key is one of `keys`."""
    pairs = task_keys(keys)
    return sa.tuple_(table.c.tenant_id, table.c.task_id).in_(
        sa.select(pairs.c.tenant_id, pairs.c.task_id)
    )


async def upsert_rows(
    conn: AsyncConnection,
    table: sa.Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    assignments: str,
    returning: str = "",
) -> list[Any]:
    """Insert rows (tuples in the order of `columns`), or on a clash of the table's key
    apply `assignments` (SQL over `t`, the row, and EXCLUDED): one statement, on the
    driver's connection, whose one parameter is the rows as a JSON array of arrays.
    SQLAlchemy's work per row was most of a batch's time, and then the driver's for arrays
    of values (a quarter of a microsecond a value, against none for msgspec's JSON).

    The rows are written in the order of their key, NULL first, so that writers of the
    same rows take their locks in one order and never deadlock on each other."""
    if not rows:
        return []
    driver = await driver_connection(conn)
    sql = _upsert_sql(table, columns, assignments, returning)
    rows_json = msgspec.json.encode(rows).decode()
    if returning:
        return list(await driver.fetch(sql, rows_json))
    await driver.execute(sql, rows_json)
    return []


def _value_of(index: int, column: sa.Column[Any]) -> str:
    """SQL reading a column's value from the JSON array `r` of a row's values, as msgspec
    wrote them: bytes in base64, JSON values as themselves (null as NULL), and the rest as
    the text of a JSON string or number, which casts to the column's type."""
    if isinstance(column.type, JSONB):
        return f"nullif(r->{index}, 'null')"
    if isinstance(column.type, sa.LargeBinary):
        return f"decode(r->>{index}, 'base64')"
    return f"(r->>{index})::{column.type.compile(dialect=postgresql.dialect())}"


@functools.cache
def _upsert_sql(table: sa.Table, columns: tuple[str, ...], assignments: str, returning: str) -> str:
    names = ", ".join(columns)
    values = ", ".join(_value_of(index, table.c[name]) for index, name in enumerate(columns))
    keys = key_columns(table)
    in_key_order = ", ".join(f"{columns.index(key) + 1} NULLS FIRST" for key in keys)
    sql = (
        f"INSERT INTO {table.name} AS t ({names}) SELECT {values} "
        f"FROM jsonb_array_elements($1::jsonb) AS rows(r) ORDER BY {in_key_order} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {assignments}"
    )
    return f"{sql} RETURNING {returning}" if returning else sql


async def copy_rows(
    conn: AsyncConnection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """COPY rows (sequences in the order of `columns`, JSON columns as text) into a table,
    found by the search path: the fastest way in for rows known to be new."""
    if rows:
        driver = await driver_connection(conn)
        await driver.copy_records_to_table(table.name, records=rows, columns=columns)


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
