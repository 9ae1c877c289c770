"""Moving a tenant between cells: fences, a placement count, and the relay's mark.

- `tenant_fences` lists the tenants whose writes this cell refuses: one moving away (while
  its events are copied to the target, then for good, `moved_to` naming the target, so that
  a process that has not heard of the move yet cannot write here), or one arriving
  (`moved_to` NULL) until the copy is whole. `append_to_stream` takes a shared lock on the
  tenant and refuses a fenced tenant's commands; the move takes the lock exclusively to set
  the fence, so it waits for every command already running and none starts unseen.
- Only a fenced tenant's events may be deleted, and only by a transaction that names it in
  the setting `tasks.moved_out_tenant`: the log stays append-only for everything else.
- `tenants.placement` counts a tenant's moves (in the directory): the /v1/events cursor
  names the placement it was read on.
- `relay_published` marks, for a tenant moved onto this cell, the last of its events the
  source cell's relay had already published: this cell's relay does not publish them again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

import importlib

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"
# The first key of the two-key advisory locks that hold a tenant's commands back from a move.
TENANT_MOVE_LOCKS = 4017
FENCE_CHECK = f"""
            PERFORM pg_advisory_xact_lock_shared({TENANT_MOVE_LOCKS}, hashtext(tenant));
            IF EXISTS (SELECT FROM tenant_fences f WHERE f.tenant_id = tenant) THEN
                RAISE EXCEPTION 'tenant % is moving between cells', tenant
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          CONSTRAINT = 'tenant_fences';
            END IF;"""


def _append_to_stream() -> object:
    return importlib.import_module("migrations.versions.0012_requests_in_one_round_trip")


def upgrade() -> None:
    op.execute("ALTER TABLE tenants ADD COLUMN placement integer NOT NULL DEFAULT 0")
    op.execute("""
        CREATE TABLE tenant_fences (
            tenant_id text PRIMARY KEY,
            moved_to text,
            fenced_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("""
        CREATE TABLE relay_published (
            tenant_id text PRIMARY KEY,
            transaction_id xid8 NOT NULL,
            global_position bigint NOT NULL
        )
    """)
    # Guarded as every table of tenants' rows is (migration 0005): a command queued on its
    # task's lock checks its fence already as the tenant.
    for table in ("tenant_fences", "relay_published"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"""
            CREATE POLICY tenant_rows ON {table} TO {TENANT_ROLE}
            USING (tenant_id = current_setting('tasks.tenant_id', true))
        """)
        op.execute(f"GRANT SELECT ON {table} TO {TENANT_ROLE}")
    op.execute(
        _append_to_stream().append_to_stream_sql(  # type: ignore[attr-defined]
            "CREATE OR REPLACE", FENCE_CHECK
        )
    )
    op.execute("""
        CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                IF OLD.tenant_id = current_setting('tasks.moved_out_tenant', true)
                   AND EXISTS (SELECT FROM tenant_fences f WHERE f.tenant_id = OLD.tenant_id)
                THEN
                    RETURN OLD;
                END IF;
            END IF;
            RAISE EXCEPTION 'events are append-only: % refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$
    """)


def downgrade() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events are append-only: % refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$
    """)
    op.execute(
        _append_to_stream().append_to_stream_sql("CREATE OR REPLACE")  # type: ignore[attr-defined]
    )
    for table in ("tenant_fences", "relay_published"):
        op.execute(f"REVOKE ALL ON {table} FROM {TENANT_ROLE}")
    op.execute("DROP TABLE relay_published")
    op.execute("DROP TABLE tenant_fences")
    op.execute("ALTER TABLE tenants DROP COLUMN placement")
