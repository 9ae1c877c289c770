"""Tenants and their API keys. A key is shown once; only its SHA-256 is kept."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app import clock, ids
from app.store.tables import api_keys, tenants

TIERS = ("starter", "growth", "enterprise")
KEY_PREFIX = "tk_"
# How long a process trusts a live key without asking the database again: a key revoked
# by another process keeps working there for at most this long.
KEY_CACHE_SECONDS = 10.0
KEY_CACHE_MAX = 10_000

# The key's digest -> (until when it is trusted, its principal); live keys only.
_live_keys: dict[bytes, tuple[float, Principal]] = {}


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
    """Revoke a key; False when no live key has that id. This process forgets it at once."""
    for digest, (_, principal) in list(_live_keys.items()):
        if principal.key_id == key_id:
            del _live_keys[digest]
    result = await conn.execute(
        api_keys.update()
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    return result.rowcount == 1


async def authenticate(conn: AsyncConnection, api_key: str) -> Principal | None:
    """The principal a live key belongs to, or None; a live key's answer is kept for
    KEY_CACHE_SECONDS, so most requests need no query."""
    digest, now = hash_key(api_key), time.monotonic()
    known = _live_keys.get(digest)
    if known is not None and known[0] > now:
        return known[1]
    principal = await _look_up_key(conn, api_key)
    if principal is None:
        _live_keys.pop(digest, None)
        return None
    if len(_live_keys) >= KEY_CACHE_MAX:
        _live_keys.clear()
    _live_keys[digest] = (now + KEY_CACHE_SECONDS, principal)
    return principal


async def _look_up_key(conn: AsyncConnection, api_key: str) -> Principal | None:
    row = (
        await conn.execute(
            sa.select(api_keys.c.tenant_id, api_keys.c.key_id, tenants.c.tier, tenants.c.rate_limit)
            .join(tenants, tenants.c.tenant_id == api_keys.c.tenant_id)
            .where(api_keys.c.key_hash == hash_key(api_key), api_keys.c.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    return Principal(row.tenant_id, row.key_id, row.tier, row.rate_limit)


async def tenant_exists(conn: AsyncConnection, tenant_id: str) -> bool:
    query = sa.select(sa.literal(1)).where(tenants.c.tenant_id == tenant_id)
    return (await conn.execute(query)).first() is not None


async def has_tenants(conn: AsyncConnection) -> bool:
    return (
        await conn.execute(sa.select(sa.literal(1)).select_from(tenants).limit(1))
    ).first() is not None
