"""The directory of cells: which cell holds each tenant.

Every cell has today's schema; the home cell's `tenants` and `api_keys` are the directory
(app/cells.py). `cell` names the cell that holds the tenant's events, views and
transactions; NULL is the home cell, where every tenant created before cells stays. On the
other cells `tenants` lists the tenants they hold, `cell` unset.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tenants ADD COLUMN cell text")


def downgrade() -> None:
    op.execute("ALTER TABLE tenants DROP COLUMN cell")
