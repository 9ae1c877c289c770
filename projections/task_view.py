"""The task view: one row per live task, as its events leave it.

The same projector serves commands (inline, in the command's transaction, so a read right
after a write sees it) and rebuilds (over the folded log).
"""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.task import Task
from projections.tables import task_view

KEY_COLUMNS = ("tenant_id", "task_id")
TASK_COLUMNS = [
    task_view.c.task_id.label("id"),
    *(
        column
        for column in task_view.c
        if column.name not in ("tenant_id", "task_id") and column.computed is None
    ),
]


def task_from_row(row: Any) -> Task:
    """A task from a task_view row selected with TASK_COLUMNS."""
    return msgspec.convert(row, Task, from_attributes=True)


def row_of(tenant_id: str, version: int, task: Task) -> dict[str, Any]:
    """The task_view row that holds a task at a version."""
    row = msgspec.structs.asdict(task)
    row["task_id"] = row.pop("id")
    row["linked_entity"] = msgspec.to_builtins(task.linked_entity)
    row.update(tenant_id=tenant_id, version=version)
    return row


async def load(
    conn: AsyncConnection, tenant_id: str, task_id: str, *, lock: bool = False
) -> tuple[Task, int] | None:
    """A live task and its version; `lock` holds the row until the transaction ends."""
    query = sa.select(*TASK_COLUMNS).where(
        task_view.c.tenant_id == tenant_id, task_view.c.task_id == task_id
    )
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else (task_from_row(row), row.version)


async def project(
    conn: AsyncConnection, tenant_id: str, task_id: str, version: int, task: Task | None
) -> None:
    """Make the view hold `task` at `version`; None removes a deleted task."""
    if task is None:
        await conn.execute(
            task_view.delete().where(
                task_view.c.tenant_id == tenant_id, task_view.c.task_id == task_id
            )
        )
        return
    row = row_of(tenant_id, version, task)
    statement = insert(task_view).values(row)
    updates = {name: statement.excluded[name] for name in row if name not in KEY_COLUMNS}
    await conn.execute(statement.on_conflict_do_update(index_elements=KEY_COLUMNS, set_=updates))
