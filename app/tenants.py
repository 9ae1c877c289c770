"""Tenants and their API keys. A key is shown once; only its SHA-256 is kept."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app import clock, ids
from app.store.tables import api_keys, tenants
from store.pool import connection

TIERS = ("starter", "growth", "enterprise")
KEY_PREFIX = "tk_"
# How long a process trusts a live key without asking the database again. A revocation is
# heard at once (app/revocations.py); the bound only limits what a lost notice could cost.
KEY_CACHE_SECONDS = 10.0
KEY_CACHE_MAX = 10_000
# Notified with the key id when a revocation commits.
REVOCATION_CHANNEL = "api_key_revoked"
# Notified with the tenant id when the directory moves a tenant to another cell.
MOVE_CHANNEL = "tenant_moved"

# The key's digest -> (until when it is trusted, its principal); live keys only.
_live_keys: dict[bytes, tuple[float, Principal]] = {}
# Cached keys are trusted only while this process hears every revocation.
_hearing_revocations = False
# Counts revocations heard (and changes of hearing), so a lookup they overtook is not cached.
_revocations_heard = 0


@dataclass(frozen=True, slots=True)
class IssuedKey:
    tenant_id: str
    key_id: str
    api_key: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant and the key that authenticated the request, with the
    tenant's tier, the rate limit of its own if it has one, and the cell that holds it
    (None: the home cell)."""

    tenant_id: str
    key_id: str
    tier: str = "starter"
    rate_limit: int | None = None
    cell: str | None = None
    # How many times the tenant has moved between cells: the /v1/events cursor names it.
    placement: int = 0


def hash_key(api_key: str) -> bytes:
    # Keys are 256 random bits: a plain digest is as strong as a slow hash would be.
    return hashlib.sha256(api_key.encode()).digest()


async def create_tenant(
    conn: AsyncConnection,
    name: str,
    tier: str = "starter",
    rate_limit: int | None = None,
    cell: str | None = None,
) -> IssuedKey:
    """A tenant and its first key, in the directory (the home cell's database), placed on
    `cell` (None: the home cell)."""
    tenant_id = ids.new_id()
    await conn.execute(
        tenants.insert().values(
            tenant_id=tenant_id,
            name=name,
            tier=tier,
            rate_limit=rate_limit,
            created_at=clock.now(),
            cell=cell,
        )
    )
    return await create_key(conn, tenant_id)


async def copy_tenant(
    source: AsyncConnection, target: AsyncConnection, tenant_id: str, cell: str | None = None
) -> None:
    """The tenant's row of one database written to another's `tenants`, unless it is there
    already: to a cell's own list of the tenants it holds, or to the directory, placed on
    `cell`."""
    row = (
        await source.execute(
            sa.select(
                tenants.c.name, tenants.c.tier, tenants.c.rate_limit, tenants.c.created_at
            ).where(tenants.c.tenant_id == tenant_id)
        )
    ).one()
    await target.execute(
        insert(tenants)
        .values(tenant_id=tenant_id, cell=cell, **row._asdict())
        .on_conflict_do_nothing()
    )


async def create_key(conn: AsyncConnection, tenant_id: str) -> IssuedKey:
    key_id = ids.new_id()
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        api_keys.insert().values(
            tenant_id=tenant_id, key_id=key_id, key_hash=hash_key(api_key), created_at=clock.now()
        )
    )
    return IssuedKey(tenant_id=tenant_id, key_id=key_id, api_key=api_key)


async def revoke_key(conn: AsyncConnection, key_id: str) -> bool:
    """Revoke a key; False when no live key has that id. Every API process forgets it as
    the transaction commits."""
    forget_key(key_id)
    result = await conn.execute(
        api_keys.update()
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    await conn.execute(sa.select(sa.func.pg_notify(REVOCATION_CHANNEL, key_id)))
    return result.rowcount == 1


def forget_key(key_id: str) -> None:
    global _revocations_heard
    _revocations_heard += 1
    for digest, (_, principal) in list(_live_keys.items()):
        if principal.key_id == key_id:
            del _live_keys[digest]


def forget_tenant(tenant_id: str) -> None:
    """Forget every cached key of the tenant: its cell has changed, or is changing."""
    global _revocations_heard
    _revocations_heard += 1
    for digest, (_, principal) in list(_live_keys.items()):
        if principal.tenant_id == tenant_id:
            del _live_keys[digest]


def hear_revocations(hearing: bool) -> None:
    """Whether this process now hears every revocation. Either way what it cached before
    is forgotten: a revocation may have gone unheard in between."""
    global _hearing_revocations, _revocations_heard
    _hearing_revocations = hearing
    _revocations_heard += 1
    _live_keys.clear()


async def authenticate(pool: asyncpg.Pool, api_key: str) -> Principal | None:
    """The principal a live key belongs to, or None. While revocations are heard, a live
    key's answer is kept for KEY_CACHE_SECONDS, so most requests need no connection."""
    digest, now = hash_key(api_key), time.monotonic()
    known = _live_keys.get(digest)
    if known is not None and known[0] > now:
        return known[1]
    revocations_before = _revocations_heard
    principal = await _look_up_key(pool, digest)
    if principal is None:
        _live_keys.pop(digest, None)
        return None
    if not _hearing_revocations or _revocations_heard != revocations_before:
        return principal
    if len(_live_keys) >= KEY_CACHE_MAX:
        _live_keys.clear()
    _live_keys[digest] = (now + KEY_CACHE_SECONDS, principal)
    return principal


_LOOK_UP_KEY = (
    "SELECT k.tenant_id, k.key_id, t.tier, t.rate_limit, t.cell, t.placement FROM api_keys k"
    " JOIN tenants t ON t.tenant_id = k.tenant_id"
    " WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
)


async def _look_up_key(pool: asyncpg.Pool, digest: bytes) -> Principal | None:
    async with connection(pool) as conn:
        row = await conn.fetchrow(_LOOK_UP_KEY, digest)
    return None if row is None else Principal(*row)


async def tenant_cell(conn: AsyncConnection, tenant_id: str) -> tuple[bool, str | None]:
    """Whether the directory has the tenant, and the cell that holds it (None: the home)."""
    found = (
        await conn.execute(sa.select(tenants.c.cell).where(tenants.c.tenant_id == tenant_id))
    ).first()
    return (False, None) if found is None else (True, found.cell)


async def tenants_by_cell(conn: AsyncConnection) -> dict[str | None, int]:
    """How many tenants the directory places on each cell (None: the home cell)."""
    rows = await conn.execute(sa.select(tenants.c.cell, sa.func.count()).group_by(tenants.c.cell))
    return {cell: count for cell, count in rows}


async def tenant_exists(conn: AsyncConnection, tenant_id: str) -> bool:
    query = sa.select(sa.literal(1)).where(tenants.c.tenant_id == tenant_id)
    return (await conn.execute(query)).first() is not None


async def has_tenants(conn: AsyncConnection) -> bool:
    return (
        await conn.execute(sa.select(sa.literal(1)).select_from(tenants).limit(1))
    ).first() is not None
