"""Appending events copied from another log (an `audit export`, the cell a tenant moves from),
checked against the hash chain they carry.

The database chains each event it appends (migration 0020): from its content and the hash
of its task's version before it, here. A copy whose chained hash here differs from the one
it carries was altered, or one of its task's versions before it was."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from projections.log import RecordedEvent
from projections.tables import events


async def append_copies(conn: AsyncConnection, copies: Sequence[RecordedEvent]) -> int | None:
    """Append the copies in their order (positions are taken in it; the transaction id is
    this one's): the index of the first whose hash here differs from the one it carries,
    None when every one matches."""
    rows = [
        {
            "tenant_id": copy.tenant_id,
            "stream_id": copy.stream_id,
            "stream_version": copy.version,
            "event_type": copy.type,
            "payload_version": copy.payload_version,
            "data": copy.data,
            "metadata": copy.metadata,
            "recorded_at": copy.recorded_at,
        }
        for copy in copies
    ]
    chained = await conn.execute(
        events.insert().returning(events.c.hash, sort_by_parameter_order=True), rows
    )
    for index, (copy, (hash_here,)) in enumerate(zip(copies, chained, strict=True)):
        if hash_here != copy.hash:
            return index
    return None
