"""What happens around every request, in one pure-ASGI layer outside the router, so that the
404s and 405s the router answers itself are covered too:

- its id: the client's x-request-id when it sends a sane one, else a new one; echoed in the
  answer and recorded with each event the request causes;
- a HEAD: answered as the GET it mirrors, the body left out;
- its deadline: a request that has not begun its answer within the request timeout is
  cancelled and answered 503 with Retry-After (a command cancelled that way rolls back, unless
  it had already committed, so a client retries it with the same Idempotency-Key); so is one
  the server cancels as it stops, past its shutdown bound;
- the RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers) of the
  quota that counted the request, on its answer whatever its status;
- once answered: one access line in the log, and its count and duration in the metrics, with
  the rate-limit refusals and idempotent replays among them.

One layer rather than one per concern: each layer wraps `send` again, and four of them cost
a request more CPU than Litestar's routing and handler call together."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.http.deadlines import Deadlines
from app.http.errors import ApiError, send_error, service_unavailable
from app.http.idempotency import REPLAYED_HEADER
from app.http.request_headers import header
from app.http.scope_state import DECISION, REQUEST_ID, TENANT_ID
from app.logs import log_info
from app.rate_limits.policy import WINDOW_SECONDS, Decision

access_log = logging.getLogger("tasks_api.access")

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = REQUEST_ID_HEADER.encode()
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,200}")
_REPLAYED = REPLAYED_HEADER.lower().encode()
_ALLOW = b"allow"
# The answers that carry Allow: OPTIONS' 204 and the 405s.
_ALLOWING = frozenset({204, 405})
# Any other method is counted as "other": a client must not mint label values at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Exchange:
    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.deadlines = Deadlines(timeout_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # Read before the router resolves it, as the client sent it.
        path, method = scope["path"], scope["method"]
        head = method == "HEAD"
        if head:
            # A HEAD is a GET whose answer leaves its body out (RFC 9110 §9.3.2): the router
            # sees a GET, and the server, which reads the method from its own scope, still
            # sends the GET's Content-Length.
            scope = {**scope, "method": "GET"}
        state = scope.setdefault("state", {})
        state[REQUEST_ID] = request_id = _request_id(scope)
        # Its status (500 unless it starts), whether it replays a recorded answer, and whether
        # it has started.
        answer: list[Any] = [500, False, False]
        task = asyncio.current_task()
        assert task is not None
        deadlines = self.deadlines

        async def send_answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                deadlines.answering(task)
                headers = message["headers"] = list(message.get("headers") or ())
                answer[0] = message["status"]
                answer[1] = any(name.lower() == _REPLAYED for name, _ in headers)
                answer[2] = True
                if answer[0] in _ALLOWING:
                    headers[:] = [_head_allowed(name, value) for name, value in headers]
                headers.append((_REQUEST_ID, request_id.encode()))
                if (decision := state.get(DECISION)) is not None:
                    headers += rate_limit_fields(decision)
            elif head:
                message = {**message, "body": b""}
            await send(message)

        deadlines.start(task)
        try:
            await self.app(scope, receive, send_answer)
        except asyncio.CancelledError:
            if deadlines.was_cut(task):
                await send_error(self._timed_out(), scope, receive, send_answer)
            elif not answer[2]:
                # The server stopping past its shutdown bound cancels what still runs: an
                # answer the client can retry (the command rolled back unless it committed),
                # not the server's bare 500.
                stopping = service_unavailable("The server is stopping; retry shortly")
                await send_error(stopping, scope, receive, send_answer)
            else:
                raise
        finally:
            deadlines.done(task)
            seconds = time.perf_counter() - started
            _count(scope, method, answer[0], answer[1], seconds)
            _log(scope, method, path, answer[0], seconds)

    def _timed_out(self) -> ApiError:
        seconds = f"{self.deadlines.seconds:g}"
        return service_unavailable(f"The request took longer than {seconds} s; retry shortly")


def _head_allowed(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """An Allow field with HEAD wherever it has GET: a HEAD is answered as its GET."""
    if name.lower() != _ALLOW:
        return name, value
    methods = set(value.decode("latin-1").split(", "))
    if "GET" in methods:
        methods.add("HEAD")
    return name, ", ".join(sorted(methods)).encode("latin-1")


def _request_id(scope: Scope) -> str:
    sent = header(scope, _REQUEST_ID)
    if sent is not None and _SANE_REQUEST_ID.fullmatch(sent):
        return sent
    # Unique, not secret: the process's own generator, seeded from the system's at start.
    return f"{random.getrandbits(128):032x}"


def rate_limit_fields(decision: Decision) -> list[tuple[bytes, bytes]]:
    quota = decision.quota
    return [
        (b"ratelimit-policy", f'"{quota.policy}";q={quota.limit};w={WINDOW_SECONDS}'.encode()),
        (
            b"ratelimit",
            f'"{quota.policy}";r={decision.remaining};t={decision.seconds_until_room}'.encode(),
        ),
    ]


def _count(scope: Scope, method: str, status: int, replayed: bool, seconds: float) -> None:
    route = scope.get("path_template") or metrics.UNMATCHED_ROUTE
    metrics.count_request(method if method in METHODS else "other", route, status, seconds)
    if replayed:
        metrics.IDEMPOTENT_REPLAYS.labels(route).inc()
    if status == 429:
        decision = scope["state"].get(DECISION)
        policy = decision.quota.policy if decision is not None else "unknown"
        metrics.RATE_LIMIT_REJECTIONS.labels(policy).inc()


def _log(scope: Scope, method: str, path: str, status: int, seconds: float) -> None:
    state = scope["state"]
    log_info(
        access_log,
        f"{method} {path} {status}",
        {
            "requestId": state.get(REQUEST_ID),
            "tenantId": state.get(TENANT_ID),
            "method": method,
            "path": path,
            "route": scope.get("path_template"),
            "status": status,
            "durationMs": round(seconds * 1000, 2),
        },
    )
