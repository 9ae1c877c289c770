"""The use cases' refusals as the API's errors, in the one envelope (app/http/errors.py)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from app import tenants
from app.http.errors import (
    ApiError,
    ErrorBody,
    error_response,
    service_unavailable,
    task_not_found,
)
from app.http.etags import etag
from app.idempotency import KeyReused
from app.service import StaleVersion, TaskNotFound
from app.store.event_log import AlreadyAnswered, TenantMoving, VersionConflict


def on_task_not_found(_: Request[Any, Any, Any], __: TaskNotFound) -> Response[ErrorBody]:
    return error_response(task_not_found())


def on_stale_version(_: Request[Any, Any, Any], error: StaleVersion) -> Response[ErrorBody]:
    return error_response(
        ApiError(
            412,
            "PreconditionFailedError",
            "The task has changed since the version If-Match names",
            [f"current version: {error.current_version}"],
            headers={"ETag": etag(error.current_version)},
        )
    )


def on_version_conflict(
    _: Request[Any, Any, Any], __: VersionConflict | AlreadyAnswered
) -> Response[ErrorBody]:
    return error_response(ApiError(409, "ConflictError", "The task changed concurrently; retry"))


def on_key_reused(_: Request[Any, Any, Any], __: KeyReused) -> Response[ErrorBody]:
    return error_response(
        ApiError(
            409,
            "ConflictError",
            "This Idempotency-Key was used with another request",
            ["Idempotency-Key: already used with another endpoint or body"],
        )
    )


def on_tenant_moving(_: Request[Any, Any, Any], error: TenantMoving) -> Response[ErrorBody]:
    # The key's cached cell may be the one it left: look the key up again next time.
    tenants.forget_tenant(error.tenant_id)
    return error_response(
        service_unavailable("The tenant is moving to another server; retry shortly")
    )


REFUSAL_HANDLERS: dict[type[Exception], Any] = {
    TaskNotFound: on_task_not_found,
    StaleVersion: on_stale_version,
    VersionConflict: on_version_conflict,
    AlreadyAnswered: on_version_conflict,
    KeyReused: on_key_reused,
    TenantMoving: on_tenant_moving,
}
