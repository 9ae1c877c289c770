"""The GET ceiling: a bare Litestar app with one route answering the constant task, with no
middleware, no dependency injection, no lifespan and no logging configuration, served by
uvicorn as `tasks-api serve` serves the API (same worker count, access log off). What our
stack adds to it shows as the constant route through the real app (`TASKS_BENCH_ROUTES=1`);
what a read adds, as GET.

usage: python -m uvicorn bench.bare_app:app --workers N --no-access-log"""

from __future__ import annotations

from litestar import Litestar, Response, get

from app.http.bench_routes import CONSTANT_TASK
from domain.task import Task

PATH = "/bench/constant-task"


@get(PATH, sync_to_thread=False)
def constant_task() -> Response[Task]:
    return Response(CONSTANT_TASK, headers={"ETag": '"1"'})


# Litestar configures logging when an app is made, and its default turns the root logger's
# INFO lines on in every process that imports this module: the bench's own, whose in-process
# commands (bench/lag.py) would print an audit line each.
app = Litestar(
    route_handlers=[constant_task], openapi_config=None, logging_config=None, debug=False
)
