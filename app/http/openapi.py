"""The API's documentation: the OpenAPI document at /schema/openapi.json, the interactive
page at /schema, and the request bodies each command takes, with the reference's examples."""

from __future__ import annotations

from typing import Annotated, Any

from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, Example, SecurityScheme
from litestar.params import Body

DESCRIPTION = """\
Tasks for tracking customer interactions, follow-ups, support requests and team workflows.

**Authentication.** Every request carries the tenant's API key in the `x-tenant-api-key`
header; a key sees its own tenant's tasks only. A missing, unknown or revoked key is answered
401.

**Errors.** Every failure has one shape, `{"error": {"code", "message", "details"}}`, where
`details` names each offending field.

**Rate limits.** Each tenant has a number of requests per minute. Every answer carries
`RateLimit-Policy` and `RateLimit`; one over the limit is answered 429 with `Retry-After`.

**Versions.** A task's answers carry its version as an `ETag`. A write with `If-Match` is
refused with 412 if the task has moved past that version; a read with `If-None-Match` is
answered 304 while it has not.

**Retries.** A command sent with an `Idempotency-Key` header is carried out once: a retry with
the same key and body within 24 hours gets the first answer again.

**History.** Every change is recorded as an event (TASK_CREATED, TASK_UPDATED, TASK_COMPLETED,
TASK_DELETED, TASK_REASSIGNED, TASK_SNOOZED), readable per task and for the whole tenant.
"""


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Tasks API",
        version="1.0.0",
        description=DESCRIPTION,
        path="/schema",
        # Scalar at /schema itself, Swagger UI beside it; the JSON document at
        # /schema/openapi.json either way.
        render_plugins=[ScalarRenderPlugin(path="/"), SwaggerRenderPlugin(path="/swagger")],
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="apiKey", name="x-tenant-api-key", security_scheme_in="header"
                )
            }
        ),
        security=[{"apiKey": []}],
    )


def request_body(command: type, example: dict[str, Any], summary: str) -> dict[str, Provide]:
    """A route dependency that puts `command` in the document as the route's request body.

    Handlers decode their bodies themselves (strict JSON, details that name the field), so
    they take no `data` parameter, the one Litestar documents a body from. It looks for one
    among the route's dependencies too: this one has it, and is never resolved, since no
    handler asks for it by name."""

    def documented(data: Any) -> None:
        raise AssertionError("a documentation-only dependency was resolved")

    documented.__annotations__ = {
        "data": Annotated[command, Body(examples=[Example(summary=summary, value=example)])],
        "return": None,
    }
    return {"documented_body": Provide(documented, sync_to_thread=False)}
