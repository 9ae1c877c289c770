"""The Idempotency-Key header: a command's request names its key (app/idempotency.py records
its answer and replays it; a replayed answer says so in Idempotent-Replayed)."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Request

from app.http.errors import validation_error
from app.http.request_headers import header
from app.idempotency import KEY_MAX, IdempotentRequest

HEADER = "idempotency-key"
_HEADER = HEADER.encode()
REPLAYED_HEADER = "Idempotent-Replayed"


def requested(
    request: Request[Any, Any, Any], tenant_id: str, body: bytes
) -> IdempotentRequest | None:
    key = header(request.scope, _HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= KEY_MAX:
        raise validation_error([f"Idempotency-Key: must be 1 to {KEY_MAX} characters"])
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + _canonical(body))
    return IdempotentRequest(tenant_id, key, digest.digest())


def _canonical(body: bytes) -> bytes:
    """The body as compact JSON with its keys sorted: a retry that serialises the same request
    again, in another key order or spacing, asks for the same thing. A body no command reads
    (a DELETE's) may be anything, JSON too deep to decode included: it stays as it came."""
    try:
        return msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except (msgspec.DecodeError, RecursionError):
        return body
