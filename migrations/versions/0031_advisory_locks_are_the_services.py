"""The advisory locks are the service's: no other role of the database may take one.

PostgreSQL lets every role call the functions that take an advisory lock, and the service's
locks are keyed by what anyone can compute (a class number and `hashtext` of a tenant's id,
or of a stream's). An analyst, whose role reads the analytics tables and nothing else, could
hold a tenant's lock and stall every request of that tenant. The functions that take a lock
are now executable by the role that runs the migrations, the service's, and by tasks_tenant
(which takes a stream's lock inside append_to_stream), by no other. Those that release one
stay open: a session releases only its own.

Revoking a privilege of the system's functions takes a superuser: run by another role,
PostgreSQL only warns, and the functions stay open to every role (README, "The PostgreSQL
server").

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07
"""

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"
LOCK_FUNCTIONS = [
    f"pg_{attempt}advisory_{scope}lock{mode}({arguments})"
    for attempt in ("", "try_")
    for scope in ("", "xact_")
    for mode in ("", "_shared")
    for arguments in ("bigint", "integer, integer")
]


def upgrade() -> None:
    for function in LOCK_FUNCTIONS:
        op.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO CURRENT_USER, {TENANT_ROLE}")


def downgrade() -> None:
    for function in LOCK_FUNCTIONS:
        op.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM CURRENT_USER, {TENANT_ROLE}")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO PUBLIC")
