"""Tables of the service itself, outside the event log: tenants and their API keys."""

from __future__ import annotations

import sqlalchemy as sa

from projections.tables import XID8, metadata

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("tier", sa.Text, nullable=False),
    sa.Column("rate_limit", sa.Integer),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # In the home cell's directory: the cell that holds the tenant (None: the home cell),
    # and how many times it has moved.
    sa.Column("cell", sa.Text),
    sa.Column("placement", sa.Integer, nullable=False, server_default="0"),
)

# The tenants whose writes a cell refuses: moving away (to `moved_to`), or arriving (None).
tenant_fences = sa.Table(
    "tenant_fences",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("moved_to", sa.Text),
    sa.Column(
        "fenced_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
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

# On a cell a tenant was moved onto: the last of its events the source's relay had published.
relay_published = sa.Table(
    "relay_published",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("transaction_id", XID8, nullable=False),
    sa.Column("global_position", sa.BigInteger, nullable=False),
)
