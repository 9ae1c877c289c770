"""append_to_stream parses each event's payload and the command's metadata once.

Migration 0020 parsed every payload twice, once to hash it and once more to insert it, and
the metadata once per event for the hash and once more per event for the insert. Parsing a
task's JSON costs PostgreSQL about as much as hashing it, so the chain cost an append nearly
twice what it needs to. Each is now parsed once and the same jsonb is hashed and stored.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

import importlib
from typing import Any

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _migration(name: str) -> Any:
    return importlib.import_module(f"migrations.versions.{name}")


_CHAIN = _migration("0020_tamper_evident_log")

# As migration 0020's, each payload and the metadata parsed once, before they are hashed.
APPEND_CHAINED_EVENTS = f"""
                DECLARE
                    chained bytea := {_CHAIN.NO_HASH};
                    parsed_metadata jsonb := event_metadata::jsonb;
                    parsed_payloads jsonb[];
                    hashes bytea[];
                BEGIN
                    IF expected_version > 0 THEN
                        SELECT e.hash INTO chained FROM events e
                         WHERE e.tenant_id = tenant AND e.stream_id = stream
                           AND e.stream_version = expected_version;
                    END IF;
                    FOR i IN 1 .. cardinality(event_types) LOOP
                        parsed_payloads[i] := payloads[i]::jsonb;
                        chained := event_hash(chained, tenant, stream, expected_version + i,
                                              event_types[i], payload_versions[i],
                                              parsed_payloads[i], parsed_metadata, recorded_at);
                        hashes[i] := chained;
                    END LOOP;
                    INSERT INTO events (tenant_id, stream_id, stream_version, event_type,
                                        payload_version, data, metadata, recorded_at, hash)
                    SELECT tenant, stream, expected_version + e.n::integer, e.type,
                           e.payload_version, e.data, parsed_metadata, recorded_at, e.hash
                      FROM unnest(event_types, payload_versions, parsed_payloads, hashes)
                           WITH ORDINALITY AS e(type, payload_version, data, hash, n);
                END;"""


def upgrade() -> None:
    _CHAIN.replace_append_to_stream(APPEND_CHAINED_EVENTS)


def downgrade() -> None:
    _CHAIN.replace_append_to_stream(_CHAIN.APPEND_CHAINED_EVENTS)
