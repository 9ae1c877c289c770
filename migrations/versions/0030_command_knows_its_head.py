"""A command hands append_to_stream its stream's head, read with its task.

Each append to an existing stream read the hash of the stream's head from the log, to chain
its first event to: an index probe and a heap fetch, 12-15 µs of PostgreSQL's CPU in a
command's 190-210. The command has read its task just before, from the task view, whose row
is written in the same statement as the stream's events: the row now keeps the head's hash
(`head_hash`), `tenant_task` returns it with the task, and the command passes it back as
`previous_hash` with the version it read. That version is the append's expected version, so
the unique (stream, version) key that refuses an append behind a newer event refuses a stale
head with it. A caller that does not know the head passes NULL, and the function reads it as
before. The function returns the stream's new head.

Existing rows get their head from the log.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06
"""

import importlib
from typing import Any

from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def _migration(name: str) -> Any:
    return importlib.import_module(f"migrations.versions.{name}")


_CHAIN = _migration("0020_tamper_evident_log")
_BY_ITSELF = _migration("0026_append_writes_each_event_by_itself")
_SEARCH = _migration("0029_search_reads_narrow_rows")
_ANSWER = _migration("0018_task_view_holds_its_answer")
_PLANNED = _migration("0023_key_lookups_planned_for_any_tenant")

# Migration 0026's events, chained from the head given, or read when it is not: `chained`
# is the function's own variable now, which the view's row and the answer take.
APPEND_CHAINED_EVENTS = _BY_ITSELF.APPEND_CHAINED_EVENTS.replace(
    f"chained bytea := {_CHAIN.NO_HASH};\n", ""
).replace(
    "IF expected_version > 0 THEN",
    f"chained := CASE WHEN expected_version = 0 THEN {_CHAIN.NO_HASH} ELSE previous_hash END;\n"
    "                    IF chained IS NULL THEN",
)
HEAD_COLUMNS = {**_ANSWER.ANSWER_COLUMNS, "head_hash": "bytea"}
_ARGUMENTS = (
    "text, text, integer, {}text[], smallint[], text[], text, timestamptz, jsonb, text, bytea, "
    "smallint, bytea, text, timestamptz"
)


def append_to_stream_sql(append_events: str) -> str:
    """append_to_stream taking and returning the stream's head, its events written by
    `append_events` (which sets `chained`), and the search's rows beside the view's."""
    return _CHAIN.append_to_stream_sql(
        append_events, _SEARCH.AFTER_VIEW_WRITE, _SEARCH.AFTER_VIEW_DELETE, head=True
    )


def upgrade() -> None:
    op.execute("ALTER TABLE task_view ADD COLUMN head_hash bytea")
    op.execute("""
        UPDATE task_view v SET head_hash = e.hash FROM events e
         WHERE e.tenant_id = v.tenant_id AND e.stream_id = v.task_id
           AND e.stream_version = v.version
    """)
    op.execute("ALTER TABLE task_view ALTER COLUMN head_hash SET NOT NULL")
    op.execute(f"DROP FUNCTION append_to_stream({_ARGUMENTS.format('')})")
    op.execute(append_to_stream_sql(APPEND_CHAINED_EVENTS))
    op.execute(_PLANNED.plan_for_any_tenant("append_to_stream"))
    _replace_tenant_task(HEAD_COLUMNS)


def downgrade() -> None:
    _replace_tenant_task(_ANSWER.ANSWER_COLUMNS)
    op.execute(f"DROP FUNCTION append_to_stream({_ARGUMENTS.format('bytea, ')})")
    _BY_ITSELF.replace_append(
        _BY_ITSELF.APPEND_CHAINED_EVENTS, _SEARCH.AFTER_VIEW_WRITE, _SEARCH.AFTER_VIEW_DELETE
    )
    op.execute("ALTER TABLE task_view DROP COLUMN head_hash")


def _replace_tenant_task(columns: dict[str, str]) -> None:
    op.execute("DROP FUNCTION tenant_task(text, text)")
    op.execute(_ANSWER.tenant_task_sql(columns))
    op.execute(_PLANNED.plan_for_any_tenant("tenant_task(text, text)"))
