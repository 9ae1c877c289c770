"""The relay: every event of a cell's log published to NATS JetStream, in the cell's commit
order, for consumers that want every tenant's events as a stream (docs/stream.md).

It follows the log as a projection runner does (projections/runner.py), one active per cell
under its advisory lock, past its own checkpoint and behind the horizon, so it never skips a
late commit. A tenant's events in a batch are published one after another, each acknowledged
by JetStream before the next is sent, so they are stored in the order they committed;
different tenants' events go side by side. The
checkpoint moves only once the whole batch is acknowledged, so a relay that dies mid-batch
publishes that batch again; each message carries the id `<tenantId>/<taskId>/<version>`, and
JetStream's de-duplication window drops what it has already stored. The events a tenant's
move appends, which the source cell's relay had published already, are not published again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.published_events import AuditEvent
from app.settings import Settings
from app.store.tables import relay_published
from projections.log import Checkpoint, RecordedEvent, checkpoint_of

# The relay's checkpoint and the lock that makes one relay of a cell the active one.
RELAY = "nats_relay"
PUBLISH_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 2.0
MESSAGE_ID_HEADER = "Nats-Msg-Id"

log = logging.getLogger("tasks_api.relay")


@dataclass(frozen=True, slots=True)
class StreamAddress:
    """Where the events go: the NATS server, the stream and its subjects' prefix."""

    url: str
    stream: str = "TASKS_EVENTS"
    subject_prefix: str = "tasks.events"


def stream_address(settings: Settings) -> StreamAddress | None:
    """Where the relays publish, or None when NATS_URL is unset: then no relay runs."""
    if settings.nats_url is None:
        return None
    return StreamAddress(settings.nats_url, settings.nats_stream, settings.nats_subject_prefix)


def subject(prefix: str, event: RecordedEvent) -> str:
    return f"{prefix}.{event.tenant_id}.{event.type}"


def message_id(event: RecordedEvent) -> str:
    """The de-duplication key: the same for an event wherever and however often it is
    published (a tenant's move appends its events again, on another cell)."""
    return f"{event.tenant_id}/{event.stream_id}/{event.version}"


class Publisher:
    """One connection to NATS per process, shared by the relays of every cell; opened at
    the first publish, and again after a failure, so a NATS that is down costs the relays
    only their lag."""

    def __init__(self, address: StreamAddress) -> None:
        self.address = address
        self._client: Any = None

    async def publish(self, event: RecordedEvent) -> bool:
        """Publish the event and wait for JetStream to store it; True when it was a
        duplicate of one stored already."""
        jetstream = await self._jetstream()
        try:
            ack = await jetstream.publish(
                subject(self.address.subject_prefix, event),
                msgspec.json.encode(AuditEvent.of(event)),
                timeout=PUBLISH_TIMEOUT_SECONDS,
                stream=self.address.stream,
                headers={MESSAGE_ID_HEADER: message_id(event)},
            )
        except Exception:
            await self.close()
            raise
        return bool(ack.duplicate)

    async def _jetstream(self) -> Any:
        if self._client is None or self._client.is_closed:
            import nats

            self._client = await nats.connect(
                self.address.url,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                allow_reconnect=False,
                name="tasks-api relay",
            )
        return self._client.jetstream()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


async def published_before_moves(
    conn: AsyncConnection, tenant_ids: set[str]
) -> dict[str, Checkpoint]:
    """For each of these tenants moved onto this cell, the last of the events its move
    appended that the source cell's relay had published already (app/moves.py)."""
    c = relay_published.c
    rows = await conn.execute(
        sa.select(
            c.tenant_id, c.transaction_id.cast(sa.Text).cast(sa.BigInteger), c.global_position
        ).where(c.tenant_id.in_(sorted(tenant_ids)))
    )
    return {
        tenant_id: Checkpoint(transaction_id, position)
        for tenant_id, transaction_id, position in rows
    }


class Relay:
    """A cell's relay, as the projection runner drives it: `apply` publishes a batch in
    commit order; the runner commits the checkpoint after it."""

    name = RELAY

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.duplicates = 0

    async def apply(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        """Each tenant's events one after another, in commit order; tenants side by side:
        order is promised within a tenant, and a tenant lives on one cell at a time."""
        published = await published_before_moves(conn, {event.tenant_id for event in batch})
        by_tenant: dict[str, list[RecordedEvent]] = {}
        for event in batch:
            mark = published.get(event.tenant_id)
            if mark is None or checkpoint_of(event) > mark:
                by_tenant.setdefault(event.tenant_id, []).append(event)
        async with asyncio.TaskGroup() as publishing:
            for events in by_tenant.values():
                publishing.create_task(self._publish_in_order(events))

    async def _publish_in_order(self, events: list[RecordedEvent]) -> None:
        for event in events:
            if await self.publisher.publish(event):
                self.duplicates += 1


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What `tasks-api stream setup` gives the stream: how long and how much it keeps, how
    (limits, interest or workqueue retention), on how many servers, and how long JetStream
    remembers a message id to drop a republish."""

    max_age_seconds: float = 0.0
    max_bytes: int = -1
    max_messages: int = -1
    retention: str = "limits"
    replicas: int = 1
    duplicate_window_seconds: float = 120.0
    storage: str = "file"


async def set_up_stream(address: StreamAddress, limits: StreamLimits) -> bool:
    """Create the stream of the events' subjects, or bring an existing one to `limits`;
    True when it was created."""
    import nats
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    config = StreamConfig(
        name=address.stream,
        description="Every event of the tasks-api log, published once (docs/stream.md)",
        subjects=[f"{address.subject_prefix}.>"],
        retention=RetentionPolicy(limits.retention),
        max_age=limits.max_age_seconds,
        max_bytes=limits.max_bytes,
        max_msgs=limits.max_messages,
        storage=StorageType(limits.storage),
        num_replicas=limits.replicas,
        duplicate_window=limits.duplicate_window_seconds,
    )
    client = await nats.connect(address.url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        jetstream = client.jetstream()
        try:
            await jetstream.stream_info(address.stream)
        except NotFoundError:
            await jetstream.add_stream(config)
            return True
        await jetstream.update_stream(config)
        return False
    finally:
        await client.close()
