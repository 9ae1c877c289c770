"""Tenants and their API keys. A key is shown once; only its SHA-256 is kept."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import asyncpg
import sqlalchemy as sa
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
    tenant's tier and the rate limit of its own, if it has one."""

    tenant_id: str
    key_id: str
    tier: str = "starter"
    rate_limit: int | None = None


def hash_key(api_key: str) -> bytes:
    # Keys are 256 random bits: a plain digest is as strong as a slow hash would be.
    return hashlib.sha256(api_key.encode()).digest()


async def create_tenant(
    conn: AsyncConnection, name: str, tier: str = "starter", rate_limit: int | None = None
) -> IssuedKey:
    tenant_id = ids.new_id()
    await conn.execute(
        tenants.insert().values(
            tenant_id=tenant_id, name=name, tier=tier, rate_limit=rate_limit, created_at=clock.now()
        )
    )
    return await create_key(conn, tenant_id)


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
    "SELECT k.tenant_id, k.key_id, t.tier, t.rate_limit FROM api_keys k"
    " JOIN tenants t ON t.tenant_id = k.tenant_id"
    " WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
)


async def _look_up_key(pool: asyncpg.Pool, digest: bytes) -> Principal | None:
    async with connection(pool) as conn:
        row = await conn.fetchrow(_LOOK_UP_KEY, digest)
    return None if row is None else Principal(*row)


async def tenant_exists(conn: AsyncConnection, tenant_id: str) -> bool:
    query = sa.select(sa.literal(1)).where(tenants.c.tenant_id == tenant_id)
    return (await conn.execute(query)).first() is not None


async def has_tenants(conn: AsyncConnection) -> bool:
    return (
        await conn.execute(sa.select(sa.literal(1)).select_from(tenants).limit(1))
    ).first() is not None
