"""Idempotency records: the first response to a retried request, kept for 24 hours.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE idempotency_records (
            tenant_id text NOT NULL,
            idempotency_key text NOT NULL,
            fingerprint bytea NOT NULL,
            status_code smallint NOT NULL,
            body bytea NOT NULL,
            etag text,
            created_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, idempotency_key)
        )
    """)
    op.execute("CREATE INDEX idempotency_records_created ON idempotency_records (created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_records")
