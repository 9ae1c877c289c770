"""Projection checkpoints and the stats and analytics rollups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = [
    """
    CREATE TABLE projection_checkpoints (
        projection text PRIMARY KEY,
        transaction_id xid8 NOT NULL,
        global_position bigint NOT NULL,
        updated_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE rollup_tasks (
        tenant_id text NOT NULL,
        task_id text NOT NULL,
        owner_id text NOT NULL,
        status text NOT NULL,
        priority text NOT NULL,
        created_at timestamptz NOT NULL,
        completed_at timestamptz,
        PRIMARY KEY (tenant_id, task_id)
    )
    """,
    """
    CREATE TABLE task_totals (
        tenant_id text NOT NULL,
        owner_id text NOT NULL,
        status text NOT NULL,
        priority text NOT NULL,
        tasks bigint NOT NULL,
        completion_ms bigint NOT NULL,
        PRIMARY KEY (tenant_id, owner_id, status, priority)
    )
    """,
    """
    CREATE TABLE tasks_by_created_day (
        tenant_id text NOT NULL,
        created_on date NOT NULL,
        owner_id text NOT NULL,
        status text NOT NULL,
        priority text NOT NULL,
        tasks bigint NOT NULL,
        completion_ms bigint NOT NULL,
        PRIMARY KEY (tenant_id, created_on, owner_id, status, priority)
    )
    """,
    """
    CREATE TABLE completions_by_day (
        tenant_id text NOT NULL,
        completed_on date NOT NULL,
        owner_id text NOT NULL,
        tasks bigint NOT NULL,
        PRIMARY KEY (tenant_id, completed_on, owner_id)
    )
    """,
    """
    CREATE TABLE owner_names (
        tenant_id text NOT NULL,
        owner_id text NOT NULL,
        owner_name text,
        PRIMARY KEY (tenant_id, owner_id)
    )
    """,
    # Every append wakes the projection runners; one notice per transaction.
    """
    CREATE FUNCTION notify_events_appended() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('events_appended', '');
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER events_appended AFTER INSERT ON events
        FOR EACH STATEMENT EXECUTE FUNCTION notify_events_appended()
    """,
    # When an open task is due to complete itself: autoComplete.at, parsed.
    "ALTER TABLE task_view ADD COLUMN auto_complete_at timestamptz",
    """
    CREATE INDEX task_view_auto_complete_due ON task_view (auto_complete_at)
        WHERE status NOT IN ('completed', 'deferred')
    """,
    # overdue and dueToday depend on the clock, so they are counted on the task view.
    """
    CREATE INDEX task_view_open_due ON task_view (tenant_id, due_date)
        WHERE status NOT IN ('completed', 'deferred')
    """,
    """
    CREATE INDEX task_view_owner_open_due ON task_view (tenant_id, owner_id, due_date)
        WHERE status NOT IN ('completed', 'deferred')
    """,
]

TABLES = (
    "owner_names",
    "completions_by_day",
    "tasks_by_created_day",
    "task_totals",
    "rollup_tasks",
    "projection_checkpoints",
)


def upgrade() -> None:
    for statement in SCHEMA:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER events_appended ON events")
    op.execute("DROP FUNCTION notify_events_appended")
    op.execute("ALTER TABLE task_view DROP COLUMN auto_complete_at")
    op.execute("DROP INDEX task_view_owner_open_due")
    op.execute("DROP INDEX task_view_open_due")
    for table in TABLES:
        op.execute(f"DROP TABLE {table}")
