"""Idempotent retries: the first response to a request with an Idempotency-Key is recorded,
in the transaction of the command it answers, and replayed to every retry for 24 hours.

A retry that arrives while the first request is still running blocks on the record's key
until that request commits, then replays its response: however many retries race, the work
is done once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import clock
from app.http.errors import ApiError, validation_error
from app.store.tables import idempotency_records
from app.store.tenant_scope import tenant_connection

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX = 255
RETENTION = timedelta(hours=24)


class AlreadyRecorded(Exception):
    """Another request with the same key recorded its response first."""


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    tenant_id: str
    key: str
    # What the request asked for: the same key with another request is a conflict.
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    status_code: int
    body: bytes
    etag: str | None

    def replay(self) -> Response[bytes]:
        headers = {REPLAYED_HEADER: "true"}
        if self.etag is not None:
            headers["ETag"] = self.etag
        return Response(
            self.body, status_code=self.status_code, media_type="application/json", headers=headers
        )


def requested(
    request: Request[Any, Any, Any], tenant_id: str, body: bytes
) -> IdempotentRequest | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= KEY_MAX:
        raise validation_error([f"Idempotency-Key: must be 1 to {KEY_MAX} characters"])
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + body).digest()
    return IdempotentRequest(tenant_id, key, digest)


async def recorded(engine: AsyncEngine, request: IdempotentRequest) -> RecordedResponse | None:
    """The response recorded for this key within the last 24 hours; 409 if it answered
    another request."""
    r = idempotency_records.c
    async with tenant_connection(engine, request.tenant_id) as conn:
        row = (
            await conn.execute(
                sa.select(r.fingerprint, r.status_code, r.body, r.etag).where(
                    r.tenant_id == request.tenant_id,
                    r.idempotency_key == request.key,
                    r.created_at > clock.now() - RETENTION,
                )
            )
        ).first()
    if row is None:
        return None
    if row.fingerprint != request.fingerprint:
        raise ApiError(
            409,
            "ConflictError",
            "This Idempotency-Key was used with another request",
            ["Idempotency-Key: already used with another endpoint or body"],
        )
    return RecordedResponse(row.status_code, row.body, row.etag)


async def record(
    conn: AsyncConnection, request: IdempotentRequest, response: RecordedResponse
) -> None:
    """Record the response in the command's transaction; AlreadyRecorded if a live record
    for the key exists (an expired one is replaced)."""
    now = clock.now()
    statement = insert(idempotency_records).values(
        tenant_id=request.tenant_id,
        idempotency_key=request.key,
        fingerprint=request.fingerprint,
        status_code=response.status_code,
        body=response.body,
        etag=response.etag,
        created_at=now,
    )
    r = idempotency_records.c
    statement = statement.on_conflict_do_update(
        index_elements=[r.tenant_id, r.idempotency_key],
        set_={
            name: statement.excluded[name]
            for name in ("fingerprint", "status_code", "body", "etag", "created_at")
        },
        where=r.created_at <= now - RETENTION,
    ).returning(r.idempotency_key)
    if (await conn.execute(statement)).first() is None:
        raise AlreadyRecorded(request.key)


async def forget_expired(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            idempotency_records.delete().where(
                idempotency_records.c.created_at <= clock.now() - RETENTION
            )
        )
