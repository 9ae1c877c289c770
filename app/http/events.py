"""GET /v1/events: the tenant's events in commit order, for consumers that follow the log.

The cursor names the last event a consumer has seen (app/feed.py); reading stops at the
oldest transaction still in flight, so following `next` never skips an event that commits
late and never repeats one, even across a move of the tenant to another cell."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from app.feed import CURSOR, BadCursor, Cursor, read_page
from app.http import examples
from app.http.auth import authenticate, caller_of
from app.http.errors import ERRORS, validation_error
from app.http.headers import documented
from app.http.params import text_parameter
from app.http.tasks import database_of
from app.http.wire import AuditEvent, EventPage


class EventController(Controller):
    path = "/v1/events"
    tags = ["Events"]
    before_request = authenticate

    @get(
        "",
        operation_id="listEvents",
        operation_class=documented(),
        summary="The tenant's events in commit order",
        responses={**examples.EVENTS, **ERRORS},
    )
    async def list_events(
        self,
        request: Request[Any, Any, State],
        after: Annotated[
            str | None,
            text_parameter("after", "The `next` cursor of the previous page", pattern=CURSOR),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Events per page")] = 100,
    ) -> EventPage:
        """The tenant's events in the order they committed, `limit` at a time. Pass the
        page's `next` as `after` to read on: following it never skips an event, even one
        whose transaction commits late, and never repeats one, across a move of the tenant to
        another server too. A cursor the feed cannot have given (one naming no event of the
        tenant, one counting more events than the tenant has once it has moved, or one from a
        placement it has not reached) is refused with 400 naming `after`."""
        principal = caller_of(request).principal
        try:
            page = await read_page(
                database_of(request),
                principal.tenant_id,
                principal.placement,
                Cursor.parse(after),
                limit,
            )
        except BadCursor as bad:
            raise validation_error([f"after: {bad}"]) from None
        return EventPage(
            events=[AuditEvent.of(event) for event in page.events], next=str(page.next)
        )
