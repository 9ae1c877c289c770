"""The /v1/tasks endpoints: thin handlers from HTTP to commands and read-side queries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import (
    HttpMethod,
    Request,
    Response,
    delete,
    get,
    patch,
    post,
    put,
    route,
)
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED
from litestar.types import ASGIApp

from app import clock, idempotency, ids, service
from app.database import Database
from app.http import etags, examples, wire
from app.http import idempotency as http_idempotency
from app.http.answered import Answered
from app.http.auth import authenticate, caller_of
from app.http.errors import (
    CREATE_ERRORS,
    ERRORS,
    NOT_MODIFIED,
    TASK_COMMAND_ERRORS,
    TASK_READ_ERRORS,
    refused_by_rules,
    task_not_found,
)
from app.http.headers import IDEMPOTENCY_KEY, IF_MATCH, IF_NONE_MATCH, documented
from app.http.openapi import request_body
from app.http.options import OptionsFirst, allowed_methods
from app.http.params import (
    TASK_LISTING,
    AgentsLimit,
    TaskListing,
    creation_period,
    id_filter,
    parse_time,
    task_page,
    time_parameter,
)
from app.http.query_check import path_rest
from app.http.scope_state import DATABASE
from app.http.wire import (
    AgentPerformance,
    AuditEvent,
    Confirmation,
    SnoozeResult,
    TaskAnalytics,
    TaskPage,
    TaskResult,
    TaskStats,
    decode_body,
)
from app.service import Caller
from domain.commands import (
    CompleteTask,
    CreateTask,
    DeleteTask,
    ReassignTask,
    SnoozeTask,
    TaskChanges,
    TaskCommand,
    UpdateTask,
)
from domain.task import Task
from projections import figures, log, queries, task_view
from projections.figures import AGENT_PERFORMANCE_MAX
from projections.log import replay_at
from store.pool import connection
from store.tenant import tenant_transaction

TaskId = Annotated[str, PathParameter(description="24 lowercase hex characters")]


def database_of(request: Request[Any, Any, State]) -> Database:
    """The database of the caller's cell, as authentication found it."""
    db: Database = request.scope["state"][DATABASE]
    return db


def tenant_reads(
    request: Request[Any, Any, State], tenant_id: str
) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection confined to the tenant whose reads all see one snapshot: rollups,
    checkpoint and task view agree."""
    return tenant_transaction(database_of(request).pool, tenant_id, "REPEATABLE READ")


def known_task_id(task_id: str) -> str:
    """A malformed id names no task: 404, like an id of another tenant."""
    if not ids.is_id(task_id):
        raise task_not_found()
    return task_id


def _on_task(
    request: Request[Any, Any, State],
    caller: Caller,
    task_id: str,
    command: TaskCommand,
) -> idempotency.Command:
    """Carrying out a command on a task, with If-Match honoured."""
    task_id, if_match = known_task_id(task_id), etags.expected_versions(request)

    def act(record: service.Recorder | None) -> Awaitable[service.CommandResult]:
        return service.run(database_of(request), caller, task_id, command, if_match, record)

    return act


async def _respond(
    request: Request[Any, Any, State],
    caller: Caller,
    command: idempotency.Command,
    render: Callable[[service.CommandResult], msgspec.Struct],
    status_code: int = 200,
) -> ASGIApp:
    """Run a command and answer it, replaying the recorded answer to an idempotent retry."""
    retry = http_idempotency.requested(request, caller.principal.tenant_id, await request.body())

    def answer(result: service.CommandResult) -> idempotency.Answer:
        tag = None if result.task is None else etags.etag(result.version)
        return idempotency.Answer(status_code, msgspec.json.encode(render(result)), tag)

    return Answered(await idempotency.answer_once(database_of(request), retry, command, answer))


def _task_of(result: service.CommandResult) -> Task:
    assert result.task is not None
    return result.task


def _task_result(message: str) -> Callable[[service.CommandResult], TaskResult]:
    return lambda result: TaskResult(True, message, _task_of(result))


class TaskController(OptionsFirst):
    path = "/v1/tasks"
    tags = ["Tasks"]
    before_request = authenticate

    @route(["", "/{task_id:str}"], http_method=HttpMethod.OPTIONS, include_in_schema=False)
    async def options(self, request: Request[Any, Any, State]) -> Response[None]:
        """The methods of the path, every one: see app.http.options."""
        return allowed_methods(request)

    @post(
        "",
        operation_id="createTask",
        operation_class=documented(IDEMPOTENCY_KEY, tagged=True),
        summary="Create a task",
        status_code=201,
        responses={**examples.CREATED, **CREATE_ERRORS},
        dependencies=request_body(CreateTask, examples.CREATE_EXAMPLE, "The reference's new task"),
    )
    async def create(self, request: Request[Any, Any, State]) -> ASGIApp:
        """Create a task from the fields given; only `title` is required. It starts
        `not_started` with `normal` priority unless told otherwise, and is claimed by its
        owner, queued in its queue, or unassigned. Answered 201 with the task and its version
        as the ETag. Read-only and unknown fields are refused by name (400)."""
        caller = caller_of(request)
        command = await decode_body(request, CreateTask)

        def act(record: service.Recorder | None) -> Awaitable[service.CommandResult]:
            return service.create_task(database_of(request), caller, command, record)

        return await _respond(request, caller, act, _task_result(wire.CREATED), status_code=201)

    @get(
        "",
        operation_id="listTasks",
        operation_class=documented(),
        summary="List tasks with filtering and pagination",
        responses={**examples.PAGE, **ERRORS},
        dependencies=TASK_LISTING,
    )
    async def list_tasks(
        self,
        request: Request[Any, Any, State],
        listing: NamedDependency[TaskListing],
        queue_id: Annotated[str | None, id_filter("queueId")] = None,
        related_customer_id: Annotated[str | None, id_filter("relatedCustomerId")] = None,
        linked_entity_type: Annotated[str | None, id_filter("linkedEntityType")] = None,
        linked_entity_id: Annotated[str | None, id_filter("linkedEntityId")] = None,
        linked_pipeline_id: Annotated[str | None, id_filter("linkedPipelineId")] = None,
    ) -> TaskPage:
        """A page of the tenant's tasks, deleted ones left out. Filters combine: `status` and
        `priority` take comma-separated values, `dueBefore`/`dueAfter` RFC 3339 times,
        `overdue=true` open tasks past their due date, `search` text found in the title or
        the description. Sorted by `sort` (`dueDate` by default, tasks without one last), `limit`
        per page up to 100; `total` and `totalPages` count every match."""
        criteria = replace(
            listing.criteria,
            queue_id=queue_id,
            related_customer_id=related_customer_id,
            linked_entity_type=linked_entity_type,
            linked_entity_id=linked_entity_id,
            linked_pipeline_id=linked_pipeline_id,
        )
        return await _page(request, criteria, listing.order)

    @get(
        # The rest of the path, slashes and all: a customer's id may hold a `/` (sent as %2F).
        "/customer/{customer_id:path}",
        operation_id="listCustomerTasks",
        operation_class=documented(),
        summary="Get tasks for a specific customer",
        responses={**examples.CUSTOMER_PAGE, **ERRORS},
        dependencies=TASK_LISTING,
    )
    async def customer_tasks(
        self,
        request: Request[Any, Any, State],
        listing: NamedDependency[TaskListing],
        customer_id: FromPath[str],
    ) -> TaskPage:
        """A page of the tasks whose `relatedCustomerId` is the customer's, filtered, sorted
        and paged as the task list is (`status`, `priority`, `ownerId`, `dueBefore`,
        `dueAfter`, `overdue`, `search`). A customer without tasks has an empty page. An id
        that holds a `/` is sent with it escaped, as `%2F`."""
        customer = path_rest(request.scope, "/customer/") or customer_id.removeprefix("/")
        criteria = replace(listing.criteria, related_customer_id=customer)
        return await _page(request, criteria, listing.order)

    @get(
        "/stats",
        operation_id="getTaskStats",
        operation_class=documented(),
        summary="Get task statistics",
        responses={**examples.STATS, **ERRORS},
    )
    async def stats(
        self,
        request: Request[Any, Any, State],
        owner_id: Annotated[str | None, id_filter("ownerId")] = None,
    ) -> TaskStats:
        """Counts of the tenant's live tasks (or one owner's): all of them, `overdue` (open,
        that is neither completed nor deferred, and due before now), `dueToday` (open and due
        within today, UTC), `completedThisWeek` (completed now, their completion on or after
        Monday 00:00 UTC) and `inProgress`. An empty `ownerId` names no owner: 400."""
        caller = caller_of(request)
        async with tenant_reads(request, caller.principal.tenant_id) as conn:
            counts = await figures.task_stats(
                conn, caller.principal.tenant_id, clock.now(), owner_id
            )
        return TaskStats(
            total=counts["total"],
            overdue=counts["overdue"],
            due_today=counts["dueToday"],
            completed_this_week=counts["completedThisWeek"],
            in_progress=counts["inProgress"],
        )

    @get(
        "/analytics",
        operation_id="getTaskAnalytics",
        operation_class=documented(),
        summary="Get task analytics",
        responses={**examples.ANALYTICS, **ERRORS},
    )
    async def analytics(
        self,
        request: Request[Any, Any, State],
        start_date: Annotated[str | None, time_parameter("startDate", "Tasks created from")] = None,
        end_date: Annotated[
            str | None, time_parameter("endDate", "Tasks created until (a date: its whole day)")
        ] = None,
        owner_id: Annotated[str | None, id_filter("ownerId")] = None,
        limit: AgentsLimit = AGENT_PERFORMANCE_MAX,
    ) -> TaskAnalytics:
        """Totals, the distribution by status and priority, the average time to complete
        and each agent's tasks and completions, over the live tasks created between
        `startDate` and `endDate` (a date alone covers the whole day), optionally one
        owner's. `avgCompletionTime` is in hours, from creation to completion, rounded to two
        decimals or to three significant digits where that is finer, so an average above
        zero is never shown as 0 (12 seconds: 0.00333); null when none is completed.
        `agentPerformance` lists the first `limit` agents (at most 5,000, the default); the
        totals count every task. A `startDate` after `endDate` is refused (400)."""
        caller = caller_of(request)
        created_from, created_before = creation_period(start_date, end_date)
        async with tenant_reads(request, caller.principal.tenant_id) as conn:
            totals = await figures.task_analytics(
                conn,
                caller.principal.tenant_id,
                clock.now(),
                created_from,
                created_before,
                owner_id,
                agents=limit,
            )
        agents = [AgentPerformance(**agent) for agent in totals.pop("agent_performance")]
        return TaskAnalytics(**totals, agent_performance=agents)

    @get(
        "/{task_id:str}",
        operation_id="getTask",
        operation_class=documented(IF_NONE_MATCH, tagged=True),
        summary="Get task by ID",
        responses={**examples.FOUND, **TASK_READ_ERRORS, **NOT_MODIFIED},
    )
    async def get_task(
        self,
        request: Request[Any, Any, State],
        task_id: TaskId,
        as_of: Annotated[
            str | None,
            time_parameter(
                "asOf", "The task as it stood at this time (a date alone: its first instant, UTC)"
            ),
        ] = None,
    ) -> ASGIApp:
        """The task, with its version as the ETag; 304 when `If-None-Match` names it. With
        `asOf`, the task as it stood at that time, replayed from its history. A deleted task,
        or another tenant's, is not found (404)."""
        caller = caller_of(request)
        tenant_id, task_id = caller.principal.tenant_id, known_task_id(task_id)
        moment = parse_time("asOf", as_of)
        if moment is None:
            async with connection(database_of(request).pool) as conn:
                found = await task_view.load_answer(conn, tenant_id, task_id)
        else:
            async with tenant_reads(request, tenant_id) as conn:
                history = await log.stream(conn, tenant_id, task_id, until=moment)
                task = replay_at(history)
                found = None if task is None else (msgspec.json.encode(task), history[-1].version)
        if found is None:
            raise task_not_found()
        body, version = found
        tag = etags.etag(version)
        if etags.not_modified(request, version):
            return Answered(idempotency.Answer(HTTP_304_NOT_MODIFIED, b"", tag))
        return Answered(idempotency.Answer(HTTP_200_OK, body, tag))

    @get(
        "/{task_id:str}/events",
        operation_id="getTaskEvents",
        operation_class=documented(),
        summary="A task's audit history",
        responses={**examples.HISTORY, **TASK_READ_ERRORS},
    )
    async def task_events(
        self, request: Request[Any, Any, State], task_id: TaskId
    ) -> list[AuditEvent]:
        """Every event of the task, oldest first: what changed, when, by which API key and
        in which request. A deleted task keeps its history."""
        caller = caller_of(request)
        async with tenant_reads(request, caller.principal.tenant_id) as conn:
            history = await log.stream(conn, caller.principal.tenant_id, known_task_id(task_id))
        if not history:
            raise task_not_found()
        return [AuditEvent.of(event) for event in history]

    @put(
        "/{task_id:str}",
        operation_id="updateTask",
        operation_class=documented(IF_MATCH, IDEMPOTENCY_KEY, tagged=True),
        summary="Update a task",
        responses={
            **examples.UPDATED,
            **TASK_COMMAND_ERRORS,
            **refused_by_rules(
                examples.COMPLETION_ON_OPEN_TASK, examples.ALREADY_COMPLETED, examples.DEFERRED
            ),
        },
        dependencies=request_body(TaskChanges, examples.UPDATE_EXAMPLE, "The reference's update"),
    )
    async def update(self, request: Request[Any, Any, State], task_id: TaskId) -> ASGIApp:
        """Set the fields given; those left out keep their values, and objects given
        (`metadata`, `autoComplete`, ...) replace the task's whole. A body is required; `{}`
        changes nothing. A new `ownerId` reassigns the task and `status` `completed` completes
        it as /complete does, so a task already completed, or deferred, is refused (400);
        `outcome` and `completionNotes` are refused (400) unless the task is, or becomes,
        completed. With `If-Match`, refused (412) once the task has moved past that version."""
        caller = caller_of(request)
        changes = await decode_body(request, TaskChanges)
        act = _on_task(request, caller, task_id, UpdateTask(changes, merge=False))
        return await _respond(request, caller, act, _task_result(wire.UPDATED))

    @patch(
        "/{task_id:str}",
        operation_id="patchTask",
        operation_class=documented(IF_MATCH, IDEMPOTENCY_KEY, tagged=True),
        summary="Partially update a task",
        responses={
            **examples.UPDATED,
            **TASK_COMMAND_ERRORS,
            **refused_by_rules(
                examples.COMPLETION_ON_OPEN_TASK,
                examples.ALREADY_COMPLETED,
                examples.DEFERRED,
                examples.TOO_MANY_KEYS,
            ),
        },
        dependencies=request_body(TaskChanges, examples.UPDATE_EXAMPLE, "The reference's update"),
    )
    async def patch(self, request: Request[Any, Any, State], task_id: TaskId) -> ASGIApp:
        """As PUT, except that `metadata`, `autoComplete` and `agentReminders` merge into the
        task's key by key, a null value removing its key (RFC 7396); a merge that leaves one
        of them over 50 keys, or a metadata value over its size, is refused (400)."""
        caller = caller_of(request)
        changes = await decode_body(request, TaskChanges)
        act = _on_task(request, caller, task_id, UpdateTask(changes, merge=True))
        return await _respond(request, caller, act, _task_result(wire.UPDATED))

    @post(
        "/{task_id:str}/complete",
        operation_id="completeTask",
        operation_class=documented(IF_MATCH, IDEMPOTENCY_KEY, tagged=True, optional_body=True),
        summary="Mark a task as completed",
        status_code=200,
        responses={
            **examples.COMPLETED,
            **TASK_COMMAND_ERRORS,
            **refused_by_rules(examples.ALREADY_COMPLETED, examples.DEFERRED),
        },
        dependencies=request_body(
            CompleteTask, examples.COMPLETE_EXAMPLE, "The reference's completion"
        ),
    )
    async def complete(self, request: Request[Any, Any, State], task_id: TaskId) -> ASGIApp:
        """Complete the task with an outcome (`resolved` by default) and optional notes; the
        body may be left out. A task already completed, or deferred, cannot be completed
        (400)."""
        caller = caller_of(request)
        command = await decode_body(request, CompleteTask, optional=True)
        act = _on_task(request, caller, task_id, command)
        return await _respond(request, caller, act, _task_result(wire.COMPLETED))

    @post(
        "/{task_id:str}/snooze",
        operation_id="snoozeTask",
        operation_class=documented(IF_MATCH, IDEMPOTENCY_KEY, tagged=True),
        summary="Snooze a task",
        status_code=200,
        responses={
            **examples.SNOOZED,
            **TASK_COMMAND_ERRORS,
            **refused_by_rules(
                examples.COMPLETED_NOT_SNOOZED,
                examples.NOT_IN_FUTURE,
                examples.REMINDER_OUT_OF_CALENDAR,
            ),
        },
        dependencies=request_body(SnoozeTask, examples.SNOOZE_EXAMPLE, "The reference's snooze"),
    )
    async def snooze(self, request: Request[Any, Any, State], task_id: TaskId) -> ASGIApp:
        """Postpone the task to `newDueDate`, which must be in the future, and count the
        snooze; with `adjustReminders` (the default) its reminders move by as much, and not
        out of the calendar. A completed task cannot be snoozed (400)."""
        caller = caller_of(request)
        command = await decode_body(request, SnoozeTask)

        def render(result: service.CommandResult) -> SnoozeResult:
            task = _task_of(result)
            return SnoozeResult(True, wire.SNOOZED, task.snooze_count, task)

        return await _respond(request, caller, _on_task(request, caller, task_id, command), render)

    @post(
        "/{task_id:str}/reassign",
        operation_id="reassignTask",
        operation_class=documented(IF_MATCH, IDEMPOTENCY_KEY, tagged=True),
        summary="Reassign a task to another owner",
        status_code=200,
        responses={**examples.REASSIGNED, **TASK_COMMAND_ERRORS},
        dependencies=request_body(
            ReassignTask, examples.REASSIGN_EXAMPLE, "The reference's reassignment"
        ),
    )
    async def reassign(self, request: Request[Any, Any, State], task_id: TaskId) -> ASGIApp:
        """Give the task to another agent, who claims it."""
        caller = caller_of(request)
        command = await decode_body(request, ReassignTask)
        act = _on_task(request, caller, task_id, command)
        return await _respond(request, caller, act, _task_result(wire.REASSIGNED))

    @delete(
        "/{task_id:str}",
        operation_id="deleteTask",
        operation_class=documented(IF_MATCH, IDEMPOTENCY_KEY),
        summary="Delete a task",
        status_code=200,
        responses={**examples.DELETED, **TASK_COMMAND_ERRORS},
    )
    async def remove(self, request: Request[Any, Any, State], task_id: TaskId) -> ASGIApp:
        """Delete the task: it leaves every list and read (404 from now on), while its
        history stays readable at /v1/tasks/{task_id}/events."""
        caller = caller_of(request)
        act = _on_task(request, caller, task_id, DeleteTask())
        deleted = Confirmation(True, wire.DELETED)
        return await _respond(request, caller, act, lambda _: deleted)


async def _page(
    request: Request[Any, Any, State], task_filter: queries.TaskFilter, order: queries.PageRequest
) -> TaskPage:
    async with tenant_reads(request, task_filter.tenant_id) as conn:
        tasks, total = await queries.list_tasks(conn, task_filter, order)
    return task_page(tasks, total, order.page, order.limit)
