"""A search reads narrow rows of its own, with title and description lowercased once.

A search of a word in 15% of a tenant's 100,000 tasks rechecks its pattern on some 15,000
task view rows of 1 kB (the task's answer is among their columns): 92 MB of pages, more than
the 128 MB of shared buffers hold beside everything else, and ILIKE lowercases title and
description again for every row it tests. task_search holds what a search reads of each
task, the columns a list filters and sorts on and title and description lowercased when
written (generated columns), about 330 bytes a row; `tasks_matching` tests them with LIKE
against the lowercased pattern, which is what ILIKE does in a multibyte database. That
word's matches were counted in 37-98 ms on the view, in 20 ms here.

`tasks_matching(pattern, wanted)` now returns the columns named in `wanted` only, as a record
whose columns the caller declares: a list's page needs the id, the sort's column and those
its criteria test, and the function held 15,000 rows of all fourteen in memory before the
statement read them (its page and count: 21.5-22 ms, against 18.4-20 ms with two columns).

The trigram indexes move with the text. The view's were half the cost of every command's
write of its row: no update of it is heap-only (`updated_at` is indexed), so each one gave
the description's index its trigrams again. task_search is written by the same statements
as the view, and a command that leaves title and description alone changes none of its
indexed columns: with room left on its pages (fillfactor), that update stays on the page
and touches no index. Serially, 3,000 status changes cost 140-165 µs each with the view's
trigram indexes, and 143-150 µs without them and with task_search written too.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06
"""

import importlib
from typing import Any

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"
# Room on each page for a row's next version, so that an update stays on its page.
FILLFACTOR = 80
# The columns written, as projections/tables.py declares them; the rest are generated.
WRITTEN = {
    "tenant_id": "text NOT NULL",
    "task_id": "text NOT NULL",
    "title": "text NOT NULL",
    "description": "text",
    "status": "text NOT NULL",
    "priority": "text NOT NULL",
    "due_date": "timestamptz",
    "owner_id": "text",
    "queue_id": "text",
    "related_customer_id": "text",
    "linked_entity": "jsonb",
    "created_at": "timestamptz NOT NULL",
    "updated_at": "timestamptz NOT NULL",
}
PRIORITY_RANK = "CASE priority WHEN 'low' THEN 0 WHEN 'normal' THEN 1 WHEN 'high' THEN 2 ELSE 3 END"
GENERATED = {
    "priority_rank": f"smallint GENERATED ALWAYS AS ({PRIORITY_RANK}) STORED",
    "linked_entity_type": "text GENERATED ALWAYS AS (linked_entity->>'type') STORED",
    "linked_entity_id": "text GENERATED ALWAYS AS (linked_entity->>'id') STORED",
    "linked_pipeline_id": "text GENERATED ALWAYS AS (linked_entity->>'pipelineId') STORED",
    "title_folded": "text GENERATED ALWAYS AS (lower(title)) STORED",
    "description_folded": "text GENERATED ALWAYS AS (lower(description)) STORED",
}

_WRITTEN_LIST = ", ".join(WRITTEN)
_REPLACE_ALL = ", ".join(f"{name} = EXCLUDED.{name}" for name in list(WRITTEN)[2:])
# What append_to_stream does after it has written the task view's row, and deleted it.
AFTER_VIEW_WRITE = f"""
                    INSERT INTO task_search ({_WRITTEN_LIST})
                    SELECT {", ".join(f"r.{name}" for name in WRITTEN)}
                      FROM jsonb_populate_record(NULL::task_search, task_row) r
                    ON CONFLICT (tenant_id, task_id) DO UPDATE SET {_REPLACE_ALL};"""
AFTER_VIEW_DELETE = """
                    DELETE FROM task_search WHERE tenant_id = tenant AND task_id = stream;"""

# Like migration 0019's function, it reads as the tables' owner, confined to the tenant named
# by tasks.tenant_id, and searches each column by its own index. Each name in `wanted` is
# quoted as an identifier: it can name a column of the tenant's rows and nothing else.
TASKS_MATCHING = """
        CREATE FUNCTION tasks_matching(pattern text, wanted text[]) RETURNS SETOF record
        LANGUAGE plpgsql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, public
        AS $$
        DECLARE
            selected text := (SELECT string_agg(format('v.%I', name), ', ' ORDER BY n)
                                FROM unnest(wanted) WITH ORDINALITY AS w(name, n));
        BEGIN
            RETURN QUERY EXECUTE format(
                'SELECT %1$s FROM public.task_search v WHERE v.tenant_id = $1 '
                'AND v.title_folded LIKE $2 '
                'UNION ALL '
                'SELECT %1$s FROM public.task_search v WHERE v.tenant_id = $1 '
                'AND v.description_folded LIKE $2 AND NOT v.title_folded LIKE $2', selected)
                USING current_setting('tasks.tenant_id', true), lower(pattern);
        END
        $$
"""


def _migration(name: str) -> Any:
    return importlib.import_module(f"migrations.versions.{name}")


_MATCHING = _migration("0019_search_reads_each_match_once")
_APPEND = _migration("0026_append_writes_each_event_by_itself")


def upgrade() -> None:
    columns = [f"{name} {type_}" for name, type_ in {**WRITTEN, **GENERATED}.items()]
    op.execute(f"""
        CREATE TABLE task_search ({", ".join(columns)}, PRIMARY KEY (tenant_id, task_id))
        WITH (fillfactor = {FILLFACTOR})
    """)
    op.execute(f"INSERT INTO task_search ({_WRITTEN_LIST}) SELECT {_WRITTEN_LIST} FROM task_view")
    _search_indexes("task_search", "title_folded", "description_folded")
    op.execute("ALTER TABLE task_search ENABLE ROW LEVEL SECURITY")
    op.execute(f"""
        CREATE POLICY tenant_rows ON task_search TO {TENANT_ROLE}
        USING (tenant_id = current_setting('tasks.tenant_id', true))
        WITH CHECK (tenant_id = current_setting('tasks.tenant_id', true))
    """)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON task_search TO {TENANT_ROLE}")
    op.execute(TASKS_MATCHING)
    op.execute("REVOKE ALL ON FUNCTION tasks_matching(text, text[]) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION tasks_matching(text, text[]) TO {TENANT_ROLE}")
    op.execute("DROP FUNCTION tasks_matching(text)")
    _APPEND.replace_append(_APPEND.APPEND_CHAINED_EVENTS, AFTER_VIEW_WRITE, AFTER_VIEW_DELETE)
    op.execute("DROP INDEX IF EXISTS task_view_title_search")
    op.execute("DROP INDEX IF EXISTS task_view_description_search")


def downgrade() -> None:
    _search_indexes("task_view", "title", "description")
    _APPEND.replace_append(_APPEND.APPEND_CHAINED_EVENTS)
    op.execute(_MATCHING.tasks_matching_sql())
    op.execute("REVOKE ALL ON FUNCTION tasks_matching(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION tasks_matching(text) TO {TENANT_ROLE}")
    op.execute("DROP FUNCTION tasks_matching(text, text[])")
    op.execute(f"REVOKE ALL ON task_search FROM {TENANT_ROLE}")
    op.execute("DROP TABLE task_search")


def _search_indexes(table: str, title: str, description: str) -> None:
    """The trigram indexes of `table` on its `title` and `description` columns, where the
    server has pg_trgm (migration 0001), led by the tenant where it has btree_gin (0009)."""
    op.execute(f"""
        DO $$
        DECLARE
            tenant_first text := CASE WHEN EXISTS (SELECT FROM pg_extension
                                               WHERE extname = 'btree_gin')
                                 THEN 'tenant_id, ' ELSE '' END;
        BEGIN
            IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm') THEN
                EXECUTE format('CREATE INDEX {table}_title_search ON {table} '
                               'USING gin (%s{title} gin_trgm_ops)', tenant_first);
                EXECUTE format('CREATE INDEX {table}_description_search ON {table} '
                               'USING gin (%s{description} gin_trgm_ops)', tenant_first);
            END IF;
        END $$
    """)
