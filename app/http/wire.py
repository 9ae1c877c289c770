"""The shapes of responses, and reading request bodies into commands."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request

from app.http.errors import describe_decode_error, validation_error
from app.http.json_document import check_document, decode_command
from app.published_events import AuditEvent
from domain.task import Task
from projections.figures import AGENT_PERFORMANCE_MAX

T = TypeVar("T")

# The messages of the reference's answers.
CREATED = "Task created successfully"
UPDATED = "Task updated successfully"
COMPLETED = "Task completed successfully"
SNOOZED = "Task snoozed successfully"
REASSIGNED = "Task reassigned successfully"
DELETED = "Task deleted successfully"


class TaskResult(msgspec.Struct):
    success: bool
    message: str
    task: Task


class SnoozeResult(msgspec.Struct, rename="camel"):
    success: bool
    message: str
    snooze_count: int
    task: Task


class Confirmation(msgspec.Struct):
    success: bool
    message: str


class TaskPage(msgspec.Struct, rename="camel"):
    tasks: list[Task]
    total: int
    page: int
    limit: int
    total_pages: int


class TaskStats(msgspec.Struct, rename="camel"):
    total: int
    overdue: int
    due_today: int
    completed_this_week: int
    in_progress: int


class AgentPerformance(msgspec.Struct, rename="camel"):
    agent_id: str
    agent_name: str | None
    total: int
    completed: int


AverageHours = Annotated[
    float,
    msgspec.Meta(
        description="Mean hours from creation to completion of the completed tasks counted, "
        "rounded to two decimals or to three significant digits where that is finer (12 "
        "seconds: 0.00333), so an average above zero is never 0; null when none is completed."
    ),
]


AgentsRanked = Annotated[
    list[AgentPerformance],
    msgspec.Meta(
        max_length=AGENT_PERFORMANCE_MAX,
        description="Each owner of tasks counted, most tasks first, then by `agentId`: at most "
        f"the first {AGENT_PERFORMANCE_MAX:,} (`totalTasks` counts every task).",
    ),
]


class TaskAnalytics(msgspec.Struct, rename="camel"):
    total_tasks: int
    completed_tasks: int
    overdue_tasks: int
    avg_completion_time: AverageHours | None
    status_distribution: dict[str, int]
    priority_distribution: dict[str, int]
    agent_performance: AgentsRanked


class EventPage(msgspec.Struct):
    """A page of the tenant's events in commit order; `next` is the cursor to ask for next."""

    events: list[AuditEvent]
    next: str


async def decode_body(
    request: Request[Any, Any, Any], command_type: type[T], *, optional: bool = False
) -> T:
    """The request body as a command; 400 naming the field when it is not one. A body left
    out is refused unless it is `optional`, when it stands for `{}`."""
    body = await request.body()
    if not body:
        if not optional:
            raise validation_error(["body: required (a JSON object)"])
        body = b"{}"
    check_document(body)
    try:
        return decode_command(body, command_type)
    except msgspec.MsgspecError as error:
        raise validation_error([describe_decode_error(error)]) from error
