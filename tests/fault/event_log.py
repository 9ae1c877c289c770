"""What a fault leaves in the event log, checked against what the clients were told:
- every command acknowledged with a 2xx has all its events in the log;
- a command that got no answer, or a 503 (it may have committed as the database went away),
  has all its events or none;
- a command refused otherwise has none, and nothing else is in the log;
- every stream's versions run 1, 2, 3… without a gap, and the task view equals a replay."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.registry import TASK_VIEW
from projections.tables import events
from projections.verify import verify
from tests.fault.write_load import Sent


async def events_by_request(engine: AsyncEngine) -> dict[str, int]:
    request_id = events.c.metadata["requestId"].astext
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(request_id, sa.func.count()).group_by(request_id))
    return {row[0]: row[1] for row in rows}


async def streams_with_gaps(engine: AsyncEngine) -> list[str]:
    c = events.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(c.stream_id)
            .group_by(c.tenant_id, c.stream_id)
            .having(sa.func.max(c.stream_version) != sa.func.count())
        )
    return [row[0] for row in rows]


async def assert_log_keeps_what_was_answered(engine: AsyncEngine, sent: list[Sent]) -> None:
    logged = await events_by_request(engine)
    assert set(logged) <= {command.request_id for command in sent}, "events nobody sent"
    for command in sent:
        found = logged.get(command.request_id, 0)
        if command.acknowledged:
            assert found == command.events, command
        elif command.status in (None, 503):
            assert found in (0, command.events), command
        else:
            assert found == 0, command
    assert await streams_with_gaps(engine) == []
    assert await verify(engine, TASK_VIEW) == []
