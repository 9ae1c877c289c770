"""Row-level security on every tenant table: a second wall behind the `WHERE tenant_id` of
each query. The service acts as the role tasks_tenant inside a tenant's transaction, with
the setting tasks.tenant_id naming the tenant; the policies show that role only those rows.
The tables' owner (the role that runs the migrations, the projection runners and the operator
commands, which work across tenants) is not subject to them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"

# What a tenant's transaction may do to each table; nothing else is granted.
PRIVILEGES = {
    "tenants": "SELECT",
    "api_keys": "SELECT",
    "events": "SELECT, INSERT",
    "task_view": "SELECT, INSERT, UPDATE, DELETE",
    "idempotency_records": "SELECT, INSERT, UPDATE",
    "rollup_tasks": "SELECT",
    "task_totals": "SELECT",
    "tasks_by_created_day": "SELECT",
    "completions_by_day": "SELECT",
    "owner_names": "SELECT",
}

# Read by the stats, which fold in what the runner has not applied yet; holds no tenant's data.
SHARED_READS = ("projection_checkpoints",)


def upgrade() -> None:
    # A role belongs to the whole cluster, which other databases of it may have created first.
    op.execute(f"""
        DO $$
        BEGIN
            CREATE ROLE {TENANT_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$
    """)
    # Lets a connecting role that is not a superuser switch to it.
    op.execute(f"""
        DO $$
        BEGIN
            EXECUTE format('GRANT {TENANT_ROLE} TO %I', current_user);
        EXCEPTION WHEN unique_violation THEN NULL;
        END $$
    """)
    for table, privileges in PRIVILEGES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"""
            CREATE POLICY tenant_rows ON {table} TO {TENANT_ROLE}
            USING (tenant_id = current_setting('tasks.tenant_id', true))
            WITH CHECK (tenant_id = current_setting('tasks.tenant_id', true))
        """)
        op.execute(f"GRANT {privileges} ON {table} TO {TENANT_ROLE}")
    for table in SHARED_READS:
        op.execute(f"GRANT SELECT ON {table} TO {TENANT_ROLE}")


def downgrade() -> None:
    for table in SHARED_READS:
        op.execute(f"REVOKE ALL ON {table} FROM {TENANT_ROLE}")
    for table in PRIVILEGES:
        op.execute(f"REVOKE ALL ON {table} FROM {TENANT_ROLE}")
        op.execute(f"DROP POLICY tenant_rows ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    # The role stays: other databases of the cluster may still use it.
