"""append_to_stream writes each event with an INSERT of its own, chained as it goes.

Migration 0022 gathered a command's events in arrays (each payload parsed, each hash) and
wrote them with one INSERT over their unnest. A command appends one event, nearly always, and
for it the arrays cost PostgreSQL more than a statement: under pgbench (16 connections, one
1 kB event to a new stream each time, eight alternating rounds of 3 s) the chained append ran
at 0.83 of the unchained one's rate with the arrays and 0.90 with an INSERT per event. The
events, their hashes and their order are the same.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""

import importlib
from typing import Any

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def _migration(name: str) -> Any:
    return importlib.import_module(f"migrations.versions.{name}")


_CHAIN = _migration("0020_tamper_evident_log")

APPEND_CHAINED_EVENTS = f"""
                DECLARE
                    chained bytea := {_CHAIN.NO_HASH};
                    parsed_metadata jsonb := event_metadata::jsonb;
                    payload jsonb;
                BEGIN
                    IF expected_version > 0 THEN
                        SELECT e.hash INTO chained FROM events e
                         WHERE e.tenant_id = tenant AND e.stream_id = stream
                           AND e.stream_version = expected_version;
                    END IF;
                    FOR i IN 1 .. cardinality(event_types) LOOP
                        payload := payloads[i]::jsonb;
                        chained := event_hash(chained, tenant, stream, expected_version + i,
                                              event_types[i], payload_versions[i], payload,
                                              parsed_metadata, recorded_at);
                        INSERT INTO events (tenant_id, stream_id, stream_version, event_type,
                                            payload_version, data, metadata, recorded_at, hash)
                        VALUES (tenant, stream, expected_version + i, event_types[i],
                                payload_versions[i], payload, parsed_metadata, recorded_at,
                                chained);
                    END LOOP;
                END;"""


def replace_append(
    append_events: str, after_view_write: str = "", after_view_delete: str = ""
) -> None:
    """append_to_stream with its events written by `append_events` (and what follows the
    view's row, as migration 0020 takes it), planned for any tenant as migration 0023 set it
    (a replaced function loses its settings)."""
    _CHAIN.replace_append_to_stream(append_events, after_view_write, after_view_delete)
    op.execute(
        _migration("0023_key_lookups_planned_for_any_tenant").plan_for_any_tenant(
            "append_to_stream"
        )
    )


def upgrade() -> None:
    replace_append(APPEND_CHAINED_EVENTS)


def downgrade() -> None:
    replace_append(_migration("0022_append_parses_each_payload_once").APPEND_CHAINED_EVENTS)
