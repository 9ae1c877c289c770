"""A tenant's transaction may no longer give an event its transaction id (or its position).

`transaction_id` is the log's commit order: every reader follows (transaction id, position)
past its checkpoint, so an event appended with an id below the projections' checkpoints would
be skipped by every one of them for good, and one far above would stay beyond their horizon.
The role `tasks_tenant` keeps INSERT on the columns a writer gives, as the service always has;
the two that place an event in the log are the log's own.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"
# The columns of an event its writer gives.
APPENDED_COLUMNS = (
    "tenant_id, stream_id, stream_version, event_type, payload_version, data, metadata, recorded_at"
)


def upgrade() -> None:
    op.execute(f"REVOKE INSERT ON events FROM {TENANT_ROLE}")
    op.execute(f"GRANT INSERT ({APPENDED_COLUMNS}) ON events TO {TENANT_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE INSERT ({APPENDED_COLUMNS}) ON events FROM {TENANT_ROLE}")
    op.execute(f"GRANT INSERT ON events TO {TENANT_ROLE}")
