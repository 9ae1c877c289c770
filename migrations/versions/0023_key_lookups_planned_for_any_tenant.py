"""The functions that read or write one task plan their statements once, for any tenant.

PostgreSQL plans a function's statement for the values of its first runs in a session, and
keeps doing so while that looks cheaper. For a tenant the statistics have not seen yet (one
created since the last ANALYZE, or moved in from another cell) it then expects a single row
for the whole tenant, and every index that starts with `tenant_id` looks as good as the key.
The head of a task's chain was read through `events_tenant_commit_order`, scanning all of the
tenant's events on every command, for as long as the statistics stayed behind: at 390,000
events an append to an existing task took 0.3-1.5 s, and 64 writers appended 47-76 events a
second instead of 3,400. A task was read through `task_view_status`, all of the tenant's
tasks, for a session's first five reads (9-21 ms each at 100,000 tasks, 0.05 ms by its key).
Planned for any value, a statement's estimate for `tenant_id = $1` is the table's rows over
its tenants, and the key wins by far. Every statement of these functions looks up by a key,
so the one plan suits them all, and planning it once also spares each call its planning.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

GENERIC_PLANS = "plan_cache_mode = force_generic_plan"
# The command's append, the read of a task (migration 0018), and the trigger that chains
# an import's and a move's copies (migration 0020).
KEY_LOOKUPS = ("append_to_stream", "tenant_task(text, text)", "events_chain()")


def plan_for_any_tenant(function: str) -> str:
    return f"ALTER FUNCTION {function} SET {GENERIC_PLANS}"


def upgrade() -> None:
    for function in KEY_LOOKUPS:
        op.execute(plan_for_any_tenant(function))


def downgrade() -> None:
    for function in KEY_LOOKUPS:
        op.execute(f"ALTER FUNCTION {function} RESET plan_cache_mode")
