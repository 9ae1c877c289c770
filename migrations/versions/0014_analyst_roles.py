"""Analysts: login roles that read the analytics tables and nothing else, and how fresh the
rollups are, in their reach.

`tasks-api analyst create` makes each analyst's role, grants it SELECT on the tables
docs/analytics.md documents, and binds its rows with a row-level security policy of its own:
`tenant_id = '<its tenant>'`, or every row for a platform analyst. Nothing the analyst can
set widens it. `analysts` records who they are, for `analyst list` and for the migrations
that add a table to their reach; only the tables' owner reads it.

`projection_lag` shows an analyst, who may not read the checkpoints, how many events in its
reach each asynchronous projection has not applied yet, and for how long the oldest has
waited: the view reads as its owner and keeps to the analyst's reach itself.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE analysts (
            role_name text PRIMARY KEY,
            scope_tenant_id text REFERENCES tenants (tenant_id),
            created_at timestamptz NOT NULL
        )
    """)
    op.execute("""
        CREATE VIEW projection_lag WITH (security_barrier) AS
        WITH reach AS (
            SELECT (SELECT a.scope_tenant_id FROM analysts a WHERE a.role_name = session_user)
                AS tenant_id
        )
        SELECT p.projection,
               count(e.global_position) AS events_behind,
               coalesce(
                   floor(extract(epoch FROM now() - min(e.recorded_at)) * 1000), 0
               )::bigint AS lag_ms
        FROM (VALUES ('task_rollups')) AS p (projection)
        LEFT JOIN projection_checkpoints c USING (projection)
        CROSS JOIN reach
        LEFT JOIN events e
               ON (e.transaction_id, e.global_position)
                  > (coalesce(c.transaction_id, '0'::xid8), coalesce(c.global_position, 0))
              AND e.tenant_id = coalesce(reach.tenant_id, e.tenant_id)
        GROUP BY p.projection
    """)


def downgrade() -> None:
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM analysts) THEN
                RAISE EXCEPTION 'analysts remain: revoke each (tasks-api analyst revoke) first';
            END IF;
        END $$
    """)
    op.execute("DROP VIEW projection_lag")
    op.execute("DROP TABLE analysts")
