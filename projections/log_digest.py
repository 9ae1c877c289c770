"""Each tenant's log folded into one running digest, as the runner reads it in commit order:
digest_n = sha256(digest_{n-1} || hash of event n), from 32 zero bytes.

Each event's hash already covers its content and its task's chain (migration 0020); the
digest covers the order of the tenant's events and that none is missing, a whole task's
included. The runner writes it with its checkpoint, so the digests always cover exactly
the log behind the checkpoint: an event edited, removed, inserted or reordered there later
no longer folds to them (app/log_verification.py)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.driver import TEXTS, Compiled, value
from projections.log import Checkpoint, RecordedEvent, checkpoint_of
from projections.projector import upsert_rows
from projections.tables import log_digests

# A digest's length (sha256), and what the first event of a tenant's log is folded onto.
DIGEST_BYTES = 32
NO_DIGEST = bytes(DIGEST_BYTES)


@dataclass(frozen=True, slots=True)
class Digest:
    """A tenant's log folded up to an event: the digest, how many events it covers, and the
    last of them."""

    value: bytes = NO_DIGEST
    events: int = 0
    last: Checkpoint = field(default_factory=Checkpoint)

    def extended(self, events: Iterable[RecordedEvent]) -> Digest:
        """This digest with `events` folded on, in their order."""
        value, count, last = self.value, self.events, self.last
        for event in events:
            value = hashlib.sha256(value + event.hash).digest()
            count += 1
            last = checkpoint_of(event)
        return Digest(value, count, last)


async def stored_digests(
    conn: AsyncConnection, tenant_ids: Iterable[str] | None = None
) -> dict[str, Digest]:
    """The recorded digest of each tenant (of these tenants only, when given)."""
    if tenant_ids is None:
        rows = await _digests_statement(of_tenants=False).fetch(conn)
    else:
        rows = await _digests_statement(of_tenants=True).fetch(conn, tenant_ids=list(tenant_ids))
    return {
        tenant_id: Digest(digest, events, Checkpoint(transaction_id, position))
        for tenant_id, digest, events, transaction_id, position in rows
    }


@functools.cache
def _digests_statement(*, of_tenants: bool) -> Compiled:
    # Compiled once: the runner reads its batch's digests in every batch it applies.
    c = log_digests.c
    query = sa.select(
        c.tenant_id,
        c.digest,
        c.events,
        c.transaction_id.cast(sa.Text).cast(sa.BigInteger),
        c.global_position,
    )
    if of_tenants:
        query = query.where(c.tenant_id == sa.any_(value("tenant_ids", TEXTS)))
    return Compiled.of(query)


def folded(digests: Mapping[str, Digest], batch: Sequence[RecordedEvent]) -> dict[str, Digest]:
    """The digests of the batch's tenants with its events folded on, each tenant's onto its
    digest in `digests` (or onto none)."""
    by_tenant: dict[str, list[RecordedEvent]] = {}
    for event in batch:
        by_tenant.setdefault(event.tenant_id, []).append(event)
    return {
        tenant_id: digests.get(tenant_id, Digest()).extended(events)
        for tenant_id, events in by_tenant.items()
    }


class LogDigest:
    """The follower that keeps every tenant's digest, as the projection runner drives it."""

    name = "log_digest"

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        recorded = await stored_digests(conn, {event.tenant_id for event in batch})
        rows = [
            (tenant_id, digest.value, digest.events, *astuple(digest.last))
            for tenant_id, digest in folded(recorded, batch).items()
        ]
        await upsert_rows(conn, log_digests, _COLUMNS, rows, _REPLACED)


_COLUMNS = ("tenant_id", "digest", "events", "transaction_id", "global_position")
_REPLACED = ", ".join(f"{name} = EXCLUDED.{name}" for name in _COLUMNS[1:])

LOG_DIGEST = LogDigest()
