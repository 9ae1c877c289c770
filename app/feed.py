"""GET /v1/events as a use case: a page of the tenant's events in commit order, and the cursor
that reads on from it, wherever the tenant has been moved meanwhile.

A cursor names the tenant's placement (how many times it had moved when the page was read),
how many of its events the reader has seen, and the last one's (transaction id, position) in
that placement's cell. On the same placement the pair is where to read on. After a move the
pair names nothing on the new cell, but the count does: a move appends the tenant's events on
the target in their commit order, before any the tenant writes there, so the events a reader
has seen are the first ones of the tenant's log on the target, and it reads on after as many.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.database import Database
from projections.log import Checkpoint, RecordedEvent, read_after
from store.tenant import tenant_transaction

# placement.seen.transactionId.position; before placements a cursor was transactionId.position.
# Each count, id and position is a PostgreSQL bigint, and none reaches 10**18 (xid8 counts
# transactions, the position events).
CURSOR = r"^(?:([0-9]{1,9})\.([0-9]{1,18})\.)?([0-9]{1,18})\.([0-9]{1,18})$"
_CURSOR = re.compile(CURSOR)

_SEEN_THROUGH = (
    "SELECT count(*) FROM events WHERE tenant_id = $1"
    " AND (transaction_id, global_position) <= ($2::text::xid8, $3)"
)
_NAMES_AN_EVENT = (
    "SELECT EXISTS (SELECT FROM events WHERE tenant_id = $1"
    " AND transaction_id = $2::text::xid8 AND global_position = $3)"
)
_NTH = (
    "SELECT transaction_id::text::bigint, global_position FROM events WHERE tenant_id = $1"
    " ORDER BY transaction_id, global_position OFFSET $2 LIMIT 1"
)


class BadCursor(ValueError):
    """`after` is not a cursor the feed gave, or one it can no longer place."""


@dataclass(frozen=True, slots=True)
class Cursor:
    placement: int = 0
    # How many of the tenant's events the reader has seen; None in a cursor of the old form.
    seen: int | None = 0
    checkpoint: Checkpoint = field(default_factory=Checkpoint)

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if text is None:
            return cls()
        match = _CURSOR.fullmatch(text)
        if match is None:
            raise BadCursor("not a cursor returned as `next`")
        placement, seen, transaction_id, position = match.groups()
        numbers = [int(n) for n in (seen or 0, transaction_id, position)]
        if placement is None:
            return cls(0, None, Checkpoint(numbers[1], numbers[2]))
        return cls(int(placement), numbers[0], Checkpoint(numbers[1], numbers[2]))

    def __str__(self) -> str:
        point = self.checkpoint
        return f"{self.placement}.{self.seen}.{point.transaction_id}.{point.position}"


@dataclass(frozen=True, slots=True)
class Page:
    events: list[RecordedEvent]
    next: Cursor


async def read_page(
    db: Database, tenant_id: str, placement: int, after: Cursor, limit: int
) -> Page:
    """The tenant's next events after the cursor, in commit order, from its cell (where the
    tenant is on its `placement`); BadCursor for a cursor the feed cannot have given, or one
    of the old form that a move has outdated."""
    async with tenant_transaction(db.pool, tenant_id) as conn:
        checkpoint, seen = await _on_this_placement(conn, tenant_id, placement, after)
        batch = await read_after(conn, checkpoint, limit, tenant_id=tenant_id)
    if batch:
        checkpoint, seen = (
            Checkpoint(batch[-1].transaction_id, batch[-1].position),
            seen + len(batch),
        )
    return Page(batch, Cursor(placement, seen, checkpoint))


async def _on_this_placement(
    conn: object, tenant_id: str, placement: int, after: Cursor
) -> tuple[Checkpoint, int]:
    if after.placement == placement:
        point = after.checkpoint
        if not await _names_an_event_read(conn, tenant_id, after):
            raise BadCursor("a cursor naming no event of the tenant")
        if after.seen is not None:
            return point, after.seen
        seen = await conn.fetchval(  # type: ignore[attr-defined]
            _SEEN_THROUGH, tenant_id, str(point.transaction_id), point.position
        )
        return point, int(seen)
    if after.placement > placement:
        raise BadCursor("a cursor from a placement the tenant has not reached")
    if after.seen is None:
        raise BadCursor(
            "a cursor from before the tenant moved to another server; read from the start"
        )
    if after.seen == 0:
        return Checkpoint(), 0
    row = await conn.fetchrow(_NTH, tenant_id, after.seen - 1)  # type: ignore[attr-defined]
    # A move re-appends every event before the tenant's placement changes, so a cursor
    # counting more than the cell holds was never given.
    if row is None:
        raise BadCursor("a cursor counting more events than the tenant has")
    return Checkpoint(*row), after.seen


async def _names_an_event_read(conn: object, tenant_id: str, after: Cursor) -> bool:
    """A cursor the feed gave on this placement names the last event read, one of the
    tenant's (one probe of its commit-order index), or none before the first."""
    point = after.checkpoint
    if point == Checkpoint():
        return not after.seen
    if after.seen == 0:
        return False
    return bool(
        await conn.fetchval(  # type: ignore[attr-defined]
            _NAMES_AN_EVENT, tenant_id, str(point.transaction_id), point.position
        )
    )
