"""Who is calling: the x-tenant-api-key header resolved to a tenant, within the rate limits of
the tenant and of the client address."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import MutableScopeHeaders, State
from litestar.types import Message, Scope

from app import tenants
from app.http.errors import ApiError, service_unavailable
from app.http.query_check import check_request_target
from app.rate_limits import RateLimiter
from app.rate_limits.policy import WINDOW_SECONDS, CountersUnavailable, Decision
from app.service import Caller

API_KEY_HEADER = "x-tenant-api-key"
# Where the rate limit's decision waits for the response, whatever produces it.
DECISION = "rate_limit_decision"
# The authenticated tenant, for the access log.
TENANT_ID = "tenant_id"


async def authenticated_caller(request: Request[Any, Any, State]) -> Caller:
    """The caller behind a live API key; 401 AuthenticationError for anything else. Over the
    tenant's limit, or past its address's limit of failures, 429 RateLimitError instead. Then,
    a path or query string that is not the route's: 400 ValidationError."""
    rate_limiter: RateLimiter = request.app.state.rate_limiter
    api_key = request.headers.get(API_KEY_HEADER)
    principal = None
    if api_key:
        principal = await tenants.authenticate(request.app.state.engine, api_key)
    try:
        if principal is None:
            client_address = request.client.host if request.client else "unknown"
            decision = await rate_limiter.fail_authentication(client_address)
        else:
            request.state[TENANT_ID] = principal.tenant_id
            decision = await rate_limiter.admit(principal)
    except CountersUnavailable as error:
        raise service_unavailable("The rate limits cannot be counted; retry shortly") from error
    request.state[DECISION] = decision
    if not decision.accepted:
        raise too_many_requests(decision)
    if principal is None:
        raise ApiError(
            401, "AuthenticationError", "Invalid API key" if api_key else "Missing API key"
        )
    check_request_target(request.scope)
    return Caller(principal=principal, request_id=request.state.request_id)


def too_many_requests(decision: Decision) -> ApiError:
    quota, wait = decision.quota, decision.seconds_until_room
    return ApiError(
        429,
        "RateLimitError",
        f"Too many requests; retry after {wait} seconds",
        [f"{quota.policy}: at most {quota.limit} in any {WINDOW_SECONDS} seconds"],
        headers={"Retry-After": str(wait)},
    )


async def add_rate_limit_fields(message: Message, scope: Scope) -> None:
    """The RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers) of the
    quota that counted the request, on its response whatever its status."""
    decision: Decision | None = scope.get("state", {}).get(DECISION)
    if message["type"] != "http.response.start" or decision is None:
        return
    quota = decision.quota
    headers = MutableScopeHeaders.from_message(message)
    headers["RateLimit-Policy"] = f'"{quota.policy}";q={quota.limit};w={WINDOW_SECONDS}'
    headers["RateLimit"] = (
        f'"{quota.policy}";r={decision.remaining};t={decision.seconds_until_room}'
    )
