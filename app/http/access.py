"""Every request, once answered: one access line in the log, and its count and duration in the
metrics, with the rate-limit refusals and idempotent replays among them.

It wraps the whole application rather than sitting among the route middleware, which Litestar
runs only for requests that match a route: the 404s and 405s the router answers itself are
requests too."""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.http.auth import DECISION, TENANT_ID
from app.http.idempotency import REPLAYED_HEADER

access_log = logging.getLogger("tasks_api.access")

# Any other method is counted as "other": a client must not mint label values at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REPLAYED = REPLAYED_HEADER.lower().encode()


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Read before the router resolves it, as the client sent it.
        path = scope["path"]
        started = time.perf_counter()
        answer: dict[str, Any] = {"status": 500, "replayed": False}

        async def send_noting_answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["replayed"] = any(
                    name.lower() == _REPLAYED for name, _ in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, send_noting_answer)
        finally:
            seconds = time.perf_counter() - started
            _count(scope, answer["status"], answer["replayed"], seconds)
            _log(scope, path, answer["status"], seconds)


def _count(scope: Scope, status: int, replayed: bool, seconds: float) -> None:
    method = scope["method"] if scope["method"] in METHODS else "other"
    route = scope.get("path_template") or metrics.UNMATCHED_ROUTE
    metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
    metrics.HTTP_REQUEST_DURATION.labels(method, route).observe(seconds)
    if replayed:
        metrics.IDEMPOTENT_REPLAYS.labels(route).inc()
    if status == 429:
        decision = scope.get("state", {}).get(DECISION)
        policy = decision.quota.policy if decision is not None else "unknown"
        metrics.RATE_LIMIT_REJECTIONS.labels(policy).inc()


def _log(scope: Scope, path: str, status: int, seconds: float) -> None:
    state = scope.get("state", {})
    fields = {
        "requestId": state.get("request_id"),
        "tenantId": state.get(TENANT_ID),
        "method": scope["method"],
        "path": path,
        "route": scope.get("path_template"),
        "status": status,
        "durationMs": round(seconds * 1000, 2),
    }
    access_log.info("%s %s %s", fields["method"], fields["path"], status, extra={"fields": fields})
