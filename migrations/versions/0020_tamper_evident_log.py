"""The log is tamper-evident: each task's events form a hash chain, and each tenant's log a
running digest.

A trigger refuses UPDATE, DELETE and TRUNCATE on `events` (migration 0001), but the tables'
owner can disable it. What the owner cannot do unseen is change what was already read:

- `events.hash` is sha256(previous version's hash || the event's content), version 1
  chaining from 32 zero bytes. The content is the jsonb text of
  [tenant_id, stream_id, stream_version, event_type, payload_version, data, metadata,
  recorded_at in UTC as 'YYYY-MM-DDTHH:MI:SS.USZ'], so it is reproducible from what is
  stored and from an `audit export` line alike (`event_hash`). `append_to_stream` chains a
  command's events as it appends them: it holds the stream's lock already (migration 0012),
  so the head it chains to is committed and stays the head, and no writer waits for another
  that did not before. A BEFORE INSERT trigger chains every other insert that gives no hash
  (`audit import`, a tenant's move between cells). On the command's path the trigger's call
  cost PostgreSQL more than the hash does in the function it already runs. A hash given
  wrong shows as an edit does.
- `log_digests` holds, per tenant, what the runner of the follower `log_digest` folded from
  the tenant's log in commit order: digest_n = sha256(digest_{n-1} || hash of event n), from
  32 zero bytes, and how many events that covers, written with the follower's checkpoint.
  An event edited, removed, inserted or reordered behind the checkpoint, or a whole stream
  deleted, no longer folds to it (`tasks-api audit verify`).

Existing events are chained here, whole streams a batch at a time, each in version order.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

import importlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TENANT_ROLE = "tasks_tenant"
# Streams chained by one statement of the backfill.
BATCH = 2_000
# The follower that keeps the digests: its checkpoint is in projection_checkpoints.
LOG_DIGEST = "log_digest"
# What version 1 chains from.
NO_HASH = "decode(repeat('00', 32), 'hex')"

EVENT_HASH = """
    CREATE FUNCTION event_hash(
        previous bytea,
        tenant text,
        stream text,
        version integer,
        event_type text,
        payload_version smallint,
        data jsonb,
        metadata jsonb,
        recorded_at timestamptz
    ) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN sha256(previous || convert_to(jsonb_build_array(
        tenant, stream, version, event_type, payload_version, data, metadata,
        to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text, 'UTF8'))
"""

# The whole chain of every stream whose key is in (:after, :last], recomputed from version 1.
CHAIN_STREAMS = f"""
    WITH RECURSIVE chain (tenant_id, stream_id, stream_version, global_position, hash) AS (
        SELECT e.tenant_id, e.stream_id, e.stream_version, e.global_position,
               event_hash({NO_HASH}, e.tenant_id, e.stream_id, e.stream_version, e.event_type,
                          e.payload_version, e.data, e.metadata, e.recorded_at)
          FROM events e
         WHERE e.stream_version = 1
           AND (e.tenant_id, e.stream_id) > (:after_tenant, :after_stream)
           AND (e.tenant_id, e.stream_id) <= (:last_tenant, :last_stream)
        UNION ALL
        SELECT n.tenant_id, n.stream_id, n.stream_version, n.global_position,
               event_hash(c.hash, n.tenant_id, n.stream_id, n.stream_version, n.event_type,
                          n.payload_version, n.data, n.metadata, n.recorded_at)
          FROM chain c
          JOIN events n ON n.tenant_id = c.tenant_id AND n.stream_id = c.stream_id
                       AND n.stream_version = c.stream_version + 1
    )
    UPDATE events e SET hash = chain.hash FROM chain
     WHERE e.tenant_id = chain.tenant_id AND e.global_position = chain.global_position
"""


# The key of the last of the next BATCH streams after (:after_tenant, :after_stream).
LAST_OF_NEXT_STREAMS = f"""
    SELECT tenant_id, stream_id FROM (
        SELECT tenant_id, stream_id FROM events
         WHERE stream_version = 1 AND (tenant_id, stream_id) > (:after_tenant, :after_stream)
         ORDER BY tenant_id, stream_id
         LIMIT {BATCH}
    ) streams
    ORDER BY tenant_id DESC, stream_id DESC
    LIMIT 1
"""


# How append_to_stream writes a command's events, its stream's lock held: each chained to the
# one before it, the first to the stream's head, which the lock keeps the head. (Not found,
# for a version the stream has not reached, it leaves the hashes to the trigger, which
# refuses the gap.)
APPEND_CHAINED_EVENTS = f"""
                DECLARE
                    chained bytea := {NO_HASH};
                    hashes bytea[];
                BEGIN
                    IF expected_version > 0 THEN
                        SELECT e.hash INTO chained FROM events e
                         WHERE e.tenant_id = tenant AND e.stream_id = stream
                           AND e.stream_version = expected_version;
                    END IF;
                    FOR i IN 1 .. cardinality(event_types) LOOP
                        chained := event_hash(chained, tenant, stream, expected_version + i,
                                              event_types[i], payload_versions[i],
                                              payloads[i]::jsonb, event_metadata::jsonb,
                                              recorded_at);
                        hashes[i] := chained;
                    END LOOP;
                    INSERT INTO events (tenant_id, stream_id, stream_version, event_type,
                                        payload_version, data, metadata, recorded_at, hash)
                    SELECT tenant, stream, expected_version + e.n::integer, e.type,
                           e.payload_version, e.data::jsonb, event_metadata::jsonb,
                           recorded_at, e.hash
                      FROM unnest(event_types, payload_versions, payloads, hashes)
                           WITH ORDINALITY AS e(type, payload_version, data, hash, n);
                END;"""


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN hash bytea")
    op.execute(EVENT_HASH)
    _chain_existing_events()
    op.execute("ALTER TABLE events ALTER COLUMN hash SET NOT NULL")
    op.execute(f"""
        CREATE FUNCTION events_chain() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            previous bytea := {NO_HASH};
        BEGIN
            IF NEW.stream_version > 1 THEN
                SELECT e.hash INTO previous FROM events e
                 WHERE e.tenant_id = NEW.tenant_id AND e.stream_id = NEW.stream_id
                   AND e.stream_version = NEW.stream_version - 1;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'task % of tenant % has no version % to chain version % to',
                        NEW.stream_id, NEW.tenant_id, NEW.stream_version - 1, NEW.stream_version
                        USING ERRCODE = 'foreign_key_violation',
                              CONSTRAINT = 'events_chain';
                END IF;
            END IF;
            NEW.hash := event_hash(previous, NEW.tenant_id, NEW.stream_id, NEW.stream_version,
                                   NEW.event_type, NEW.payload_version, NEW.data, NEW.metadata,
                                   NEW.recorded_at);
            RETURN NEW;
        END $$
    """)
    # append_to_stream gives each event its hash; only other writers' inserts need the trigger.
    op.execute("""
        CREATE TRIGGER events_chain BEFORE INSERT ON events
            FOR EACH ROW WHEN (NEW.hash IS NULL) EXECUTE FUNCTION events_chain()
    """)
    op.execute(f"GRANT INSERT (hash) ON events TO {TENANT_ROLE}")
    replace_append_to_stream(APPEND_CHAINED_EVENTS)
    op.execute("""
        CREATE TABLE log_digests (
            tenant_id text PRIMARY KEY,
            digest bytea NOT NULL,
            events bigint NOT NULL,
            transaction_id xid8 NOT NULL,
            global_position bigint NOT NULL
        )
    """)
    # Guarded as every table of tenants' rows is (migration 0005); a tenant may read its own.
    op.execute("ALTER TABLE log_digests ENABLE ROW LEVEL SECURITY")
    op.execute(f"""
        CREATE POLICY tenant_rows ON log_digests TO {TENANT_ROLE}
        USING (tenant_id = current_setting('tasks.tenant_id', true))
    """)
    op.execute(f"GRANT SELECT ON log_digests TO {TENANT_ROLE}")


def downgrade() -> None:
    replace_append_to_stream(_migration("0012_requests_in_one_round_trip").APPEND_EVENTS)
    op.execute(f"REVOKE INSERT (hash) ON events FROM {TENANT_ROLE}")
    op.execute(f"REVOKE ALL ON log_digests FROM {TENANT_ROLE}")
    op.execute("DROP TABLE log_digests")
    op.execute(f"DELETE FROM projection_checkpoints WHERE projection = '{LOG_DIGEST}'")
    op.execute("DROP TRIGGER events_chain ON events")
    op.execute("DROP FUNCTION events_chain()")
    op.execute("ALTER TABLE events DROP COLUMN hash")
    op.execute(
        "DROP FUNCTION event_hash(bytea, text, text, integer, text, smallint, jsonb, jsonb, "
        "timestamptz)"
    )


def _migration(name: str) -> Any:
    return importlib.import_module(f"migrations.versions.{name}")


def append_to_stream_sql(
    append_events: str,
    after_view_write: str = "",
    after_view_delete: str = "",
    *,
    head: bool = False,
) -> str:
    """append_to_stream as migration 0018 left it, its events written by `append_events`,
    doing `after_view_write` once it has written the task view's row and `after_view_delete`
    once it has deleted it (`head`: as migration 0012's template takes it)."""
    rounds = _migration("0012_requests_in_one_round_trip")
    return rounds.append_to_stream_sql(
        "CREATE OR REPLACE",
        _migration("0017_tenant_moves").FENCE_CHECK,
        [*rounds.VIEW_COLUMNS, "body"],
        append_events,
        after_view_write,
        after_view_delete,
        head=head,
    )


def replace_append_to_stream(
    append_events: str, after_view_write: str = "", after_view_delete: str = ""
) -> None:
    op.execute(append_to_stream_sql(append_events, after_view_write, after_view_delete))


def _chain_existing_events() -> None:
    conn = op.get_bind()
    # The log refuses updates; this one only fills the new column.
    op.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete")
    after = {"after_tenant": "", "after_stream": ""}
    while last := conn.execute(sa.text(LAST_OF_NEXT_STREAMS), after).first():
        conn.execute(
            sa.text(CHAIN_STREAMS),
            {**after, "last_tenant": last.tenant_id, "last_stream": last.stream_id},
        )
        after = {"after_tenant": last.tenant_id, "after_stream": last.stream_id}
    op.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete")
