"""Appends no longer NOTIFY the projection runners, which poll instead.

NOTIFY takes one lock for the whole cluster at commit and holds it through the commit's WAL
flush, so with a NOTIFY in every command each commit waited for every other one's flush: under
64 concurrent commands pg_stat_activity showed the COMMITs waiting on Lock/object, and the
commands ran at a fraction of the rate of the same work without it (docs/performance.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TRIGGER events_appended ON events")
    op.execute("DROP FUNCTION notify_events_appended")


def downgrade() -> None:
    op.execute("""
        CREATE FUNCTION notify_events_appended() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('events_appended', '');
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER events_appended AFTER INSERT ON events
            FOR EACH STATEMENT EXECUTE FUNCTION notify_events_appended()
    """)
