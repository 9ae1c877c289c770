"""The task view: one row per live task, as its events leave it.

The same projector serves commands (inline, in the command's transaction, so a read right
after a write sees it) and rebuilds (over the folded log).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from projections.tables import task_view

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


# A live task's version and body, read by the function that enters the tenant itself
# (migrations 0012 and 0018): the read is one statement, outside any transaction.
_LOAD = "SELECT version, body FROM tenant_task($1, $2)"


async def load_answer(
    conn: asyncpg.Connection, tenant_id: str, task_id: str
) -> tuple[bytes, int] | None:
    """A live task as the API answers it (its JSON), and its version: one round trip,
    outside a transaction or in one."""
    row = await conn.fetchrow(_LOAD, tenant_id, task_id)
    return None if row is None else (row[1].encode(), row[0])


async def load(conn: asyncpg.Connection, tenant_id: str, task_id: str) -> tuple[Task, int] | None:
    """A live task and its version, as `load_answer` reads them."""
    found = await load_answer(conn, tenant_id, task_id)
    return None if found is None else (msgspec.json.decode(found[0], type=Task), found[1])


# The view's columns in the order of `row_of`, and which of them hold JSON.
VIEW_COLUMNS = tuple(column.name for column in written_columns(task_view))
_JSON_COLUMNS = frozenset(c.name for c in written_columns(task_view) if isinstance(c.type, JSONB))


_REPLACE_ALL = ", ".join(f"{name} = EXCLUDED.{name}" for name in VIEW_COLUMNS[2:])


def view_sql(first: int) -> str:
    """The statement that makes the view hold a task, on the driver's connection, its
    parameters numbered from `first` and given by `view_parameters`."""
    values = ", ".join(
        f"${first + i}::text::jsonb" if name in _JSON_COLUMNS else f"${first + i}"
        for i, name in enumerate(VIEW_COLUMNS)
    )
    return (
        f"INSERT INTO task_view ({', '.join(VIEW_COLUMNS)}) VALUES ({values}) "
        f"ON CONFLICT (tenant_id, task_id) DO UPDATE SET {_REPLACE_ALL}"
    )


def view_parameters(tenant_id: str, version: int, task: Task) -> list[Any]:
    row = row_of(tenant_id, version, task)
    return [
        None
        if (value := row[name]) is None
        else msgspec.json.encode(value).decode()
        if name in _JSON_COLUMNS
        else value
        for name in VIEW_COLUMNS
    ]


class TaskViewProjector:
    """The task view as a projection of the log, for rebuilds and verification."""

    name = "task_view"
    tables = (task_view,)

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        keys = sorted({(event.tenant_id, event.stream_id) for event in batch})
        states = _fold_into(await _load_many(conn, keys), batch)
        gone = [key for key, (task, _) in states.items() if task is None]
        if gone:
            await conn.execute(task_view.delete().where(keyed_by(task_view, gone)))
        rows = [
            tuple(row[name] for name in VIEW_COLUMNS)
            for (tenant, _), (task, version) in states.items()
            if task is not None
            for row in (row_of(tenant, version, task),)
        ]
        await upsert_rows(conn, task_view, VIEW_COLUMNS, rows, _REPLACE_ALL)

    def replay(self, history: Sequence[RecordedEvent]) -> dict[str, Rows]:
        states = _fold_into({}, history)
        columns = [column.name for column in written_columns(task_view)]
        rows = {
            comparable(row_of(tenant, version, task)[name] for name in columns)
            for (tenant, _), (task, version) in states.items()
            if task is not None
        }
        return {task_view.name: rows}

    def loader(self) -> TaskViewLoader:
        return TaskViewLoader()


class TaskViewLoader:
    """Each task's row in its final state, copied in."""

    summed = ()

    async def add(self, conn: AsyncConnection, streams: Sequence[RecordedEvent]) -> None:
        rows = [
            view_parameters(tenant, version, task)
            for (tenant, _), (task, version) in _fold_into({}, streams).items()
            if task is not None
        ]
        await copy_rows(conn, task_view, VIEW_COLUMNS, rows)

    async def finish(self, conn: AsyncConnection) -> None:
        """Nothing is held back: each stream's row is written as it arrives."""


States = dict[tuple[str, str], tuple[Task | None, int]]


def _fold_into(states: States, events: Sequence[RecordedEvent]) -> States:
    """Tasks and their versions, keyed by (tenant, task), after more events."""
    for event in events:
        key = (event.tenant_id, event.stream_id)
        task, _ = states.get(key, (None, 0))
        states[key] = (evolve(task, event.decode(), event.recorded_at), event.version)
    return states


async def _load_many(conn: AsyncConnection, keys: list[tuple[str, str]]) -> States:
    rows = await _LOAD_MANY.fetch(
        conn, key_tenants=[tenant for tenant, _ in keys], key_tasks=[task for _, task in keys]
    )
    return {
        (row["tenant_id"], row["task_id"]): (task_from_row(row), row["version"]) for row in rows
    }


def _load_many_statement() -> Compiled:
    c, keys = task_view.c, task_keys()
    return Compiled.of(
        sa.select(c.tenant_id, c.task_id, c.version, *WIRE_COLUMNS).join_from(
            task_view, keys, sa.and_(c.tenant_id == keys.c.tenant_id, c.task_id == keys.c.task_id)
        )
    )


_LOAD_MANY = _load_many_statement()
