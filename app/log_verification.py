"""`tasks-api audit verify`: every task's hash chain and every tenant's log digest recomputed
from the log as it stands, and what no longer holds named.

A chain shows an event edited, or a version removed or moved, within a task; a tenant's
digest, recorded by the runner as it read the log (projections/log_digest.py), shows what a
chain cannot: a whole task removed, an event inserted or the order of commits changed."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.log import NO_HASH, Checkpoint, checkpoint_of, read_after
from projections.log_digest import LOG_DIGEST, Digest, folded, stored_digests
from projections.runner import read_checkpoint_unlocked

DIGEST_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """What no longer holds: of a task's version, or of a tenant's whole log."""

    tenant_id: str
    problem: str
    task_id: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.task_id is None:
            return f"tenant {self.tenant_id}: {self.problem}"
        where = f"tenant {self.tenant_id}, task {self.task_id}, version {self.version}"
        return f"{where}: {self.problem}"


@dataclass(slots=True)
class Verdict:
    """What was checked, and what is broken: the first broken link of the chains, in order
    of tenant, task and version, and every tenant whose digest no longer matches."""

    events: int = 0
    tasks: int = 0
    # The tenants and events the digests cover: those up to the digests' checkpoint.
    digested_tenants: int = 0
    digested_events: int = 0
    broken: list[BrokenLink] = field(default_factory=list)


async def verify_log(engine: AsyncEngine, tenant_id: str | None = None) -> Verdict:
    """Recompute every chain and every digest (the tenant's only, when given), from one
    snapshot: one that a batch of the runner committing meanwhile cannot tear."""
    verdict = Verdict()
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        await conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
        verdict.events, verdict.tasks = (await conn.execute(_counted(tenant_id))).one()
        if first := await _first_broken_link(conn, tenant_id):
            verdict.broken.append(first)
        await _check_digests(conn, tenant_id, verdict)
    return verdict


def _for_tenant(tenant_id: str | None) -> str:
    return "" if tenant_id is None else "WHERE e.tenant_id = :tenant_id"


def _counted(tenant_id: str | None) -> sa.TextClause:
    return sa.text(
        "SELECT count(*), count(*) FILTER (WHERE e.stream_version = 1) FROM events e "
        + _for_tenant(tenant_id)
    ).bindparams(**({} if tenant_id is None else {"tenant_id": tenant_id}))


async def _first_broken_link(conn: AsyncConnection, tenant_id: str | None) -> BrokenLink | None:
    """Each event's hash recomputed from its content and the hash of its task's version
    before it, in order of tenant, task and version, up to the first that differs."""
    links = f"""
        SELECT e.tenant_id, e.stream_id, e.stream_version,
               lag(e.stream_version) OVER task AS previous_version,
               e.hash = event_hash(
                   CASE WHEN e.stream_version = 1 THEN :no_hash ELSE lag(e.hash) OVER task END,
                   e.tenant_id, e.stream_id, e.stream_version, e.event_type, e.payload_version,
                   e.data, e.metadata, e.recorded_at) AS matches
          FROM events e {_for_tenant(tenant_id)}
        WINDOW task AS (PARTITION BY e.tenant_id, e.stream_id ORDER BY e.stream_version)
    """
    query = sa.text(f"""
        SELECT * FROM ({links}) link
         WHERE link.stream_version - 1 IS DISTINCT FROM coalesce(link.previous_version, 0)
            OR NOT link.matches
         ORDER BY link.tenant_id, link.stream_id, link.stream_version
         LIMIT 1
    """)
    values = {"no_hash": NO_HASH, **({} if tenant_id is None else {"tenant_id": tenant_id})}
    row = (await conn.execute(query, values)).first()
    if row is None:
        return None
    return BrokenLink(row.tenant_id, _problem(row), row.stream_id, row.stream_version)


def _problem(link: sa.Row[tuple[str, str, int, int | None, bool]]) -> str:
    version, previous = link.stream_version, link.previous_version or 0
    if previous != version - 1:
        first = previous + 1
        gone = f"version {first}" if first == version - 1 else f"versions {first} to {version - 1}"
        return f"{gone} of the task removed"
    if version == 1:
        return "its hash does not match its content: the event was edited"
    return (
        "its hash does not match its content and the hash of version "
        f"{version - 1}: the event was edited, or moved from another version"
    )


async def _check_digests(conn: AsyncConnection, tenant_id: str | None, verdict: Verdict) -> None:
    """Each tenant's events up to the digests' checkpoint, folded in commit order as the
    runner folded them, against the digest it recorded."""
    until = await read_checkpoint_unlocked(conn, LOG_DIGEST.name)
    log: dict[str, Digest] = {}
    checkpoint = Checkpoint()
    while batch := await read_after(
        conn, checkpoint, DIGEST_BATCH, tenant_id=tenant_id, until=until, horizon=False
    ):
        log |= folded(log, batch)
        checkpoint = checkpoint_of(batch[-1])
    recorded = await stored_digests(conn, None if tenant_id is None else [tenant_id])
    verdict.digested_tenants = len(recorded)
    verdict.digested_events = sum(digest.events for digest in recorded.values())
    for tenant in sorted(log.keys() | recorded.keys()):
        if problem := _digest_problem(recorded.get(tenant), log.get(tenant, Digest())):
            verdict.broken.append(BrokenLink(tenant, problem))


def _digest_problem(recorded: Digest | None, log: Digest) -> str | None:
    if recorded is None:
        return (
            f"{log.events} of its events lie behind the digests' checkpoint, but no digest "
            "of its log was recorded: they were inserted there"
        )
    if recorded.events != log.events:
        return (
            f"its digest covers {recorded.events} events, but {log.events} lie behind the "
            "digests' checkpoint: events were removed (a whole task's, maybe) or inserted"
        )
    if recorded.value != log.value:
        return (
            f"its {log.events} events behind the digests' checkpoint no longer fold to its "
            "digest: one was edited, or their order changed"
        )
    return None
