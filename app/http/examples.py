"""The reference's examples (Tasks API Documentation) as the API's documentation shows them:
the bodies of its requests, and its responses built as the API answers them, around the
reference's one task, so that each example has every field its schema has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.openapi.spec.base import BaseSchemaObject

from app.http import wire
from domain.task import ClaimStatus, Outcome, Priority, Status, Task, TitleType

# The request examples of the reference (Tasks API Documentation).
CREATE_EXAMPLE = {
    "title": "Follow up with customer",
    "titleType": "followup",
    "description": "Customer inquired about order #12345",
    "priority": "high",
    "dueDate": "2026-04-15T10:00:00Z",
    "ownerId": "agent_001",
    "ownerName": "John Doe",
    "relatedCustomerId": "cust_123",
    "relatedCustomerName": "Jane Smith",
    "tags": ["followup", "urgent"],
    "metadata": {"orderId": "ord_12345"},
}
UPDATE_EXAMPLE = {
    "title": "Updated title",
    "description": "Updated description",
    "priority": "urgent",
    "status": "in_progress",
}
COMPLETE_EXAMPLE = {"outcome": "resolved", "completionNotes": "Customer satisfied with resolution"}
SNOOZE_EXAMPLE = {"newDueDate": "2026-04-16T10:00:00Z", "adjustReminders": True}
REASSIGN_EXAMPLE = {"newOwnerId": "agent_002", "newOwnerName": "Jane Smith"}


# The rules on a task's state a command can break, as the API words its 400 (domain.decide).
ALREADY_COMPLETED = "Task is already completed"
DEFERRED = "A deferred task cannot be completed"
COMPLETION_ON_OPEN_TASK = "outcome and completionNotes can only be set on a completed task"
TOO_MANY_KEYS = "metadata must have at most 50 keys"
COMPLETED_NOT_SNOOZED = "A completed task cannot be snoozed"
NOT_IN_FUTURE = "newDueDate must be in the future"
REMINDER_OUT_OF_CALENDAR = "Snoozing would move a reminder out of the years 1 to 9999"

_at = datetime.fromisoformat
CREATED_AT = _at("2026-04-10T12:00:00Z")
CHANGED_AT = _at("2026-04-12T09:30:00Z")
SNOOZED_TO = _at(SNOOZE_EXAMPLE["newDueDate"])

# The task of the reference's create response.
TASK = Task(
    id="507f1f77bcf86cd799439011",
    title="Follow up with customer",
    title_type=TitleType.FOLLOWUP,
    description="Customer inquired about order #12345",
    priority=Priority.HIGH,
    due_date=_at("2026-04-15T10:00:00Z"),
    owner_id="agent_001",
    owner_name="John Doe",
    claim_status=ClaimStatus.CLAIMED,
    claimed_at=CREATED_AT,
    claimed_by="agent_001",
    related_customer_id="cust_123",
    related_customer_name="Jane Smith",
    tags=["followup", "urgent"],
    metadata={"orderId": "ord_12345"},
    created_at=CREATED_AT,
    updated_at=CREATED_AT,
)


def _changed(**fields: Any) -> Task:
    return msgspec.structs.replace(TASK, updated_at=CHANGED_AT, **fields)


@dataclass
class Verbatim(BaseSchemaObject):
    """An example's value as the API writes it, its nulls included: Litestar's document leaves
    out a dict's None values, and with them fields the schema requires."""

    value: Any

    def to_schema(self) -> Any:  # type: ignore[override]
        return self.value


def answer(
    status: int, description: str, example: Any, shape: Any = None
) -> dict[int, ResponseSpec]:
    """A route's success response in the document, with `example` as its example."""
    return {
        status: ResponseSpec(
            shape or type(example),
            description=description,
            generate_examples=False,
            examples=[Example(summary=description, value=Verbatim(msgspec.to_builtins(example)))],
        )
    }


CREATED = answer(201, "The task created", wire.TaskResult(True, wire.CREATED, TASK))
FOUND = answer(200, "The task", TASK)
PAGE = answer(200, "A page of tasks", wire.TaskPage([TASK], 150, 1, 20, 8))
CUSTOMER_PAGE = answer(200, "A page of the customer's tasks", wire.TaskPage([TASK], 5, 1, 20, 1))


def _changed_answer(summary: str, message: str, /, **fields: Any) -> dict[int, ResponseSpec]:
    """The answer of a command that changed the reference's task by `fields` (the task's own
    `description` among them: the other two are positional)."""
    return answer(200, summary, wire.TaskResult(True, message, _changed(**fields)))


UPDATED = _changed_answer(
    "The task updated",
    wire.UPDATED,
    title=UPDATE_EXAMPLE["title"],
    description=UPDATE_EXAMPLE["description"],
    priority=Priority.URGENT,
    status=Status.IN_PROGRESS,
)
COMPLETED = _changed_answer(
    "The task completed",
    wire.COMPLETED,
    status=Status.COMPLETED,
    outcome=Outcome.RESOLVED,
    completion_notes=COMPLETE_EXAMPLE["completionNotes"],
    completed_at=CHANGED_AT,
)
SNOOZED = answer(
    200,
    "The task snoozed",
    wire.SnoozeResult(
        True,
        wire.SNOOZED,
        2,
        _changed(due_date=SNOOZED_TO, snoozed_until=SNOOZED_TO, snooze_count=2),
    ),
)
REASSIGNED = _changed_answer(
    "The task reassigned",
    wire.REASSIGNED,
    owner_id=REASSIGN_EXAMPLE["newOwnerId"],
    owner_name=REASSIGN_EXAMPLE["newOwnerName"],
    claimed_by=REASSIGN_EXAMPLE["newOwnerId"],
    claimed_at=CHANGED_AT,
)
DELETED = answer(200, "The task deleted", wire.Confirmation(True, wire.DELETED))
STATS = answer(200, "The tenant's statistics", wire.TaskStats(45, 5, 8, 12, 20))
ANALYTICS = answer(
    200,
    "The tenant's analytics",
    wire.TaskAnalytics(
        total_tasks=150,
        completed_tasks=120,
        overdue_tasks=5,
        avg_completion_time=4.5,
        status_distribution={s.value: n for s, n in zip(Status, (10, 15, 0, 120, 5), strict=True)},
        priority_distribution={p.value: n for p, n in zip(Priority, (30, 80, 30, 10), strict=True)},
        agent_performance=[wire.AgentPerformance("agent_001", "John Doe", 50, 45)],
    ),
)
_REQUEST_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
_CREATION = wire.AuditEvent(
    tenant_id="6b0a3e1f2c4d5e6f7a8b9c0c",
    task_id=TASK.id,
    version=1,
    type="TASK_CREATED",
    payload_version=2,
    position=1042,
    transaction_id=7311,
    recorded_at=CREATED_AT,
    metadata={
        "actor": "6b0a3e1f2c4d5e6f7a8b9c0d",
        "requestId": _REQUEST_ID,
        "correlationId": _REQUEST_ID,
    },
    data={"task": msgspec.to_builtins(TASK)},
    hash="3f6c0e1a9b27d4c58e0f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f",
)
HISTORY = answer(200, "The task's events, oldest first", [_CREATION], list[wire.AuditEvent])
EVENTS = answer(
    200,
    "A page of the tenant's events in commit order",
    # `next`: the tenant's placement, the events read so far, and the transaction id and
    # position of the page's last event (app/feed.py).
    wire.EventPage([_CREATION], "0.1.7311.1042"),
)
