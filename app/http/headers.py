"""The headers the API reads and writes, as the OpenAPI document declares them: the request
headers each operation honours, and the headers each of its responses carries.

They are declared in the document alone. Handlers read the few they honour from the request
themselves (etags, idempotency, request_id), so Litestar parses no header parameter on the
way to them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
)

from app.http import etags, idempotency

IF_MATCH = etags.IF_MATCH
IF_NONE_MATCH = etags.IF_NONE_MATCH
IDEMPOTENCY_KEY = "Idempotency-Key"
X_REQUEST_ID = "X-Request-Id"
ETAG = "ETag"
RATE_LIMIT = "RateLimit"
RATE_LIMIT_POLICY = "RateLimit-Policy"
RETRY_AFTER = "Retry-After"
IDEMPOTENT_REPLAYED = idempotency.REPLAYED_HEADER


def _text(pattern: str | None = None, **schema: Any) -> Schema:
    return Schema(type=OpenAPIType.STRING, pattern=pattern, **schema)


# Text, RFC 9110's syntax given in words: schemathesis draws these two headers by the RFC, where
# with a pattern (which needs quotes) its coverage phase finds no valid value to send.
_TAGS = _text()
# The request headers, by name, as components.parameters declares them.
PARAMETERS = {
    IF_MATCH: Parameter(
        name=IF_MATCH,
        param_in="header",
        schema=_TAGS,
        description=(
            'Carry the command out only if the task is at one of these versions: its ETag ("3"),'
            ' a list of them ("3", "4"), or "*". Otherwise 412 PreconditionFailedError with the'
            " current version as the ETag. A weak tag (W/) matches no version; a value that is"
            " no list of entity tags (RFC 9110) is refused (400)."
        ),
    ),
    IF_NONE_MATCH: Parameter(
        name=IF_NONE_MATCH,
        param_in="header",
        schema=_TAGS,
        description=(
            "Answer 304 Not Modified, without a body, while the task is at one of these"
            ' versions: its ETag ("3"), a list of them, or "*". A value that is no list of'
            " entity tags (RFC 9110) is refused (400)."
        ),
    ),
    IDEMPOTENCY_KEY: Parameter(
        name=IDEMPOTENCY_KEY,
        param_in="header",
        schema=_text(min_length=1, max_length=idempotency.KEY_MAX),
        description=(
            "Carry the command out once: a retry with the same key and the same body within 24"
            f" hours gets the first answer again, with {IDEMPOTENT_REPLAYED}: true. The same key"
            " with another endpoint or body is a 409 ConflictError."
        ),
    ),
    X_REQUEST_ID: Parameter(
        name=X_REQUEST_ID,
        param_in="header",
        schema=_text(),
        description=(
            "The request's id, recorded with the events it causes and in the access log, and"
            " echoed in X-Request-Id: kept when it is 1 to 200 of A-Z a-z 0-9 . _ : -, else"
            " replaced by a new one"
        ),
    ),
}
# The response headers, by name.
RESPONSE_HEADERS = {
    ETAG: OpenAPIHeader(
        schema=_text(r'^"(?:0|[1-9][0-9]*)"$', examples=['"3"']),
        description="The task's version, for If-Match and If-None-Match",
    ),
    RATE_LIMIT_POLICY: OpenAPIHeader(
        schema=_text(r'^"[a-z-]+";q=[0-9]+;w=[0-9]+$', examples=['"tenant";q=300;w=60']),
        description=(
            "The quota that counted the request (draft-ietf-httpapi-ratelimit-headers): its"
            " name, `q` requests in any `w` seconds"
        ),
    ),
    RATE_LIMIT: OpenAPIHeader(
        schema=_text(r'^"[a-z-]+";r=[0-9]+;t=[0-9]+$', examples=['"tenant";r=299;t=61']),
        description=(
            "`r` requests left in the window, `t` seconds until the oldest request it counts"
            " leaves it (its unit of the quota is free again)"
        ),
    ),
    RETRY_AFTER: OpenAPIHeader(
        schema=_text("^[0-9]+$", examples=["12"]), description="Seconds to wait before a retry"
    ),
    IDEMPOTENT_REPLAYED: OpenAPIHeader(
        schema=_text(enum=["true"]),
        description="The answer recorded for this Idempotency-Key, replayed to a retry",
    ),
    X_REQUEST_ID: OpenAPIHeader(
        # The ids app.http.request_id keeps from a client, or gives (32 hex digits).
        schema=_text("^[A-Za-z0-9._:-]{1,200}$", examples=["4bf92f3577b34da6a3ce929d0e0e4736"]),
        description="The request's id: the client's X-Request-Id, or a new one",
    ),
}
# Statuses answered before the caller's request was counted: the rate limits could not be
# counted, or the server failed.
_UNCOUNTED = {"500", "503"}


def documented(*honours: str, tagged: bool = False, optional_body: bool = False) -> type[Operation]:
    """A route's `operation_class`, which completes its operation in the document: the
    request headers it `honours` beside X-Request-Id, the headers of each response (ETag on
    a success that carries a task when `tagged`), and whether its body may be left out."""

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            parameters = [*honours, X_REQUEST_ID]
            self.parameters = [*(self.parameters or ()), *(_parameter(name) for name in parameters)]
            for status, response in (self.responses or {}).items():
                if isinstance(response, OpenAPIResponse):
                    response.headers = _response_headers(status, tagged, IDEMPOTENCY_KEY in honours)
            if optional_body and self.request_body is not None:
                self.request_body.required = False

    return DocumentedOperation


def _parameter(name: str) -> Reference:
    return Reference(ref=f"#/components/parameters/{name}")


def _response_headers(status: str, tagged: bool, idempotent: bool) -> dict[str, Any]:
    """Each header a response of `status` carries, and whether it always does."""
    counted = status not in _UNCOUNTED
    headers = {X_REQUEST_ID: True, RATE_LIMIT_POLICY: counted, RATE_LIMIT: counted}
    if status in ("429", "503"):
        headers[RETRY_AFTER] = True
    if status in ("304", "412") or (tagged and status.startswith("2")):
        headers[ETAG] = True
    if idempotent and status.startswith("2"):
        headers[IDEMPOTENT_REPLAYED] = False
    return {
        name: replace(RESPONSE_HEADERS[name], required=required)
        for name, required in headers.items()
    }
