"""GET /v1/events: the tenant's events in commit order, for consumers that follow the log.

The cursor names the last event a consumer has seen as (transaction id, position); reading
stops at the oldest transaction still in flight, so following `next` never skips an event
that commits late and never repeats one."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from app.http import examples
from app.http.auth import authenticated_caller
from app.http.errors import ERRORS, validation_error
from app.http.headers import documented
from app.http.params import text_parameter
from app.http.tasks import database_of
from app.http.wire import AuditEvent, EventPage
from app.service import Caller
from projections.log import Checkpoint, read_after
from store.tenant import tenant_transaction

# A transaction id and a position, each of at most 18 digits: both are PostgreSQL bigints, and
# neither reaches 10**18 (xid8 counts transactions, the position events).
CURSOR = r"^([0-9]{1,18})\.([0-9]{1,18})$"
_CURSOR = re.compile(CURSOR)


def parse_cursor(cursor: str | None) -> Checkpoint:
    if cursor is None:
        return Checkpoint()
    if (match := _CURSOR.fullmatch(cursor)) is None:
        raise validation_error(["after: not a cursor returned as `next`"])
    return Checkpoint(int(match[1]), int(match[2]))


def format_cursor(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.transaction_id}.{checkpoint.position}"


class EventController(Controller):
    path = "/v1/events"
    tags = ["Events"]
    dependencies = {"caller": Provide(authenticated_caller)}

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
        caller: NamedDependency[Caller],
        after: Annotated[
            str | None,
            text_parameter("after", "The `next` cursor of the previous page", pattern=CURSOR),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Events per page")] = 100,
    ) -> EventPage:
        """The tenant's events in the order they committed, `limit` at a time. Pass the
        page's `next` as `after` to read on: following it never skips an event, even one
        whose transaction commits late, and never repeats one."""
        checkpoint = parse_cursor(after)
        tenant_id = caller.principal.tenant_id
        async with tenant_transaction(database_of(request).pool, tenant_id) as conn:
            batch = await read_after(conn, checkpoint, limit, tenant_id=tenant_id)
        if batch:
            checkpoint = Checkpoint(batch[-1].transaction_id, batch[-1].position)
        return EventPage(
            events=[AuditEvent.of(event) for event in batch], next=format_cursor(checkpoint)
        )
