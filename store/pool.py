"""The connections that serve requests: asyncpg's own pool, which costs a request a fraction of
the CPU that SQLAlchemy's pool and connection wrapper did (a quarter of a worker's time under
load). Statements are prepared once per connection (asyncpg's statement cache)."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import asyncpg
import msgspec
from sqlalchemy.engine import make_url

# How long a block cancelled mid-statement waits for the server to cancel the statement
# before the connection is closed instead: a server that does not answer (stopped, or cut
# off) would otherwise hold the cancelled request's answer back until it answers again.
CANCEL_WAIT_SECONDS = 0.5
# Long-open transactions hold back the log readers' horizon.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000
APPLICATION_NAME = "tasks-api"
# A request's statements are bounded by indexes and share the cores with other requests:
# parallel workers cost more to start than they save there. A period's analytics summed its
# spans in 16.3 ms of PostgreSQL's time with two workers (10 ms before the first row), 9.3 ms
# in one process. The CLI, rebuilds and audits, on SQLAlchemy's engine, keep the server's
# setting.
REQUEST_SETTINGS = {"max_parallel_workers_per_gather": "0"}


def plain_url(database_url: str) -> str:
    """postgresql://… as the driver takes it, whatever driver name the URL gives."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def server_settings(statement_timeout_ms: int) -> dict[str, str]:
    return {
        "statement_timeout": str(statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
        "application_name": APPLICATION_NAME,
    }


def encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def set_codecs(conn: asyncpg.Connection) -> None:
    """jsonb in and out through msgspec, as SQLAlchemy's engine does."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=encode_json, decoder=msgspec.json.decode
    )


async def _nothing_to_reset(_: asyncpg.Connection) -> None:
    """A connection comes back as it left: the service's statements change no session state
    (a tenant's settings are local to its transaction), so none is reset. asyncpg's default
    reset costs a round trip on every release. An open transaction is still rolled back."""


async def open_pool(database_url: str, *, size: int, statement_timeout_ms: int) -> asyncpg.Pool:
    """Connections opened as they are first needed, up to `size`, and kept open once opened:
    closing idle ones takes asyncpg a timer started at every release and stopped at every
    checkout, which cost each request more than its checkout does without it."""
    return await asyncpg.create_pool(
        plain_url(database_url),
        min_size=0,
        max_size=size,
        max_inactive_connection_lifetime=0,
        init=set_codecs,
        reset=_nothing_to_reset,
        server_settings={**server_settings(statement_timeout_ms), **REQUEST_SETTINGS},
    )


# Failures after which a connection is not fit to be pooled again: it was lost, or the driver
# lost track of where its protocol stands (as when the server shuts down under it).
_UNUSABLE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
)


class connection:
    """A connection of the pool for the block; closed rather than pooled again if the block
    fails at the level of the connection.

    A block cancelled mid-statement (a request's timeout, say) leaves the connection to the
    driver, which asks the server to cancel the statement and waits for it before pooling the
    connection again: a statement outside a transaction commits when it ends, so one merely
    cut off from its client would still commit. A server that has not cancelled it within
    CANCEL_WAIT_SECONDS does not answer at all: the connection is closed.

    A class rather than a generator: it is entered on every request."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def __aenter__(self) -> asyncpg.Connection:
        self._conn = await self._pool.acquire()
        return self._conn

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None and issubclass(kind, _UNUSABLE):
            # A connection that was lost the pool has let go already.
            with contextlib.suppress(asyncpg.InterfaceError):
                self._conn.terminate()
        elif kind is not None and issubclass(kind, asyncio.CancelledError):
            await self._pool.release(self._conn, timeout=CANCEL_WAIT_SECONDS)
            return
        await self._pool.release(self._conn)
