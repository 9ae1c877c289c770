"""The API's documentation: the OpenAPI document at /schema/openapi.json, the interactive pages
at /schema (Scalar) and /schema/swagger (Swagger UI), served with their assets by the service
itself, and the request bodies each command takes, with the reference's examples.

Litestar builds the document from the routes; the one served has the schemas msgspec gives the
types it decodes requests into and encodes responses from (app.http.schemas), and the
parameters keep to the rules of those requests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, Example, SecurityScheme
from litestar.params import Body
from litestar.static_files import create_static_files_router

from app.http import headers, wire
from app.http.errors import ErrorBody
from app.http.schemas import as_request, component_schemas
from domain.commands import CompleteTask, CreateTask, ReassignTask, SnoozeTask, TaskChanges
from domain.task import Task

DESCRIPTION = """\
Tasks for tracking customer interactions, follow-ups, support requests and team workflows.

**Authentication.** Every request carries the tenant's API key in the `x-tenant-api-key`
header; a key sees its own tenant's tasks only. A missing, unknown or revoked key is answered
401.

**Bodies.** JSON nested at most 32 levels deep, whose strings, keys included, hold no NUL
character, and whose numbers are integers of at most 4300 digits or doubles, whatever the
fields that hold them (the free-form objects `metadata`, `autoComplete` and `agentReminders`
among them).

**Errors.** Every failure has one shape, `{"error": {"code", "message", "details"}}`, where
`details` names each offending field. A request the schemas here forbid is refused with 400;
so is one that breaks a rule on the task's state, which each operation describes.

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

# The bodies requests carry, and the bodies of answers: every schema the document names.
REQUESTS = (CreateTask, TaskChanges, CompleteTask, SnoozeTask, ReassignTask)
RESPONSES = (
    wire.TaskResult,
    wire.SnoozeResult,
    wire.Confirmation,
    wire.TaskPage,
    wire.TaskStats,
    wire.TaskAnalytics,
    wire.AuditEvent,
    wire.EventPage,
    Task,
    ErrorBody,
)
# What a body's fields cannot say alone (domain.decide.create): a new task has an outcome or
# completion notes only when it starts completed.
_COMPLETION_FIELDS = ("outcome", "completionNotes")
RULES = {
    "CreateTask": {
        "if": {
            "anyOf": [
                {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                for name in _COMPLETION_FIELDS
            ]
        },
        "then": {"required": ["status"], "properties": {"status": {"const": "completed"}}},
    }
}

ASSETS = Path(__file__).parent / "assets"
ASSETS_PATH = "/schema/assets"


class Document:
    """The document as served, completed once from what Litestar builds."""

    def __init__(self) -> None:
        self._served: dict[str, Any] | None = None

    def __call__(self, built: dict[str, Any]) -> dict[str, Any]:
        if self._served is None:
            self._served = complete(built)
        return self._served


def complete(built: dict[str, Any]) -> dict[str, Any]:
    """Litestar's document with msgspec's schemas, and its parameters as requests keep to."""
    document = copy.deepcopy(built)
    document["components"]["schemas"] = component_schemas(REQUESTS, RESPONSES, RULES)
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", ()):
                if "schema" in parameter:
                    parameter["schema"] = as_request(parameter["schema"])
    return document


class DocumentJson(JsonRenderPlugin):
    def __init__(self, document: Document) -> None:
        super().__init__()
        self.document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.document(openapi_schema))


class SwaggerPage(SwaggerRenderPlugin):
    """Swagger UI, with the document it shows inline."""

    def __init__(self, document: Document) -> None:
        assets = f"{ASSETS_PATH}/swagger-ui"
        super().__init__(
            path="/swagger",
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
            favicon="",
        )
        self.document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.document(openapi_schema))


def openapi_config() -> OpenAPIConfig:
    document = Document()
    return OpenAPIConfig(
        title="Tasks API",
        version="1.0.0",
        description=DESCRIPTION,
        path="/schema",
        render_plugins=[
            # Scalar at /schema itself, which reads /schema/openapi.json.
            ScalarRenderPlugin(
                path="/",
                js_url=f"{ASSETS_PATH}/scalar/standalone.js",
                # Scalar's own styles are in its script.
                css_url="data:text/css,",
                favicon="",
                # Its fonts would come from Scalar's servers.
                options={"withDefaultFonts": False},
            ),
            SwaggerPage(document),
            DocumentJson(document),
        ],
        openapi_router=Router(
            "/schema",
            route_handlers=[create_static_files_router(path="/assets", directories=[ASSETS])],
            include_in_schema=False,
        ),
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="apiKey", name="x-tenant-api-key", security_scheme_in="header"
                )
            },
            parameters=headers.PARAMETERS,
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
