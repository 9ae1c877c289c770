"""Waking the projection runners as commands commit, without making commands wait.

A NOTIFY inside a command's transaction takes PostgreSQL's cluster-wide notify lock at commit
and holds it through the WAL flush, so every command's commit would queue behind every other's
(docs/performance.md, migration 0006). Instead a command that has committed asks for a notice,
and a transaction of its own sends it: commits arriving while one is on its way share the next,
so the runners wake within a round trip of any commit, and the lock is only ever contended by
these notices. A notice that cannot be sent is left to the runners' polling."""

from __future__ import annotations

import asyncio
import logging
import weakref

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.tenant_scope import driver_errors
from projections.driver import driver_connection
from projections.runner import NOTIFY_CHANNEL

log = logging.getLogger("tasks_api.append_notices")

# One round trip: the statements of one simple query are one transaction. The notice carries
# nothing worth waiting for a flush of.
_NOTICE = f"SET LOCAL synchronous_commit = off; SELECT pg_notify('{NOTIFY_CHANNEL}', '')"


class _Notices:
    """The notices of one engine's commits: at most one on its way at a time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._wanted = False
        self._sending: asyncio.Task[None] | None = None

    def request(self) -> None:
        self._wanted = True
        if self._sending is None:
            self._sending = asyncio.create_task(self._send())

    async def _send(self) -> None:
        try:
            while self._wanted:
                self._wanted = False
                async with self._engine.connect() as conn, driver_errors(conn):
                    await (await driver_connection(conn)).execute(_NOTICE)
        except Exception:
            log.warning("could not notify the projection runners; they will poll")
        finally:
            self._sending = None


_by_engine: weakref.WeakKeyDictionary[AsyncEngine, _Notices] = weakref.WeakKeyDictionary()


def appended(engine: AsyncEngine) -> None:
    """Events have been committed through `engine`: wake the runners soon."""
    notices = _by_engine.get(engine)
    if notices is None:
        notices = _by_engine[engine] = _Notices(engine)
    notices.request()
