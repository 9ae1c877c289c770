"""The one error envelope, {"error": {"code", "message", "details"}}, for every failure."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from asyncpg.exceptions import (
    InsufficientResourcesError,
    InterfaceError,
    InternalClientError,
    InvalidAuthorizationSpecificationError,
    InvalidCatalogNameError,
    OperatorInterventionError,
    PostgresConnectionError,
    PostgresError,
    QueryCanceledError,
    ReadOnlySQLTransactionError,
)
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.types import Receive, Scope, Send
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.http.scope_state import REQUEST_ID
from domain.errors import RuleViolation
from projections.figures import RollupsBehind

log = logging.getLogger("tasks_api.errors")

RETRY_AFTER_SECONDS = 1


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    details: list[str] | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


def _envelope(
    description: str, code: str, message: str, *details: str, more: tuple[Example, ...] = ()
) -> ResponseSpec:
    example = ErrorBody(ErrorDetail(code, message, list(details) or None))
    return ResponseSpec(
        ErrorBody,
        description=description,
        generate_examples=False,
        examples=[Example(summary=code, value=msgspec.to_builtins(example)), *more],
    )


# The reference's example of a ValidationError: code, message, details.
_INVALID = ("ValidationError", "Validation failed", "title must be at least 1 characters")
# The envelope as the OpenAPI document shows it, under each status a route can fail with.
ENVELOPES = {
    400: _envelope("ValidationError: details name each offending field", *_INVALID),
    401: _envelope(
        "AuthenticationError: missing, unknown or revoked API key",
        "AuthenticationError",
        "Invalid API key",
    ),
    404: _envelope(
        "NotFoundError: no such task for this tenant", "NotFoundError", "Task not found"
    ),
    409: _envelope(
        "ConflictError: a concurrent change, or an Idempotency-Key already used",
        "ConflictError",
        "The task changed concurrently; retry",
    ),
    412: _envelope(
        "PreconditionFailedError: If-Match names a version the task has moved past",
        "PreconditionFailedError",
        "The task has changed since the version If-Match names",
        "current version: 3",
    ),
    413: _envelope(
        "PayloadTooLargeError: a body over TASKS_MAX_BODY_BYTES (256 KB by default)",
        "PayloadTooLargeError",
        "Request body too large",
    ),
    429: _envelope(
        "RateLimitError: over a rate limit; retry after Retry-After",
        "RateLimitError",
        "Too many requests; retry after 12 seconds",
        "tenant: at most 300 in any 60 seconds",
    ),
    500: _envelope("InternalServerError", "InternalServerError", "Internal server error"),
    503: _envelope(
        "ServiceUnavailableError: the database is unavailable; retry after Retry-After",
        "ServiceUnavailableError",
        "The database is unavailable; retry shortly",
    ),
}


def _errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {status: ENVELOPES[status] for status in statuses}


def refused_by_rules(*rules: str) -> dict[int, ResponseSpec]:
    """The 400 of a command that can break `rules` on the task's state, which no schema can
    state: the envelope's example, then one of each rule as the API answers it."""
    answers = (ErrorBody(ErrorDetail("ValidationError", rule, [rule])) for rule in rules)
    refusals = tuple(
        Example(summary=answer.error.message, value=msgspec.to_builtins(answer))
        for answer in answers
    )
    return {
        400: _envelope(
            "ValidationError: details name each offending field, or the rule on the task's"
            " state that the command breaks",
            *_INVALID,
            more=refusals,
        )
    }


# Every operation behind the API key: a bad query, a bad key, the rate limit, the database.
ERRORS = _errors(400, 401, 429, 500, 503)
# An operation on a path that names a task (or a customer): that path may name none.
TASK_READ_ERRORS = _errors(400, 401, 404, 429, 500, 503)
# A command reads a body, and can meet a concurrent change or an Idempotency-Key used for
# another request; one on an existing task, a stale If-Match.
CREATE_ERRORS = _errors(400, 401, 409, 413, 429, 500, 503)
TASK_COMMAND_ERRORS = _errors(400, 401, 404, 409, 412, 413, 429, 500, 503)
NOT_MODIFIED = {
    304: ResponseSpec(
        None, description="If-None-Match names the current version", generate_examples=False
    )
}


class ApiError(Exception):
    """A failure the client is told about, with its HTTP status and reference error code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def validation_error(details: list[str], message: str = "Validation failed") -> ApiError:
    return ApiError(400, "ValidationError", message, details)


def service_unavailable(message: str) -> ApiError:
    """503 with Retry-After: a passing condition, worth a retry shortly."""
    return ApiError(
        503,
        "ServiceUnavailableError",
        message,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def task_not_found() -> ApiError:
    return ApiError(404, "NotFoundError", "Task not found")


CODES_BY_STATUS = {
    400: "ValidationError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "ConflictError",
    412: "PreconditionFailedError",
    413: "PayloadTooLargeError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
}
MESSAGES_BY_STATUS = {
    404: "Resource not found",
    405: "Method not allowed",
    413: "Request body too large",
}


def error_response(error: ApiError) -> Response[ErrorBody]:
    body = ErrorBody(ErrorDetail(error.code, error.message, error.details))
    return Response(body, status_code=error.status, headers=error.headers)


def on_api_error(_: Request[Any, Any, Any], error: ApiError) -> Response[ErrorBody]:
    return error_response(error)


async def send_error(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the envelope from an ASGI middleware, where no exception handler runs."""
    request: Request[Any, Any, Any] = Request(scope, receive)
    await error_response(error).to_asgi_response(app=None, request=request)(scope, receive, send)


def on_rule_violation(_: Request[Any, Any, Any], error: RuleViolation) -> Response[ErrorBody]:
    return error_response(validation_error([error.message], error.message))


def on_validation_exception(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[ErrorBody]:
    """Litestar's own validation of path and query parameters."""
    details = [
        f"{_wire_name(request, item.get('key', 'request'))}: {item.get('message', 'invalid value')}"
        for item in (error.extra if isinstance(error.extra, list) else [])
        if isinstance(item, dict)
    ]
    return error_response(validation_error(details or [str(error.detail)]))


def _wire_name(request: Request[Any, Any, Any], key: str) -> str:
    """Litestar names a parameter by its Python name, the handler's or a dependency's; the
    client knows it by its query name."""
    handler = request.route_handler
    signatures = [
        handler.parsed_fn_signature,
        *(dependency.parsed_fn_signature for dependency in handler.resolve_dependencies().values()),
    ]
    for signature in signatures:
        if parameter := signature.parameters.get(key):
            return getattr(parameter.kwarg_definition, "name", None) or key
    return key


def on_http_exception(_: Request[Any, Any, Any], error: HTTPException) -> Response[ErrorBody]:
    status = error.status_code
    if status >= 500:
        return on_unexpected(_, error)
    code = CODES_BY_STATUS.get(status, "HTTPError")
    message = MESSAGES_BY_STATUS.get(status, str(error.detail))
    return error_response(ApiError(status, code, message, headers=error.headers))


def on_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[ErrorBody]:
    log.exception("unexpected failure on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(ApiError(500, "InternalServerError", "Internal server error"))


def database_unavailable(error: BaseException | None) -> bool:
    """The database cannot be reached, is restarting, or gave up on a statement (its
    statement_timeout, say): worth a retry, not a bug. Met through SQLAlchemy or on the
    driver's own connection alike."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(_driver_error(error), _UNAVAILABLE)


def _driver_error(error: BaseException | None) -> BaseException | None:
    """The driver's own error, under SQLAlchemy's wrapping of it."""
    if isinstance(error, DBAPIError):
        return error.orig.__cause__ if error.orig is not None else None
    return error


_UNAVAILABLE = (
    OSError,
    PoolTimeout,
    PostgresConnectionError,
    InterfaceError,
    InternalClientError,
    # The server has no connection to spare (max_connections), no disk or no memory: passing
    # conditions, or the operator's to end, never the request's fault.
    InsufficientResourcesError,
    # Among them the cancelled statement (a statement_timeout) and the server shutting down.
    OperatorInterventionError,
    # The server takes no writes (a standby, or a database set read-only): commands cannot
    # be kept until the primary is back, while reads are still answered.
    ReadOnlySQLTransactionError,
    # The server answers but refuses the service its database (dropped, renamed) or its role
    # (dropped, its password changed): an outage to the client, whose request was sound; the
    # warning names the cause for the operator.
    InvalidCatalogNameError,
    InvalidAuthorizationSpecificationError,
)


def on_database_error(request: Request[Any, Any, Any], error: Exception) -> Response[ErrorBody]:
    if not database_unavailable(error):
        return on_unexpected(request, error)
    cause = _driver_error(error)
    if isinstance(cause, QueryCanceledError):
        state, message = "too slow (statement_timeout)", "The database did not answer in time"
    elif isinstance(cause, ReadOnlySQLTransactionError):
        state, message = "read-only", "The database takes no writes"
    else:
        state, message = "unavailable", "The database is unavailable"
    log.warning(
        "database %s on %s %s: %s",
        state,
        request.method,
        request.url.path,
        error,
        extra={"fields": {"requestId": request.scope["state"].get(REQUEST_ID)}},
    )
    return error_response(service_unavailable(f"{message}; retry shortly"))


def on_rollups_behind(_: Request[Any, Any, Any], error: RollupsBehind) -> Response[ErrorBody]:
    return error_response(
        service_unavailable("The statistics are catching up with the event log; retry shortly")
    )


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    RollupsBehind: on_rollups_behind,
    SQLAlchemyError: on_database_error,
    PostgresError: on_database_error,
    InterfaceError: on_database_error,
    InternalClientError: on_database_error,
    OSError: on_database_error,
    ApiError: on_api_error,
    RuleViolation: on_rule_violation,
    ValidationException: on_validation_exception,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}

_AT_PATH = re.compile(r"^(?P<message>.*) - at `\$\.?(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"Object (?:missing required|contains unknown) field `(?P<field>[^`]+)`")


def describe_decode_error(error: msgspec.MsgspecError) -> str:
    """A msgspec error as a detail that names the offending field first."""
    text = str(error)
    # ValidationError subclasses DecodeError: only a plain DecodeError means bad JSON.
    if not isinstance(error, msgspec.ValidationError):
        return f"body: malformed JSON ({text})"
    if isinstance(error.__cause__, ValueError):
        # A command's own rule (its __post_init__), whose message names its field first.
        return text
    if match := _AT_PATH.match(text):
        path = match["path"]
        field_match = _NAMED_FIELD.match(match["message"])
        if field_match:
            path = f"{path}.{field_match['field']}" if path else field_match["field"]
        return f"{path or 'body'}: {_plain(match['message'])}"
    if field_match := _NAMED_FIELD.match(text):
        return f"{field_match['field']}: {_plain(text)}"
    # msgspec gives no path when the body itself has the wrong shape.
    return f"body: {text}"


def _plain(message: str) -> str:
    if message.startswith("Object contains unknown field"):
        return "unknown or read-only field"
    if message.startswith("Object missing required field"):
        return "required"
    return message
