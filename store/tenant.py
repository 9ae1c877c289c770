"""Statements confined to one tenant by PostgreSQL's row-level security.

Every query of a tenant's request names its tenant; row-level security is the second wall
behind that. A tenant's statements run as the role tasks_tenant with tasks.tenant_id set, and
the policies of every tenant table (migration 0005) then show and accept that tenant's rows
only: a query that forgot its `WHERE tenant_id` finds nothing of another tenant's. Both
settings are local to the transaction, so a connection goes back to the pool as its owner.

The hot statements enter the tenant themselves, inside functions of the database (migration
0012): a read of a task, or a command's append, is then one round trip with no transaction
around it. Other reads of a tenant run in `tenant_transaction`, which begins the transaction
and enters the tenant in one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg

from store.pool import connection

TENANT_ROLE = "tasks_tenant"
# The first key of the two-key advisory locks that queue a stream's writers (the rate limits'
# counters lock with 4004, the projection runners with one-key locks).
STREAM_LOCKS = 4012

IsolationLevel = Literal["READ COMMITTED", "REPEATABLE READ"]


@asynccontextmanager
async def tenant_transaction(
    pool: asyncpg.Pool,
    tenant_id: str,
    isolation_level: IsolationLevel = "READ COMMITTED",
    *,
    stream_id: str | None = None,
) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose transaction sees and writes `tenant_id`'s rows only. The block is
    the transaction: it commits when the block ends and rolls back if the block raises.

    With `stream_id`, the transaction first holds that stream's lock, so the commands on one
    task run one after another. The lock is taken before the transaction has written, and so
    before it has a transaction id: each writer of a stream takes its id after the one before
    it has committed, and the log's commit order, (transaction id, position), is the order of
    the stream's versions. (A row lock would not do: a transaction takes its id as it starts
    to wait for one, and may then write after a later one.)"""
    async with connection(pool) as conn:
        await conn.execute(begin_as_tenant(tenant_id, isolation_level, stream_id))
        try:
            yield conn
        except asyncio.CancelledError:
            # Cut short mid-statement: closed, the transaction can only roll back.
            conn.terminate()
            raise
        except Exception:
            if not conn.is_closed():
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


def begin_as_tenant(tenant_id: str, isolation_level: IsolationLevel, stream_id: str | None) -> str:
    # One simple-protocol round trip, so no parameters: the ids are quoted as literals.
    tenant = _literal(tenant_id)
    begin = (
        f"BEGIN ISOLATION LEVEL {isolation_level}; SELECT set_config('role', '"
        + TENANT_ROLE
        + f"', true), set_config('tasks.tenant_id', {tenant}, true)"
    )
    if stream_id is None:
        return begin
    stream = f"hashtext({tenant} || '/' || {_literal(stream_id)})"
    return f"{begin}; SELECT pg_advisory_xact_lock({STREAM_LOCKS}, {stream})"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
