"""Verification: replay the log in memory and compare with what the projections hold."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.log import Checkpoint, RecordedEvent, read_after
from projections.projector import Projector, Rows, stored_rows, written_columns
from projections.registry import INLINE
from projections.runner import read_checkpoint_unlocked
from projections.tables import key_columns

BATCH_SIZE = 10_000


@dataclass(frozen=True)
class Mismatch:
    """One way a stored row and a replay disagree, named by the row's key: a column whose
    values differ (both given), or a whole row that only one side has (its values given)."""

    table: str
    key: dict[str, Any]
    column: str | None = None
    stored: Any = None
    replayed: Any = None
    # For a whole row: the side that has it ("stored" or "replayed") and its other columns.
    only_in: str | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f"{self.table} ({_named(self.key)})"
        if self.only_in == "stored":
            return f"{where}: a row a replay of the log does not have ({_named(self.values)})"
        if self.only_in == "replayed":
            return f"{where}: missing; a replay of the log has {_named(self.values)}"
        return f"{where}: {self.column} is {self.stored}, a replay of the log gives {self.replayed}"


@dataclass
class Difference:
    """Rows of one table that a replay and the stored projection disagree on."""

    projection: str
    table: str
    missing: Rows = field(default_factory=set)  # a replay has them, the table has not
    unexpected: Rows = field(default_factory=set)  # the table has them, a replay has not
    columns: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    json_columns: frozenset[str] = frozenset()

    def mismatches(self) -> Iterator[Mismatch]:
        """Each difference by the row's key: the columns that differ where both sides have
        the row, else the whole row; in the order of the keys."""
        stored, replayed = self._by_key(self.unexpected), self._by_key(self.missing)
        for key in sorted(stored.keys() | replayed.keys(), key=_ordering):
            named = {name: self._shown(name, v) for name, v in zip(self.key, key, strict=True)}
            if key not in replayed:
                yield Mismatch(self.table, named, only_in="stored", values=self._rest(stored[key]))
            elif key not in stored:
                values = self._rest(replayed[key])
                yield Mismatch(self.table, named, only_in="replayed", values=values)
            else:
                for index, column in enumerate(self.columns):
                    if stored[key][index] != replayed[key][index]:
                        yield Mismatch(
                            self.table,
                            named,
                            column,
                            self._shown(column, stored[key][index]),
                            self._shown(column, replayed[key][index]),
                        )

    def _by_key(self, rows: Rows) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        places = [self.columns.index(name) for name in self.key]
        return {tuple(row[place] for place in places): row for row in rows}

    def _rest(self, row: tuple[Any, ...]) -> dict[str, Any]:
        return {
            name: self._shown(name, value)
            for name, value in zip(self.columns, row, strict=True)
            if name not in self.key
        }

    def _shown(self, column: str, value: Any) -> str:
        """A value as SQL would write it: NULL, text quoted, times in RFC 3339, JSON as is."""
        if value is None:
            return "NULL"
        if column in self.json_columns:
            return str(value)
        if isinstance(value, Enum):
            value = value.value
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        return msgspec.json.encode(value).decode().strip('"')


def _named(values: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in values.items())


def _ordering(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((value is not None, str(value)) for value in key)


async def verify(
    engine: AsyncEngine, projector: Projector, tenant_id: str | None = None
) -> list[Difference]:
    """Every table of the projection that differs from a replay of the log it has applied;
    with `tenant_id`, that tenant's rows against a replay of its events."""
    async with engine.connect() as conn:
        # One snapshot for the log, the checkpoint and the tables, so they agree in time.
        await conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        history = await _applied_history(conn, projector, tenant_id)
        expected = projector.replay(history)
        differences = []
        for table in projector.tables:
            stored = await stored_rows(conn, table, tenant_id)
            wanted = expected[table.name]
            if stored != wanted:
                differences.append(_difference(projector, table, stored, wanted))
        await conn.rollback()
    return differences


def _difference(projector: Projector, table: sa.Table, stored: Rows, wanted: Rows) -> Difference:
    columns = written_columns(table)
    return Difference(
        projector.name,
        table.name,
        missing=wanted - stored,
        unexpected=stored - wanted,
        columns=tuple(column.name for column in columns),
        key=key_columns(table),
        json_columns=frozenset(c.name for c in columns if isinstance(c.type, JSONB)),
    )


async def _applied_history(
    conn: AsyncConnection, projector: Projector, tenant_id: str | None
) -> list[RecordedEvent]:
    """The events the projection has applied (the tenant's only, when given): all of them for
    an inline one, else those up to its checkpoint."""
    # Read in the snapshot of the tables: locking it would fail the snapshot whenever the
    # runner has moved it since.
    until = None if projector in INLINE else await read_checkpoint_unlocked(conn, projector.name)
    history: list[RecordedEvent] = []
    checkpoint = Checkpoint()
    while batch := await read_after(
        conn, checkpoint, BATCH_SIZE, tenant_id=tenant_id, until=until, horizon=False
    ):
        history += batch
        checkpoint = Checkpoint(batch[-1].transaction_id, batch[-1].position)
    return history
