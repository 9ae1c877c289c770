"""Who is calling: the x-tenant-api-key header resolved to a tenant."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

from app import tenants
from app.http.errors import ApiError
from app.service import Caller

API_KEY_HEADER = "x-tenant-api-key"


async def authenticated_caller(request: Request[Any, Any, State]) -> Caller:
    """The caller behind a live API key; 401 AuthenticationError for anything else."""
    api_key = request.headers.get(API_KEY_HEADER)
    if not api_key:
        raise ApiError(401, "AuthenticationError", "Missing API key")
    async with request.app.state.engine.connect() as conn:
        principal = await tenants.authenticate(conn, api_key)
    if principal is None:
        raise ApiError(401, "AuthenticationError", "Invalid API key")
    return Caller(principal=principal, request_id=request.state.request_id)
