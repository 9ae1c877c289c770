"""The tables the projections read and write: the event log, the task view and what a search
reads of it, checkpoints."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


class XID8(sa.types.UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id, which orders commits for the log's readers."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


metadata = sa.MetaData()

events = sa.Table(
    "events",
    metadata,
    sa.Column("global_position", sa.BigInteger, sa.Identity(always=True), nullable=False),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("stream_id", sa.Text, nullable=False),
    sa.Column("stream_version", sa.Integer, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("payload_version", sa.SmallInteger, nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "transaction_id",
        XID8,
        nullable=False,
        server_default=sa.text("pg_current_xact_id()"),
    ),
    # sha256 of the previous version's hash and this event's content, set by the database
    # on insert (migration 0020): each task's events form a hash chain.
    sa.Column("hash", sa.LargeBinary, nullable=False),
    sa.PrimaryKeyConstraint("tenant_id", "global_position"),
    sa.UniqueConstraint("tenant_id", "stream_id", "stream_version", name="events_stream_version"),
)

PRIORITY_RANK = "CASE priority WHEN 'low' THEN 0 WHEN 'normal' THEN 1 WHEN 'high' THEN 2 ELSE 3 END"


def _priority_rank() -> sa.Column[int]:
    """The priority's place in the order a list sorts by."""
    return sa.Column("priority_rank", sa.SmallInteger, sa.Computed(PRIORITY_RANK, persisted=True))


def _linked_entity() -> list[sa.Column[Any]]:
    """The linked entity, and the parts of it a list filters on."""
    return [
        sa.Column("linked_entity", JSONB),
        *(
            sa.Column(name, sa.Text, sa.Computed(f"linked_entity->>'{field}'", persisted=True))
            for name, field in (
                ("linked_entity_type", "type"),
                ("linked_entity_id", "id"),
                ("linked_pipeline_id", "pipelineId"),
            )
        ),
    ]


task_view = sa.Table(
    "task_view",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("task_id", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("title_type", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    _priority_rank(),
    sa.Column("outcome", sa.Text),
    sa.Column("due_date", sa.DateTime(timezone=True)),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("owner_id", sa.Text),
    sa.Column("owner_name", sa.Text),
    sa.Column("queue_id", sa.Text),
    sa.Column("claim_status", sa.Text, nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("claimed_by", sa.Text),
    sa.Column("related_customer_id", sa.Text),
    sa.Column("related_customer_name", sa.Text),
    sa.Column("related_conversation_id", sa.Text),
    sa.Column("collaborator_ids", JSONB, nullable=False),
    sa.Column("completion_notes", sa.Text),
    sa.Column("tags", JSONB, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    *_linked_entity(),
    sa.Column("auto_complete", JSONB),
    sa.Column("agent_reminders", JSONB),
    sa.Column("auto_complete_at", sa.DateTime(timezone=True)),
    sa.Column("snoozed_until", sa.DateTime(timezone=True)),
    sa.Column("snooze_count", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # The task as the API answers it: its JSON, as the domain encodes it (migration 0018).
    sa.Column("body", sa.Text, nullable=False),
    # The hash of the task's latest event, the head its next one chains from (migration 0030).
    sa.Column("head_hash", sa.LargeBinary, nullable=False),
    sa.PrimaryKeyConstraint("tenant_id", "task_id"),
)

# What a search reads of each task (migration 0029): the view's columns a list filters and
# sorts on, and title and description lowercased once when written, as ILIKE would lowercase
# them on every row it tests. Narrow rows that a common word's matches are read from quickly,
# and that a command leaving the text alone updates in place (no index covers what it changes).
task_search = sa.Table(
    "task_search",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("task_id", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    _priority_rank(),
    sa.Column("due_date", sa.DateTime(timezone=True)),
    sa.Column("owner_id", sa.Text),
    sa.Column("queue_id", sa.Text),
    sa.Column("related_customer_id", sa.Text),
    *_linked_entity(),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("title_folded", sa.Text, sa.Computed("lower(title)", persisted=True)),
    sa.Column("description_folded", sa.Text, sa.Computed("lower(description)", persisted=True)),
    sa.PrimaryKeyConstraint("tenant_id", "task_id"),
)

projection_checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("projection", sa.Text, primary_key=True),
    sa.Column("transaction_id", XID8, nullable=False),
    sa.Column("global_position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Each tenant's log folded in commit order, digest_n = sha256(digest_{n-1} || hash of event
# n), by the runner of projections/log_digest.py, with its checkpoint (migration 0020).
log_digests = sa.Table(
    "log_digests",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("digest", sa.LargeBinary, nullable=False),
    sa.Column("events", sa.BigInteger, nullable=False),
    # The last of the tenant's events folded in.
    sa.Column("transaction_id", XID8, nullable=False),
    sa.Column("global_position", sa.BigInteger, nullable=False),
)

# What the rollups need to know of each live task to move its counts when it changes.
rollup_tasks = sa.Table(
    "rollup_tasks",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("task_id", sa.Text, nullable=False),
    sa.Column("owner_id", sa.Text),
    sa.Column("queue_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("due_date", sa.DateTime(timezone=True)),
    sa.PrimaryKeyConstraint("tenant_id", "task_id"),
)


def bucket_key(name: str, *columns: str) -> sa.UniqueConstraint:
    """The key of a table of counts whose buckets may name no owner or queue: NULL there,
    as in the task view, and one bucket for all such tasks (NULLS NOT DISTINCT), where a
    primary key could hold no NULL."""
    return sa.UniqueConstraint(*columns, name=name, postgresql_nulls_not_distinct=True)


def key_columns(table: sa.Table) -> tuple[str, ...]:
    """The columns that identify a row: the primary key, else the table's bucket key."""
    if table.primary_key.columns:
        return tuple(column.name for column in table.primary_key.columns)
    [key] = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    return tuple(column.name for column in key.columns)


task_totals = sa.Table(
    "task_totals",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("owner_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    sa.Column("completion_ms", sa.BigInteger, nullable=False),
    bucket_key("task_totals_key", "tenant_id", "owner_id", "status", "priority"),
)


def _tasks_by_creation(name: str, period: str) -> sa.Table:
    """Live tasks by owner, status and priority, per UTC day or week (the `period` column)
    of their creation."""
    return sa.Table(
        name,
        metadata,
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column(period, sa.Date, nullable=False),
        sa.Column("owner_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("priority", sa.Text, nullable=False),
        sa.Column("tasks", sa.BigInteger, nullable=False),
        sa.Column("completion_ms", sa.BigInteger, nullable=False),
        bucket_key(f"{name}_key", "tenant_id", period, "owner_id", "status", "priority"),
    )


tasks_by_created_day = _tasks_by_creation("tasks_by_created_day", "created_on")
# The same counts by the week of creation (weeks start on Monday, UTC): a period's whole weeks
# are summed here, a row for each bucket of a week rather than one for each of its days.
tasks_by_created_week = _tasks_by_creation("tasks_by_created_week", "created_week")

completions_by_day = sa.Table(
    "completions_by_day",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("completed_on", sa.Date, nullable=False),
    sa.Column("owner_id", sa.Text),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    bucket_key("completions_by_day_key", "tenant_id", "completed_on", "owner_id"),
)

# Open tasks by the day they fall due: overdue and due today without a scan of the view.
open_tasks_by_due_day = sa.Table(
    "open_tasks_by_due_day",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("owner_id", sa.Text),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    bucket_key("open_tasks_by_due_day_key", "tenant_id", "due_on", "owner_id"),
)

# Open tasks by the day they were created and the day they fall due, whoever owns them: the
# overdue tasks of a period of creation without a scan of its tasks on the view.
open_tasks_by_created_day = sa.Table(
    "open_tasks_by_created_day",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("created_on", sa.Date, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("tenant_id", "created_on", "due_on"),
)

# The history tables count events, not live tasks: a count only grows, whatever becomes of
# the task later (reopened, reassigned again, deleted).
completions_history = sa.Table(
    "completions_history",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("completed_on", sa.Date, nullable=False),
    sa.Column("owner_id", sa.Text),
    sa.Column("queue_id", sa.Text),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("completions", sa.BigInteger, nullable=False),
    bucket_key(
        "completions_history_key", "tenant_id", "completed_on", "owner_id", "queue_id", "outcome"
    ),
)

snoozes_history = sa.Table(
    "snoozes_history",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("snoozed_on", sa.Date, nullable=False),
    sa.Column("owner_id", sa.Text),
    sa.Column("queue_id", sa.Text),
    sa.Column("snoozes", sa.BigInteger, nullable=False),
    bucket_key("snoozes_history_key", "tenant_id", "snoozed_on", "owner_id", "queue_id"),
)

reassignments_history = sa.Table(
    "reassignments_history",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("reassigned_on", sa.Date, nullable=False),
    sa.Column("from_owner_id", sa.Text),
    sa.Column("to_owner_id", sa.Text),
    sa.Column("queue_id", sa.Text),
    sa.Column("reassignments", sa.BigInteger, nullable=False),
    bucket_key(
        "reassignments_history_key",
        "tenant_id",
        "reassigned_on",
        "from_owner_id",
        "to_owner_id",
        "queue_id",
    ),
)

owner_names = sa.Table(
    "owner_names",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("owner_id", sa.Text, nullable=False),
    sa.Column("owner_name", sa.Text),
    sa.PrimaryKeyConstraint("tenant_id", "owner_id"),
)
