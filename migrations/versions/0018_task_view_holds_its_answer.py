"""The task view holds each task as the API answers it: `body`, the task's JSON.

A read of one task (GET /v1/tasks/{id}, and each command's load of its task) decoded the
view's 31 columns, seven of them JSON, into the task, and a GET encoded it again: a third of
the read's CPU in the server. `body` is the task as the domain encodes it (msgspec), written
with the row by whoever writes it (`append_to_stream`, a rebuild); a GET answers it as it
stands and a command decodes it in one call. `tenant_task` now returns the version and the
body.

Existing rows get their body from their columns, read as the projection reads them.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

import importlib
from typing import Any

import msgspec
import sqlalchemy as sa
from alembic import op

from domain.task import Task
from projections.tables import task_view
from projections.task_view import WIRE_COLUMNS

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BATCH = 5_000
TENANT_ROLE = "tasks_tenant"


def _migration(name: str) -> Any:
    return importlib.import_module(f"migrations.versions.{name}")


def upgrade() -> None:
    op.execute("ALTER TABLE task_view ADD COLUMN body text")
    _fill_bodies(op.get_bind())
    op.execute("ALTER TABLE task_view ALTER COLUMN body SET NOT NULL")
    op.execute("DROP FUNCTION tenant_task(text, text)")
    op.execute(tenant_task_sql(ANSWER_COLUMNS))
    _append_to_stream(with_body=True)


def downgrade() -> None:
    _append_to_stream(with_body=False)
    op.execute("DROP FUNCTION tenant_task(text, text)")
    op.execute(tenant_task_sql(_migration("0012_requests_in_one_round_trip").VIEW_COLUMNS))
    op.execute("ALTER TABLE task_view DROP COLUMN body")


# What tenant_task returns of a task's row, and their types.
ANSWER_COLUMNS = {"version": "integer", "body": "text"}


def tenant_task_sql(columns: dict[str, str]) -> str:
    """The function tenant_task, returning these columns of a live task's row."""
    declared = ", ".join(f"{name} {type_}" for name, type_ in columns.items())
    selected = ", ".join(f"v.{name}" for name in columns)
    return f"""
        CREATE FUNCTION tenant_task(tenant text, task text) RETURNS TABLE ({declared})
        LANGUAGE plpgsql AS $$
        BEGIN
            {_migration("0012_requests_in_one_round_trip").ENTER_TENANT}
            RETURN QUERY
                SELECT {selected} FROM task_view v
                 WHERE v.tenant_id = tenant AND v.task_id = task;
        END
        $$
    """


def _append_to_stream(*, with_body: bool) -> None:
    rounds = _migration("0012_requests_in_one_round_trip")
    columns = [*rounds.VIEW_COLUMNS, *(["body"] if with_body else [])]
    op.execute(
        rounds.append_to_stream_sql(
            "CREATE OR REPLACE", _migration("0017_tenant_moves").FENCE_CHECK, columns
        )
    )


def _fill_bodies(conn: sa.Connection) -> None:
    """Each row's body, from its columns, a batch at a time in key order."""
    view = task_view
    after = ("", "")
    while True:
        rows = conn.execute(
            sa.select(view.c.tenant_id, view.c.task_id, *WIRE_COLUMNS)
            .where(sa.tuple_(view.c.tenant_id, view.c.task_id) > after)
            .order_by(view.c.tenant_id, view.c.task_id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        bodies = [
            {
                "tenant": row.tenant_id,
                "task": row.task_id,
                "body": msgspec.json.encode(_task_of(row)).decode(),
            }
            for row in rows
        ]
        conn.execute(
            sa.text(
                "UPDATE task_view SET body = :body WHERE tenant_id = :tenant AND task_id = :task"
            ),
            bodies,
        )
        after = (rows[-1].tenant_id, rows[-1].task_id)


def _task_of(row: sa.Row[Any]) -> Task:
    fields = dict(row._mapping)
    del fields["tenant_id"], fields["task_id"]
    return msgspec.convert(fields, Task)
