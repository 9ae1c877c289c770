"""Key revocations, and tenants' moves between cells, heard by every API process the moment
they commit.

A process keeps the live keys it has looked up (app/tenants.py), which spares most requests a
query. A revocation made anywhere (`tasks-api key revoke`, another server) is notified on
REVOCATION_CHANNEL when it commits; each process listens and forgets the key at once. While a
process cannot listen, it trusts no cached key, so no revocation is ever missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app import tenants
from projections.driver import driver_connection

RECONNECT_SECONDS = 1.0

log = logging.getLogger("tasks_api.revocations")


@contextlib.asynccontextmanager
async def hearing_revocations(engine: AsyncEngine) -> AsyncIterator[None]:
    """Listen for revocations for as long as the block runs."""
    listening = asyncio.create_task(_listen(engine))
    try:
        yield
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        tenants.hear_revocations(False)


async def _listen(engine: AsyncEngine) -> None:
    while True:
        try:
            await _listen_while_connected(engine)
        except Exception:
            log.warning("cannot listen for key revocations; trusting no cached key meanwhile")
        await asyncio.sleep(RECONNECT_SECONDS)


async def _listen_while_connected(engine: AsyncEngine) -> None:
    async with engine.connect() as session:
        listener = await driver_connection(session)
        lost = asyncio.Event()

        def forget(_connection: Any, _pid: int, _channel: str, key_id: str) -> None:
            tenants.forget_key(key_id)

        def moved(_connection: Any, _pid: int, _channel: str, tenant_id: str) -> None:
            tenants.forget_tenant(tenant_id)

        listener.add_termination_listener(lambda _connection: lost.set())
        try:
            await listener.add_listener(tenants.REVOCATION_CHANNEL, forget)
            await listener.add_listener(tenants.MOVE_CHANNEL, moved)
            tenants.hear_revocations(True)
            await lost.wait()
        finally:
            tenants.hear_revocations(False)
            # The listener belongs to this session: never hand it back to the pool.
            await session.invalidate()
