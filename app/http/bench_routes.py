"""Routes for the benchmark only (TASKS_BENCH_ROUTES=1), never in the served schema: a
constant task through the same server, framework and encoder, so the benchmark can set the
API's reads beside what this stack serves when no database is involved."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Response, get

from domain.task import Task

CONSTANT_TASK = Task(
    id="000000000000000000000000",
    title="A constant task",
    owner_id="agent_000",
    owner_name="Agent 0",
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    updated_at=datetime(2026, 1, 1, tzinfo=UTC),
)


@get("/bench/constant-task", include_in_schema=False, sync_to_thread=False)
def constant_task() -> Response[Task]:
    return Response(CONSTANT_TASK, headers={"ETag": '"1"'})
