"""A request's work in one round trip, and rate limits leased by the slice.

A tenant's statement used to take three round trips of transaction framing (BEGIN with the
tenant entered, the work, COMMIT), and a command a fourth to read its task; with the rate
limit counted in PostgreSQL before each, a read cost 0.49 ms of the server's CPU where the
read itself costs 0.11. These functions enter the tenant themselves, as the first thing they
do, so one statement outside any transaction is the whole of a read or of a command's write:

- `tenant_task` reads a live task;
- `append_to_stream` appends a stream's events, makes the task view hold the task they leave
  (or forgets a deleted one) and records the command's answer for its Idempotency-Key.

Each enters the tenant as the service's transactions do (migration 0005): the role
tasks_tenant with tasks.tenant_id set, both local to the statement's transaction, so the
row-level security policies bind every statement that follows. They are PL/pgSQL so that
each statement is planned when it first runs, after the role has changed (an SQL function's
body is planned before any of it runs, as the tables' owner, whom the policies do not bind).

`lease_rate_limit` replaces `take_rate_limit` (migration 0004): a process takes a slice of a
counter's second at once, and hands back what it did not use, so the counts are written once
per slice rather than once per request.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

import importlib
from collections.abc import Iterable

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"
# The first key of the two-key advisory locks that queue a stream's writers (app/store).
STREAM_LOCKS = 4012
COUNTER_LOCKS = 4004

ENTER_TENANT = (
    f"PERFORM set_config('role', '{TENANT_ROLE}', true), "
    "set_config('tasks.tenant_id', tenant, true);"
)

# The task view's columns a command writes (every one but the generated), and their types.
VIEW_COLUMNS = {
    "tenant_id": "text",
    "task_id": "text",
    "version": "integer",
    "title": "text",
    "title_type": "text",
    "description": "text",
    "status": "text",
    "priority": "text",
    "outcome": "text",
    "due_date": "timestamptz",
    "completed_at": "timestamptz",
    "owner_id": "text",
    "owner_name": "text",
    "queue_id": "text",
    "claim_status": "text",
    "claimed_at": "timestamptz",
    "claimed_by": "text",
    "related_customer_id": "text",
    "related_customer_name": "text",
    "related_conversation_id": "text",
    "collaborator_ids": "jsonb",
    "completion_notes": "text",
    "tags": "jsonb",
    "metadata": "jsonb",
    "linked_entity": "jsonb",
    "auto_complete": "jsonb",
    "agent_reminders": "jsonb",
    "auto_complete_at": "timestamptz",
    "snoozed_until": "timestamptz",
    "snooze_count": "integer",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}


def upgrade() -> None:
    # Its columns are declared, not the view's row type: a rebuild swaps in a new table,
    # which a function returning the old one's type would keep from being dropped.
    declared = ", ".join(f"{name} {type_}" for name, type_ in VIEW_COLUMNS.items())
    selected = ", ".join(f"v.{name}" for name in VIEW_COLUMNS)
    op.execute(f"""
        CREATE FUNCTION tenant_task(tenant text, task text) RETURNS TABLE ({declared})
        LANGUAGE plpgsql AS $$
        BEGIN
            {ENTER_TENANT}
            RETURN QUERY
                SELECT {selected} FROM task_view v
                 WHERE v.tenant_id = tenant AND v.task_id = task;
        END
        $$
    """)
    op.execute(append_to_stream_sql())
    op.execute("DROP FUNCTION take_rate_limit(text, integer, integer, double precision)")
    op.execute(f"""
        CREATE FUNCTION lease_rate_limit(
            counter_key text,
            quota integer,
            window_seconds integer,
            at double precision,
            wanted integer,
            returned_second bigint,
            returned integer
        ) RETURNS TABLE (
            granted integer,
            taken_at double precision,
            counted_seconds bigint[],
            counted_requests integer[]
        )
        LANGUAGE plpgsql AS $$
        DECLARE
            this_second bigint;
            used bigint;
        BEGIN
            -- A count lost to a crash costs less than an fsync on every lease.
            PERFORM set_config('synchronous_commit', 'off', true);
            -- One clock for every server: the database's, unless a test sets the time.
            taken_at := coalesce(at, extract(epoch FROM clock_timestamp()));
            this_second := floor(taken_at);

            -- Leases of one counter queue here, so that each counts every one before it.
            PERFORM pg_advisory_xact_lock({COUNTER_LOCKS}, hashtext(counter_key));
            -- What a process leased of an earlier second and did not use.
            IF returned > 0 THEN
                UPDATE rate_limit_counts c SET requests = c.requests - returned
                 WHERE c.counter = counter_key AND c.second = returned_second;
            END IF;
            SELECT array_agg(c.second ORDER BY c.second),
                   array_agg(c.requests ORDER BY c.second),
                   coalesce(sum(c.requests), 0)
              INTO counted_seconds, counted_requests, used
              FROM rate_limit_counts c
             WHERE c.counter = counter_key AND c.second >= this_second - window_seconds
               AND c.requests > 0;
            granted := greatest(least(wanted, quota - used), 0);
            IF granted > 0 THEN
                INSERT INTO rate_limit_counts AS c (counter, second, requests)
                VALUES (counter_key, this_second, granted)
                ON CONFLICT (counter, second) DO UPDATE SET requests = c.requests + granted;
            END IF;

            -- Seconds no window reaches any more, of any counter (an idle tenant's, a
            -- passing address's). A window's length of margin keeps clear of leases a
            -- moment behind this one; SKIP LOCKED, of a sweep running beside it.
            DELETE FROM rate_limit_counts
             WHERE (counter, second) IN (
                SELECT c.counter, c.second FROM rate_limit_counts c
                 WHERE c.second < this_second - 2 * window_seconds
                 LIMIT 100
                   FOR UPDATE SKIP LOCKED
             );
            RETURN NEXT;
        END
        $$
    """)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION lease_rate_limit(text, integer, integer, double precision, integer, "
        "bigint, integer)"
    )
    op.execute(importlib.import_module("migrations.versions.0004_rate_limits").TAKE_RATE_LIMIT)
    op.execute(
        "DROP FUNCTION append_to_stream(text, text, integer, text[], smallint[], text[], text, "
        "timestamptz, jsonb, text, bytea, smallint, bytea, text, timestamptz)"
    )
    op.execute("DROP FUNCTION tenant_task(text, text)")


# How append_to_stream writes the events, its stream's lock held.
APPEND_EVENTS = """
                INSERT INTO events (tenant_id, stream_id, stream_version, event_type,
                                    payload_version, data, metadata, recorded_at)
                SELECT tenant, stream, expected_version + e.n::integer, e.type,
                       e.payload_version, e.data::jsonb, event_metadata::jsonb, recorded_at
                  FROM unnest(event_types, payload_versions, payloads)
                       WITH ORDINALITY AS e(type, payload_version, data, n);"""


def append_to_stream_sql(
    create: str = "CREATE",
    before_entering: str = "",
    view_columns: Iterable[str] = VIEW_COLUMNS,
    append_events: str = APPEND_EVENTS,
    after_view_write: str = "",
    after_view_delete: str = "",
    *,
    head: bool = False,
) -> str:
    """The function append_to_stream; `before_entering` runs first, as the tables' owner, the
    events are written by `append_events`, and the task view's row is written into
    `view_columns` (those of this migration's view), then `after_view_write` runs, or
    `after_view_delete` once the row is deleted.

    With `head` (migration 0030) it takes the stream's head as the caller read it with its
    version, `previous_hash`, which `append_events` chains from into the variable `chained`;
    the view's row keeps the new head in `head_hash`, and the function returns it."""
    view_columns = list(view_columns)
    values = [f"r.{name}" for name in view_columns]
    if head:
        view_columns.append("head_hash")
        values.append("chained")
    columns = ", ".join(view_columns)
    from_row = ", ".join(values)
    replace = ", ".join(f"{name} = EXCLUDED.{name}" for name in view_columns[2:])
    return f"""
        {create} FUNCTION append_to_stream(
            tenant text,
            stream text,
            expected_version integer,
            {"previous_hash bytea," if head else ""}
            event_types text[],
            payload_versions smallint[],
            payloads text[],
            event_metadata text,
            recorded_at timestamptz,
            task_row jsonb,
            answer_key text,
            answer_fingerprint bytea,
            answer_status smallint,
            answer_body bytea,
            answer_etag text,
            answers_kept_after timestamptz
        ) RETURNS {"bytea" if head else "void"}
        LANGUAGE plpgsql AS $$
        {"DECLARE chained bytea;" if head else ""}
        BEGIN
            {before_entering}
            {ENTER_TENANT}
            IF cardinality(event_types) > 0 THEN
                -- A stream's writers queue here, before any of them writes and so before it
                -- has a transaction id: each takes its id after the one before it has
                -- committed, and commit order, (transaction id, position), is version order.
                -- A new stream has no writer before it.
                IF expected_version > 0 THEN
                    PERFORM pg_advisory_xact_lock(
                        {STREAM_LOCKS}, hashtext(tenant || '/' || stream));
                END IF;
                {append_events}
                IF task_row IS NULL THEN
                    DELETE FROM task_view WHERE tenant_id = tenant AND task_id = stream;
                    {after_view_delete}
                ELSE
                    INSERT INTO task_view ({columns})
                    SELECT {from_row} FROM jsonb_populate_record(NULL::task_view, task_row) r
                    ON CONFLICT (tenant_id, task_id) DO UPDATE SET {replace};
                    {after_view_write}
                END IF;
            END IF;
            IF answer_key IS NOT NULL THEN
                INSERT INTO idempotency_records AS a (tenant_id, idempotency_key, fingerprint,
                                                      status_code, body, etag, created_at)
                VALUES (tenant, answer_key, answer_fingerprint, answer_status, answer_body,
                        answer_etag, recorded_at)
                ON CONFLICT (tenant_id, idempotency_key) DO UPDATE
                    SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
                        body = EXCLUDED.body, etag = EXCLUDED.etag,
                        created_at = EXCLUDED.created_at
                    WHERE a.created_at <= answers_kept_after;
                -- A live answer for the key: another request with it came first.
                IF NOT FOUND THEN
                    RAISE unique_violation USING
                        MESSAGE = 'an answer is already recorded for this Idempotency-Key',
                        CONSTRAINT = 'idempotency_records_pkey';
                END IF;
            END IF;
            {"RETURN chained;" if head else ""}
        END
        $$
    """
