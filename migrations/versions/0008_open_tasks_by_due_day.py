"""Open tasks counted by due day, so that overdue and due-today counts cost the same at a
thousand tasks or a million.

Until now those counts were index scans of every open task of the tenant due before tomorrow
(616,000 index entries, 130 to 185 ms, at 1,000,000 tasks). With this rollup, what was due
before today is a sum over days, and only today's part is counted on the task view.

The rollups learn each task's due date, which they did not record, so they are replayed from
the log: their tables are emptied and their checkpoint removed, and the projection runner of
`tasks-api serve` rebuilds them from the first event (`tasks-api projections rebuild
task_rollups` does it faster, before serving). Until they have caught up, statistics and
analytics answer 503.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"
ROLLUP_TABLES = (
    "rollup_tasks",
    "task_totals",
    "tasks_by_created_day",
    "completions_by_day",
    "owner_names",
)


def upgrade() -> None:
    op.execute("ALTER TABLE rollup_tasks ADD COLUMN due_date timestamptz")
    op.execute("""
        CREATE TABLE open_tasks_by_due_day (
            tenant_id text NOT NULL,
            due_on date NOT NULL,
            owner_id text NOT NULL,
            tasks bigint NOT NULL,
            PRIMARY KEY (tenant_id, due_on, owner_id)
        )
    """)
    op.execute("ALTER TABLE open_tasks_by_due_day ENABLE ROW LEVEL SECURITY")
    op.execute(f"""
        CREATE POLICY tenant_rows ON open_tasks_by_due_day TO {TENANT_ROLE}
        USING (tenant_id = current_setting('tasks.tenant_id', true))
        WITH CHECK (tenant_id = current_setting('tasks.tenant_id', true))
    """)
    op.execute(f"GRANT SELECT ON open_tasks_by_due_day TO {TENANT_ROLE}")
    _replay_rollups()


def downgrade() -> None:
    op.execute("DROP TABLE open_tasks_by_due_day")
    op.execute("ALTER TABLE rollup_tasks DROP COLUMN due_date")
    _replay_rollups()


def _replay_rollups() -> None:
    op.execute(f"TRUNCATE {', '.join(ROLLUP_TABLES)}")
    op.execute("DELETE FROM projection_checkpoints WHERE projection = 'task_rollups'")
