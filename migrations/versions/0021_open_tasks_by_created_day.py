"""Open tasks counted by the day they were created and the day they fall due, so that the
overdue tasks of a period of creation cost the same at a thousand tasks or a million.

Until now analytics over a period counted them on the task view: every open task created in
the period, read through an index (110,000 entries, about 28 ms, for a month of a million
tasks). With this rollup the period's whole days are a sum over days, and only what the day
alone cannot tell is counted on the view: the tasks due today, and a period's part days.

The new table is filled from the rollups' own record of each task (`rollup_tasks`), which
stands at their checkpoint as the other rollups do, under a lock that holds the runner back
until the migration commits. Analyst roles that exist already are given it as they were
given the other rollups (app/analysts.py).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"
ANALYST_POLICY_PREFIX = "analyst_"
CLOSED_STATUSES = "('completed', 'deferred')"


def open_to_tenants_and_analysts(table: str) -> None:
    """A new rollup readable by the tenant role, its rows kept to the tenant, and by every
    analyst role that exists, as app/analysts.py grants the others."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"""
        CREATE POLICY tenant_rows ON {table} TO {TENANT_ROLE}
        USING (tenant_id = current_setting('tasks.tenant_id', true))
        WITH CHECK (tenant_id = current_setting('tasks.tenant_id', true))
    """)
    op.execute(f"GRANT SELECT ON {table} TO {TENANT_ROLE}")
    op.execute(f"""
        DO $$
        DECLARE
            analyst record;
        BEGIN
            FOR analyst IN SELECT role_name, scope_tenant_id FROM analysts LOOP
                EXECUTE format('GRANT SELECT ON {table} TO %I', analyst.role_name);
                EXECUTE format(
                    'CREATE POLICY %I ON {table} FOR SELECT TO %I USING (%s)',
                    '{ANALYST_POLICY_PREFIX}' || analyst.role_name, analyst.role_name,
                    CASE WHEN analyst.scope_tenant_id IS NULL THEN 'true'
                         ELSE format('tenant_id = %L', analyst.scope_tenant_id) END);
            END LOOP;
        END $$
    """)


def upgrade() -> None:
    op.execute("""
        CREATE TABLE open_tasks_by_created_day (
            tenant_id text NOT NULL,
            created_on date NOT NULL,
            due_on date NOT NULL,
            tasks bigint NOT NULL,
            PRIMARY KEY (tenant_id, created_on, due_on)
        )
    """)
    open_to_tenants_and_analysts("open_tasks_by_created_day")
    op.execute("LOCK TABLE rollup_tasks IN SHARE MODE")
    op.execute(f"""
        INSERT INTO open_tasks_by_created_day (tenant_id, created_on, due_on, tasks)
        SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date,
               (due_date AT TIME ZONE 'UTC')::date, count(*)
          FROM rollup_tasks
         WHERE status NOT IN {CLOSED_STATUSES} AND due_date IS NOT NULL
         GROUP BY 1, 2, 3
    """)


def downgrade() -> None:
    op.execute("DROP TABLE open_tasks_by_created_day")
