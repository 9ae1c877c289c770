"""Waking the projection runners as commands commit, without making commands wait.

A NOTIFY inside a command's transaction takes PostgreSQL's cluster-wide notify lock at commit
and holds it through the WAL flush, so every command's commit would queue behind every other's
(docs/performance.md, migration 0006). Instead a command that has committed asks for a notice,
and a transaction of its own sends it: commits arriving while one is on its way share the next,
and notices are sent at most every NOTICE_INTERVAL_SECONDS: the runners wake within a few
milliseconds of a commit after a quiet spell, a command does not pay for a transaction of its
own, and the lock is only ever contended by these notices. A notice that cannot be sent is left
to the runners' polling.

The interval is the runners' own: a runner catches up at most that often, so a notice sent
sooner wakes it for nothing, and not it alone. PostgreSQL 15 keeps no record of who listens
to which channel: at each NOTIFY it signals every session listening in the database (each
worker's revocation listener too), and each wakes to read the queue. At 626 POSTs a second
from two workers, notices every 20 ms were 100 transactions a second and the four listening
sessions spent 0.15-0.17 s of CPU in 10 s; every 50 ms, 40 a second and 0.06-0.07 s, with the
rollups' lag at 250 commands/s unchanged (p50 34-35 ms either way)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from projections.runner import CATCH_UP_INTERVAL_SECONDS
from store.channels import EVENTS_APPENDED
from store.pool import connection

log = logging.getLogger("tasks_api.append_notices")

# One round trip: the statements of one simple query are one transaction. The notice carries
# nothing worth waiting for a flush of.
_NOTICE = f"SET LOCAL synchronous_commit = off; SELECT pg_notify('{EVENTS_APPENDED}', '')"
NOTICE_INTERVAL_SECONDS = CATCH_UP_INTERVAL_SECONDS


class AppendNotices:
    """The notices of one pool's commits: at most one on its way at a time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._wanted = False
        self._sending: asyncio.Task[None] | None = None
        self._last_sent = -NOTICE_INTERVAL_SECONDS

    def appended(self) -> None:
        """Events have been committed: wake the runners soon."""
        self._wanted = True
        if self._sending is None:
            self._sending = asyncio.create_task(self._send())

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._wanted:
                if (wait := self._last_sent + NOTICE_INTERVAL_SECONDS - loop.time()) > 0:
                    await asyncio.sleep(wait)
                self._wanted = False
                self._last_sent = loop.time()
                async with connection(self._pool) as conn:
                    await conn.execute(_NOTICE)
        except Exception:
            log.warning("could not notify the projection runners; they will poll")
        finally:
            self._sending = None
