"""Tables of the service itself, outside the event log: tenants and their API keys."""

from __future__ import annotations

import sqlalchemy as sa

from projections.tables import metadata

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("tier", sa.Text, nullable=False),
    sa.Column("rate_limit", sa.Integer),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("key_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.PrimaryKeyConstraint("tenant_id", "key_id"),
)

idempotency_records = sa.Table(
    "idempotency_records",
    metadata,
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.LargeBinary, nullable=False),
    sa.Column("status_code", sa.SmallInteger, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("etag", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("tenant_id", "idempotency_key"),
)

rate_limit_counts = sa.Table(
    "rate_limit_counts",
    metadata,
    sa.Column("counter", sa.Text, nullable=False),
    sa.Column("second", sa.BigInteger, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("counter", "second"),
)
