"""A number a client writes in a free-form field is read the way PostgreSQL's jsonb keeps it,
so the task a command leaves in memory is the one a replay of the stored events folds to."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from app.database import Database
from app.http.json_document import decode_command

LITERALS = [
    "9.150058848176134e+16",
    "1e2",
    "1.0e1",
    "12.5e1",
    "1.25e1",
    "1.50",
    "100.0",
    "1.5e-7",
    "-0.0",
    "0e5",
    "0.30000000000000004",
    "-2.5E+3",
    "91500588481761340",
]


@pytest.mark.parametrize("literal", LITERALS)
async def test_a_number_reads_as_jsonb_gives_it_back(db: Database, literal: str) -> None:
    document = f'{{"n": {literal}}}'.encode()
    kept = await db.pool.fetchval("SELECT $1::text::jsonb::text", document.decode())

    read = decode_command(document, dict[str, Any])
    replayed = msgspec.json.decode(kept)

    assert read == replayed
    assert type(read["n"]) is type(replayed["n"])
    assert msgspec.json.encode(read) == msgspec.json.encode(replayed)
