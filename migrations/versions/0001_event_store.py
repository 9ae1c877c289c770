"""The event store, the task view, tenants and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


SCHEMA = [
    """
    CREATE TABLE tenants (
        tenant_id text PRIMARY KEY,
        name text NOT NULL,
        tier text NOT NULL CHECK (tier IN ('starter', 'growth', 'enterprise')),
        rate_limit integer CHECK (rate_limit > 0),
        created_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE api_keys (
        tenant_id text NOT NULL REFERENCES tenants,
        key_id text NOT NULL,
        key_hash bytea NOT NULL UNIQUE,
        created_at timestamptz NOT NULL,
        revoked_at timestamptz,
        PRIMARY KEY (tenant_id, key_id)
    )
    """,
    """
    CREATE UNIQUE INDEX api_keys_key_id ON api_keys (key_id)
    """,
    """
    CREATE TABLE events (
        global_position bigint GENERATED ALWAYS AS IDENTITY,
        tenant_id text NOT NULL,
        stream_id text NOT NULL,
        stream_version integer NOT NULL CHECK (stream_version > 0),
        event_type text NOT NULL CHECK (event_type IN (
            'TASK_CREATED', 'TASK_UPDATED', 'TASK_COMPLETED',
            'TASK_DELETED', 'TASK_REASSIGNED', 'TASK_SNOOZED')),
        payload_version smallint NOT NULL DEFAULT 1,
        data jsonb NOT NULL,
        metadata jsonb NOT NULL,
        recorded_at timestamptz NOT NULL,
        transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
        PRIMARY KEY (tenant_id, global_position),
        CONSTRAINT events_stream_version UNIQUE (tenant_id, stream_id, stream_version)
    )
    """,
    """
    -- Readers of the whole log follow commit order: (transaction id, position).
    CREATE INDEX events_commit_order ON events (transaction_id, global_position)
    """,
    """
    CREATE INDEX events_tenant_commit_order
        ON events (tenant_id, transaction_id, global_position)
    """,
    """
    -- History is never rewritten: the database itself refuses it.
    CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'events are append-only: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
    """
    CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION events_are_append_only()
    """,
    """
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only()
    """,
    """
    CREATE TABLE task_view (
        tenant_id text NOT NULL,
        task_id text NOT NULL,
        version integer NOT NULL,
        title text NOT NULL,
        title_type text NOT NULL,
        description text,
        status text NOT NULL,
        priority text NOT NULL,
        priority_rank smallint GENERATED ALWAYS AS (
            CASE priority WHEN 'low' THEN 0 WHEN 'normal' THEN 1 WHEN 'high' THEN 2 ELSE 3 END
        ) STORED,
        outcome text,
        due_date timestamptz,
        completed_at timestamptz,
        owner_id text,
        owner_name text,
        queue_id text,
        claim_status text NOT NULL,
        claimed_at timestamptz,
        claimed_by text,
        related_customer_id text,
        related_customer_name text,
        related_conversation_id text,
        collaborator_ids jsonb NOT NULL,
        completion_notes text,
        tags jsonb NOT NULL,
        metadata jsonb NOT NULL,
        linked_entity jsonb,
        linked_entity_type text GENERATED ALWAYS AS (linked_entity->>'type') STORED,
        linked_entity_id text GENERATED ALWAYS AS (linked_entity->>'id') STORED,
        linked_pipeline_id text GENERATED ALWAYS AS (linked_entity->>'pipelineId') STORED,
        auto_complete jsonb,
        agent_reminders jsonb,
        snoozed_until timestamptz,
        snooze_count integer NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (tenant_id, task_id)
    )
    """,
    """
    CREATE INDEX task_view_due ON task_view (tenant_id, due_date, task_id)
    """,
    """
    CREATE INDEX task_view_owner ON task_view (tenant_id, owner_id, due_date, task_id)
    """,
    """
    CREATE INDEX task_view_customer
        ON task_view (tenant_id, related_customer_id, due_date, task_id)
    """,
    """
    CREATE INDEX task_view_status ON task_view (tenant_id, status, due_date, task_id)
    """,
    """
    CREATE INDEX task_view_created ON task_view (tenant_id, created_at, task_id)
    """,
]


def upgrade() -> None:
    for statement in SCHEMA:
        op.execute(statement)
    # Substring search uses a trigram index where the server ships pg_trgm.
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
                CREATE INDEX task_view_title_search ON task_view USING gin (title gin_trgm_ops);
                CREATE INDEX task_view_description_search
                    ON task_view USING gin (description gin_trgm_ops);
            END IF;
        END $$;
    """)


def downgrade() -> None:
    for table in ("task_view", "events", "api_keys", "tenants"):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP FUNCTION events_are_append_only")
