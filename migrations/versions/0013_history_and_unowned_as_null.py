"""History tables of what happened, and tasks without an owner counted under NULL everywhere.

The rollups count live tasks as they stand now: a task reopened leaves `completions_by_day`,
a deleted one leaves every table. So they cannot say how many completions, snoozes or
reassignments there were. Three history tables count those events per UTC day, owner and
queue; a count only ever grows as the runner applies events.

A task without an owner was NULL in the task view and '' in the rollups, so a join between
them lost those tasks. The rollups now say NULL too; their key, which a primary key could not
hold with a NULL in it, is a unique key whose NULLs are not distinct (one bucket for all the
unowned tasks). The rollups learn each task's queue, for the history tables.

The rollups are replayed from the log, as migration 0008 did: their tables are emptied and
their checkpoint removed, and the projection runner of `tasks-api serve` rebuilds them from
the first event (`tasks-api projections rebuild task_rollups` does it faster, before serving).
Until they have caught up, statistics and analytics answer 503.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"

# Each table of counts keyed by owner: its key columns.
BUCKETS = {
    "task_totals": ("tenant_id", "owner_id", "status", "priority"),
    "tasks_by_created_day": ("tenant_id", "created_on", "owner_id", "status", "priority"),
    "completions_by_day": ("tenant_id", "completed_on", "owner_id"),
    "open_tasks_by_due_day": ("tenant_id", "due_on", "owner_id"),
}

HISTORY = {
    "completions_history": """
        tenant_id text NOT NULL,
        completed_on date NOT NULL,
        owner_id text,
        queue_id text,
        outcome text NOT NULL,
        completions bigint NOT NULL,
        CONSTRAINT completions_history_key UNIQUE NULLS NOT DISTINCT
            (tenant_id, completed_on, owner_id, queue_id, outcome)
    """,
    "snoozes_history": """
        tenant_id text NOT NULL,
        snoozed_on date NOT NULL,
        owner_id text,
        queue_id text,
        snoozes bigint NOT NULL,
        CONSTRAINT snoozes_history_key UNIQUE NULLS NOT DISTINCT
            (tenant_id, snoozed_on, owner_id, queue_id)
    """,
    "reassignments_history": """
        tenant_id text NOT NULL,
        reassigned_on date NOT NULL,
        from_owner_id text,
        to_owner_id text,
        queue_id text,
        reassignments bigint NOT NULL,
        CONSTRAINT reassignments_history_key UNIQUE NULLS NOT DISTINCT
            (tenant_id, reassigned_on, from_owner_id, to_owner_id, queue_id)
    """,
}

ROLLUP_TABLES = ("rollup_tasks", *BUCKETS, *HISTORY, "owner_names")


def upgrade() -> None:
    op.execute(f"TRUNCATE {', '.join(name for name in ROLLUP_TABLES if name not in HISTORY)}")
    op.execute("DELETE FROM projection_checkpoints WHERE projection = 'task_rollups'")
    op.execute("ALTER TABLE rollup_tasks ALTER COLUMN owner_id DROP NOT NULL")
    op.execute("ALTER TABLE rollup_tasks ADD COLUMN queue_id text")
    for table, key in BUCKETS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN owner_id DROP NOT NULL")
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {table}_key "
            f"UNIQUE NULLS NOT DISTINCT ({', '.join(key)})"
        )
    for table, columns in HISTORY.items():
        op.execute(f"CREATE TABLE {table} ({columns})")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"""
            CREATE POLICY tenant_rows ON {table} TO {TENANT_ROLE}
            USING (tenant_id = current_setting('tasks.tenant_id', true))
            WITH CHECK (tenant_id = current_setting('tasks.tenant_id', true))
        """)
        op.execute(f"GRANT SELECT ON {table} TO {TENANT_ROLE}")


def downgrade() -> None:
    for table in HISTORY:
        op.execute(f"DROP TABLE {table}")
    op.execute(f"TRUNCATE {', '.join(name for name in ROLLUP_TABLES if name not in HISTORY)}")
    op.execute("DELETE FROM projection_checkpoints WHERE projection = 'task_rollups'")
    for table, key in BUCKETS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_key")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN owner_id SET NOT NULL")
        op.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(key)})")
    op.execute("ALTER TABLE rollup_tasks DROP COLUMN queue_id")
    op.execute("ALTER TABLE rollup_tasks ALTER COLUMN owner_id SET NOT NULL")
