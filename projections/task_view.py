"""The task view: one row per live task, as its events leave it.

The same projector serves commands (inline, in the command's transaction, so a read right
after a write sees it) and rebuilds (over the folded log).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.evolve import evolve
from domain.task import Task
from projections.driver import Compiled
from projections.log import RecordedEvent
from projections.projector import (
    Rows,
    comparable,
    copy_rows,
    keyed_by,
    task_keys,
    upsert_rows,
    written_columns,
)
from projections.tables import task_search, task_view

# The task's columns named as its fields are on the wire: a row converts to a Task in one
# call, whatever else the row holds.
WIRE_COLUMNS = [
    task_view.c["task_id" if name == "id" else name].label(wire)
    for name, wire in zip(Task.__struct_fields__, Task.__struct_encode_fields__, strict=True)
]


def task_from_row(row: Any) -> Task:
    """A task from a row selected with WIRE_COLUMNS (a driver record or a row mapping)."""
    return msgspec.convert(dict(row), Task)


def row_of(tenant_id: str, version: int, task: Task) -> dict[str, Any]:
    """The task_view row that holds a task at a version."""
    row = msgspec.structs.asdict(task)
    row["task_id"] = row.pop("id")
    row["linked_entity"] = msgspec.to_builtins(task.linked_entity)
    row["auto_complete_at"] = task.auto_complete_at
    row.update(tenant_id=tenant_id, version=version, body=msgspec.json.encode(task).decode())
    return row


# A live task's version and body (and its stream's head), read by the function that enters
# the tenant itself (migrations 0012, 0018 and 0030): the read is one statement, outside any
# transaction.
_LOAD_ANSWER = "SELECT version, body FROM tenant_task($1, $2)"
_LOAD = "SELECT version, body, head_hash FROM tenant_task($1, $2)"


class Current(NamedTuple):
    """A live task as a command reads it: the task, its version, and the hash of its latest
    event, which the command's first event chains from."""

    task: Task
    version: int
    head: bytes


async def load_answer(
    conn: asyncpg.Connection, tenant_id: str, task_id: str
) -> tuple[bytes, int] | None:
    """A live task as the API answers it (its JSON), and its version: one round trip,
    outside a transaction or in one."""
    row = await conn.fetchrow(_LOAD_ANSWER, tenant_id, task_id)
    return None if row is None else (row[1].encode(), row[0])


async def load(conn: asyncpg.Connection, tenant_id: str, task_id: str) -> Current | None:
    """A live task, its version and its head, read as `load_answer` reads the first two."""
    row = await conn.fetchrow(_LOAD, tenant_id, task_id)
    return None if row is None else Current(msgspec.json.decode(row[1], type=Task), row[0], row[2])


# The columns each of the projection's tables is written, in the order of `row_of` (the
# search's are the view's it holds), and which of them hold JSON.
WRITTEN = {
    table: tuple(column.name for column in written_columns(table))
    for table in (task_view, task_search)
}
_JSON_COLUMNS = frozenset(c.name for c in written_columns(task_view) if isinstance(c.type, JSONB))


def _replace_all(columns: tuple[str, ...]) -> str:
    return ", ".join(f"{name} = EXCLUDED.{name}" for name in columns[2:])


def _parameters(row: dict[str, Any], columns: tuple[str, ...]) -> list[Any]:
    """A row's values of `columns`, JSON ones as text, as COPY takes them."""
    return [
        None
        if (value := row[name]) is None
        else msgspec.json.encode(value).decode()
        if name in _JSON_COLUMNS
        else value
        for name in columns
    ]


class TaskViewProjector:
    """The task view, and what a search reads of it, as a projection of the log, for
    rebuilds and verification."""

    name = "task_view"
    tables = tuple(WRITTEN)

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        keys = sorted({(event.tenant_id, event.stream_id) for event in batch})
        states = _fold_into(await _load_many(conn, keys), batch)
        gone = [key for key, (task, *_) in states.items() if task is None]
        live = _live_rows(states)
        for table, columns in WRITTEN.items():
            if gone:
                await conn.execute(table.delete().where(keyed_by(table, gone)))
            rows = [tuple(row[name] for name in columns) for row in live]
            await upsert_rows(conn, table, columns, rows, _replace_all(columns))

    def replay(self, history: Sequence[RecordedEvent]) -> dict[str, Rows]:
        live = _live_rows(_fold_into({}, history))
        return {
            table.name: {comparable(row[name] for name in columns) for row in live}
            for table, columns in WRITTEN.items()
        }

    def loader(self) -> TaskViewLoader:
        return TaskViewLoader()


class TaskViewLoader:
    """Each task's row in its final state, copied in."""

    summed = ()

    async def add(self, conn: AsyncConnection, streams: Sequence[RecordedEvent]) -> None:
        live = _live_rows(_fold_into({}, streams))
        for table, columns in WRITTEN.items():
            await copy_rows(conn, table, columns, [_parameters(row, columns) for row in live])

    async def finish(self, conn: AsyncConnection) -> None:
        """Nothing is held back: each stream's row is written as it arrives."""


States = dict[tuple[str, str], tuple[Task | None, int, bytes]]


def _live_rows(states: States) -> list[dict[str, Any]]:
    """The rows of the tasks that live, as `row_of` gives them, with their heads."""
    return [
        {**row_of(tenant, version, task), "head_hash": head}
        for (tenant, _), (task, version, head) in states.items()
        if task is not None
    ]


def _fold_into(states: States, events: Sequence[RecordedEvent]) -> States:
    """Tasks, their versions and heads, keyed by (tenant, task), after more events."""
    for event in events:
        key = (event.tenant_id, event.stream_id)
        task = states[key][0] if key in states else None
        states[key] = (evolve(task, event.decode(), event.recorded_at), event.version, event.hash)
    return states


async def _load_many(conn: AsyncConnection, keys: list[tuple[str, str]]) -> States:
    rows = await _LOAD_MANY.fetch(
        conn, key_tenants=[tenant for tenant, _ in keys], key_tasks=[task for _, task in keys]
    )
    return {
        (row["tenant_id"], row["task_id"]): (task_from_row(row), row["version"], row["head_hash"])
        for row in rows
    }


def _load_many_statement() -> Compiled:
    c, keys = task_view.c, task_keys()
    return Compiled.of(
        sa.select(c.tenant_id, c.task_id, c.version, c.head_hash, *WIRE_COLUMNS).join_from(
            task_view, keys, sa.and_(c.tenant_id == keys.c.tenant_id, c.task_id == keys.c.task_id)
        )
    )


_LOAD_MANY = _load_many_statement()
