"""Who is calling: the x-tenant-api-key header resolved to a tenant, within the rate limits of
the tenant and of the client address."""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar import Request
from litestar.datastructures import State

from app import tenants
from app.cells import Cells, UnknownCell
from app.database import Database
from app.http.errors import ApiError, service_unavailable
from app.http.query_check import check_request_target
from app.http.request_headers import header
from app.http.scope_state import DATABASE, DECISION, REQUEST_ID, TENANT_ID
from app.rate_limits import RateLimiter
from app.rate_limits.policy import WINDOW_SECONDS, CountersUnavailable, Decision
from app.service import Caller

log = logging.getLogger("tasks_api.auth")

API_KEY_HEADER = "x-tenant-api-key"
_API_KEY_HEADER = API_KEY_HEADER.encode()
# Where the caller waits in the scope's state for the handler.
CALLER = "caller"
# How often a process says, at most, that the store of the rate limits does not answer.
COUNTERS_WARNING_SECONDS = 10.0
_counters_warned_at = -COUNTERS_WARNING_SECONDS


async def authenticate(request: Request[Any, Any, State]) -> None:
    """The API controllers' before_request: the caller found before any parameter is read, so
    a request with a bad key is a 401 whatever its query, and kept for `caller_of`. A hook
    rather than a dependency: resolving one costs a request more than finding the caller.
    OPTIONS asks nothing of the caller."""
    if request.scope["method"] != "OPTIONS":
        request.scope["state"][CALLER] = await authenticated_caller(request)


def caller_of(request: Request[Any, Any, State]) -> Caller:
    caller: Caller = request.scope["state"][CALLER]
    return caller


async def authenticated_caller(request: Request[Any, Any, State]) -> Caller:
    """The caller behind a live API key; 401 AuthenticationError for anything else. Over the
    tenant's limit, or past its address's limit of failures, 429 RateLimitError instead. Then,
    a path or query string that is not the route's: 400 ValidationError."""
    # On the scope itself: Litestar's request builds its headers and state anew at each use.
    scope, app_state = request.scope, request.app.state
    state = scope["state"]
    rate_limiter: RateLimiter = app_state.rate_limiter
    api_key = header(scope, _API_KEY_HEADER)
    principal = None
    if api_key:
        principal = await tenants.authenticate(app_state.db.pool, api_key)
    try:
        if principal is None:
            client = scope.get("client")
            decision = await rate_limiter.fail_authentication(client[0] if client else "unknown")
        else:
            state[TENANT_ID] = principal.tenant_id
            decision = await rate_limiter.admit(principal)
    except CountersUnavailable as error:
        _warn_counters_unavailable(error)
        raise service_unavailable("The rate limits cannot be counted; retry shortly") from error
    state[DECISION] = decision
    if not decision.accepted:
        raise too_many_requests(decision)
    if principal is None:
        raise ApiError(
            401, "AuthenticationError", "Invalid API key" if api_key else "Missing API key"
        )
    check_request_target(scope)
    state[DATABASE] = _cell_database(app_state.cells, principal)
    return Caller(principal=principal, request_id=state[REQUEST_ID])


def _warn_counters_unavailable(error: CountersUnavailable) -> None:
    """Once every COUNTERS_WARNING_SECONDS at most: every request meets the outage."""
    global _counters_warned_at
    now = time.monotonic()
    if now - _counters_warned_at >= COUNTERS_WARNING_SECONDS:
        _counters_warned_at = now
        log.warning("the rate limits cannot be counted, every request is refused (503): %s", error)


def _cell_database(cells: Cells, principal: tenants.Principal) -> Database:
    try:
        return cells.of(principal.cell).db
    except UnknownCell as unknown:
        log.error("tenant %s is on cell %s, which is not configured", principal.tenant_id, unknown)
        raise service_unavailable("The tenant's cell is not reachable; retry shortly") from None


def too_many_requests(decision: Decision) -> ApiError:
    quota, wait = decision.quota, decision.seconds_until_room
    return ApiError(
        429,
        "RateLimitError",
        f"Too many requests; retry after {wait} seconds",
        [f"{quota.policy}: at most {quota.limit} in any {WINDOW_SECONDS} seconds"],
        headers={"Retry-After": str(wait)},
    )
