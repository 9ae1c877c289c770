"""The event log as its readers see it: decoding (with upcasting) and reading in commit order.

Identity values are taken at insert time but become visible at commit, so a reader that
follows "position > last" skips an event whose transaction commits late. Readers here follow
(transaction_id, global_position) and stop at the oldest transaction still in flight."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import TaskEvent
from domain.evolve import fold
from domain.task import Task
from projections.driver import AnyConnection, Compiled, driver_connection, value
from projections.tables import XID8, events

# The payload version each event type is written in today.
PAYLOAD_VERSIONS = {"TASK_CREATED": 2}
FIRST_VERSION = 1
# What version 1 of a task chains its hash from (migration 0020).
NO_HASH = bytes(32)


def _nest_created_task(data: dict[str, Any]) -> dict[str, Any]:
    """TASK_CREATED v1 carried the task's fields at the top level; v2 nests them in `task`."""
    fields = {name: value for name, value in data.items() if name != "type"}
    return {"type": data.get("type", "TASK_CREATED"), "task": fields}


# (event type, version) -> the function that lifts a payload to the next version.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("TASK_CREATED", 1): _nest_created_task,
}


def payload_version(event_type: str) -> int:
    return PAYLOAD_VERSIONS.get(event_type, FIRST_VERSION)


def upcast(event_type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """A stored payload lifted to the version the code reads today."""
    while version < payload_version(event_type):
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    return data


_EVENT_DECODER: msgspec.json.Decoder[TaskEvent] = msgspec.json.Decoder(TaskEvent)  # type: ignore[arg-type]


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as the log holds it. Payload and metadata stay JSON text until asked for:
    a replay decodes the payload straight into its event, never through dicts. A rebuild
    makes one per event in the log: a struct costs a fraction of a dataclass to make, and
    holding no containers it need not be tracked by the garbage collector."""

    tenant_id: str
    stream_id: str
    position: int
    transaction_id: int
    version: int
    type: str
    payload_version: int
    data_json: str
    metadata_json: str
    recorded_at: datetime
    # sha256 of the previous version's hash and this event's content (migration 0020).
    hash: bytes

    @property
    def data(self) -> dict[str, Any]:
        """The payload as stored."""
        return msgspec.json.decode(self.data_json)  # type: ignore[no-any-return]

    @property
    def metadata(self) -> dict[str, Any]:
        return msgspec.json.decode(self.metadata_json)  # type: ignore[no-any-return]

    def current_data(self) -> dict[str, Any]:
        """The payload in the shape the code reads today."""
        return upcast(self.type, self.payload_version, self.data)

    def decode(self) -> TaskEvent:
        if self.payload_version == payload_version(self.type):
            return _EVENT_DECODER.decode(self.data_json)
        return msgspec.convert(self.current_data(), TaskEvent)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, order=True)
class Checkpoint:
    """How far a reader has read: the last (transaction id, position) it applied."""

    transaction_id: int = 0
    position: int = 0


EVENT_COLUMNS = (
    events.c.tenant_id,
    events.c.stream_id,
    events.c.global_position,
    events.c.transaction_id.cast(sa.Text).cast(sa.BigInteger),
    events.c.stream_version,
    events.c.event_type,
    events.c.payload_version,
    events.c.data.cast(sa.Text),
    events.c.metadata.cast(sa.Text),
    events.c.recorded_at,
    events.c.hash,
)


def to_recorded(row: Any) -> RecordedEvent:
    return RecordedEvent(*row)


def checkpoint_of(event: RecordedEvent) -> Checkpoint:
    return Checkpoint(event.transaction_id, event.position)


def as_xid8(transaction_id: int | sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """A transaction id, or an expression of one, as xid8 (which casts from text only)."""
    given = str(transaction_id) if isinstance(transaction_id, int) else transaction_id
    return sa.cast(sa.cast(given, sa.Text), XID8)


def after(checkpoint: Checkpoint) -> sa.ColumnElement[bool]:
    return sa.tuple_(events.c.transaction_id, events.c.global_position) > sa.tuple_(
        as_xid8(checkpoint.transaction_id), sa.literal(checkpoint.position)
    )


# Transactions below this id have all ended: nothing can still appear before it.
VISIBLE_HORIZON = events.c.transaction_id < sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot())


async def read_after(
    conn: AnyConnection,
    checkpoint: Checkpoint,
    limit: int,
    *,
    tenant_id: str | None = None,
    until: Checkpoint | None = None,
    horizon: bool = True,
) -> list[RecordedEvent]:
    """The next events in commit order after a checkpoint (up to `until` when given).

    With `horizon`, events of transactions that may still be overtaken by an earlier one
    are left for later, so a follower never skips a late commit. Without it, every event
    the snapshot sees is read: for readers that hold appends back or read one snapshot."""
    statement = _read_after(tenant_id is not None, until is not None, horizon)
    until = until or Checkpoint()
    rows = await statement.fetch(
        conn,
        after_transaction_id=checkpoint.transaction_id,
        after_position=checkpoint.position,
        until_transaction_id=until.transaction_id,
        until_position=until.position,
        tenant_id=tenant_id,
        limit=limit,
    )
    return [to_recorded(row) for row in rows]


def _past(prefix: str) -> sa.ColumnElement[bool]:
    """Past the checkpoint given as the values `<prefix>_transaction_id` and `<prefix>_position`."""
    return sa.tuple_(events.c.transaction_id, events.c.global_position) > sa.tuple_(
        value(f"{prefix}_transaction_id", XID8()), value(f"{prefix}_position")
    )


@functools.cache
def _read_after(for_tenant: bool, until: bool, horizon: bool) -> Compiled:
    query = (
        sa.select(*EVENT_COLUMNS)
        .where(_past("after"))
        .order_by(events.c.transaction_id, events.c.global_position)
        .limit(value("limit"))
    )
    if for_tenant:
        query = query.where(events.c.tenant_id == value("tenant_id"))
    if until:
        query = query.where(sa.not_(_past("until")))
    if horizon:
        query = query.where(VISIBLE_HORIZON)
    return Compiled.of(query)


_LAST_BELOW_HORIZON = Compiled.of(
    sa.select(events.c.transaction_id.cast(sa.Text).cast(sa.BigInteger), events.c.global_position)
    .where(VISIBLE_HORIZON)
    .order_by(events.c.transaction_id.desc(), events.c.global_position.desc())
    .limit(1)
)
_BELOW_HORIZON_BY_STREAM = Compiled.of(
    sa.select(*EVENT_COLUMNS)
    .where(VISIBLE_HORIZON)
    .order_by(events.c.tenant_id, events.c.stream_id, events.c.stream_version)
)


async def read_by_stream(
    conn: AsyncConnection, size: int
) -> tuple[Checkpoint, AsyncIterator[list[RecordedEvent]]]:
    """Every event below the horizon, whole streams at a time (about `size` events, each
    stream oldest first), and the checkpoint in commit order that they are exactly the events
    up to. Run in a REPEATABLE READ transaction: its one snapshot draws the same horizon for
    both, where two snapshots could let events in that the checkpoint does not cover."""
    last = await _LAST_BELOW_HORIZON.fetch(conn)
    checkpoint = Checkpoint(*last[0]) if last else Checkpoint()
    cursor = await (await driver_connection(conn)).cursor(_BELOW_HORIZON_BY_STREAM.sql)
    return checkpoint, _whole_streams(cursor, size)


async def _whole_streams(cursor: Any, size: int) -> AsyncIterator[list[RecordedEvent]]:
    held: list[RecordedEvent] = []
    while rows := await cursor.fetch(size):
        held += map(to_recorded, rows)
        # The last stream may go on in the next rows: hold it back until it ends.
        last, cut = _stream_of(held[-1]), len(held)
        while cut and _stream_of(held[cut - 1]) == last:
            cut -= 1
        if cut:
            yield held[:cut]
            held = held[cut:]
    if held:
        yield held


def _stream_of(event: RecordedEvent) -> tuple[str, str]:
    return event.tenant_id, event.stream_id


async def stream(
    conn: AnyConnection, tenant_id: str, stream_id: str, *, until: datetime | None = None
) -> list[RecordedEvent]:
    """A stream's events, oldest first; with `until`, those recorded up to that time."""
    statement = _STREAM_UNTIL if until is not None else _STREAM
    rows = await statement.fetch(conn, tenant_id=tenant_id, stream_id=stream_id, until=until)
    return [to_recorded(row) for row in rows]


_STREAM = Compiled.of(
    sa.select(*EVENT_COLUMNS)
    .where(events.c.tenant_id == value("tenant_id"), events.c.stream_id == value("stream_id"))
    .order_by(events.c.stream_version)
)
_STREAM_UNTIL = Compiled.of(
    sa.select(*EVENT_COLUMNS)
    .where(
        events.c.tenant_id == value("tenant_id"),
        events.c.stream_id == value("stream_id"),
        events.c.recorded_at <= value("until"),
    )
    .order_by(events.c.stream_version)
)


def replay_at(history: list[RecordedEvent]) -> Task | None:
    """The task a stream's events leave behind (None if deleted or never created)."""
    return fold((event.decode(), event.recorded_at) for event in history)
