"""A search tests title and description in one condition, and reads each page once.

`tasks_matching` found a search's matches in two statements joined by UNION ALL: the title's
matches, then the description's that the title does not hold. A common word's matches lie on
nearly every page of the tenant's rows, so the second statement read most of them again. One
condition, `title_folded LIKE p OR description_folded LIKE p`, is answered by a BitmapOr of
the two trigram indexes, whose pages are each read once; the set of matches is the same. The
planner misjudged such a condition on the task view's 1 kB rows, tested with ILIKE (migration
0011); on these narrow rows, tested with LIKE, it chooses the two indexes for common, rare and
absent words alike.

Through the function, with the page's sort and count, 20 alternating runs on 100,000 tasks: a
word in 15% of them 37.8 → 31.4 ms and 34.0 → 27.5 ms (median), a phrase in 5.6% 19.8 → 19.3
ms, a single letter, which no trigram narrows, 147 → 101 ms.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""

import importlib

from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

_NARROW = importlib.import_module("migrations.versions.0029_search_reads_narrow_rows")

_TWO_STATEMENTS = """
                'SELECT %1$s FROM public.task_search v WHERE v.tenant_id = $1 '
                'AND v.title_folded LIKE $2 '
                'UNION ALL '
                'SELECT %1$s FROM public.task_search v WHERE v.tenant_id = $1 '
                'AND v.description_folded LIKE $2 AND NOT v.title_folded LIKE $2', selected)"""
_ONE_CONDITION = """
                'SELECT %1$s FROM public.task_search v WHERE v.tenant_id = $1 '
                'AND (v.title_folded LIKE $2 OR v.description_folded LIKE $2)', selected)"""

# CREATE OR REPLACE keeps the function's privileges (migration 0029's).
_REPLACED = _NARROW.TASKS_MATCHING.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
TASKS_MATCHING = _REPLACED.replace(_TWO_STATEMENTS, _ONE_CONDITION)


def upgrade() -> None:
    op.execute(TASKS_MATCHING)


def downgrade() -> None:
    op.execute(_REPLACED)
