"""GET /health/live and /health/ready, for load balancers and orchestrators: no API key, no
rate limit, nothing in the audit log, and left out of the API's schema.

Live says the process answers. Ready says it can serve: the database answers, its schema is at
the newest migration, the asynchronous projections are not further behind the log than
TASKS_READY_MAX_LAG_MS, and Redis answers when the rate limits are counted there. Ready reads
the first three on one connection, with a handful of queries, on every cell at once, while it
pings Redis."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import clock
from app.cells import Cells
from app.http.errors import database_unavailable
from app.migrate import applied_revisions, head_revisions
from app.rate_limits import RateLimiter
from projections.status import ProjectionStatus, read_projection_status

# Well within the few seconds a load balancer waits for a health check.
READY_TIMEOUT_SECONDS = 2.0

log = logging.getLogger("tasks_api.health")


class Check(msgspec.Struct):
    ok: bool
    detail: str


class CellHealth(msgspec.Struct):
    ok: bool
    # By name: database, migrations, projections.
    checks: dict[str, Check]


class Health(msgspec.Struct, omit_defaults=True):
    status: Literal["ok", "failing"]
    # By name: database, migrations, projections (the home cell's when there are several), and
    # rateLimits when they are counted in Redis.
    checks: dict[str, Check] | None = None
    # With several cells, each one's, the home cell's too, by name.
    cells: dict[str, CellHealth] | None = None


@get("/health/live", include_in_schema=False, sync_to_thread=False)
def live() -> Health:
    return Health("ok")


@get("/health/ready", include_in_schema=False)
async def ready(request: Request[Any, Any, State]) -> Response[Health]:
    """200 when every check of the home cell passes; 503 with the same body, naming the
    failing checks, otherwise. With several cells each is reported under `cells`; one failing
    other than the home costs only its own tenants, so the process stays ready."""
    max_lag_ms: int = request.app.state.settings.ready_max_lag_ms
    cells: Cells = request.app.state.cells
    rate_limiter: RateLimiter = request.app.state.rate_limiter
    store, *each = await asyncio.gather(
        rate_limiter.store_answers(),
        *(readiness_checks(cell.engine, max_lag_ms) for cell in cells),
    )
    checks = each[0]
    if store is not None:
        # Every request is counted there: without it each one is refused (503).
        checks = {**checks, "rateLimits": _rate_limit_store_check(store)}
    passing = all(check.ok for check in checks.values())
    by_cell = None
    if len(cells) > 1:
        by_cell = {
            cell.name: CellHealth(all(check.ok for check in checked.values()), checked)
            for cell, checked in zip(cells, each, strict=True)
        }
    return Response(
        Health("ok" if passing else "failing", checks, by_cell),
        status_code=200 if passing else 503,
    )


async def readiness_checks(engine: AsyncEngine, max_lag_ms: int) -> dict[str, Check]:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), engine.connect() as conn:
            migrations = _migrations_check(await applied_revisions(conn))
            # An older schema may lack the tables the projections' status reads.
            statuses = await read_projection_status(conn, clock.now()) if migrations.ok else None
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        log.warning("readiness: the database check failed: %r", error)
        not_checked = Check(False, "not checked: the database check failed")
        return {
            "database": Check(False, _database_failure(error)),
            "migrations": not_checked,
            "projections": not_checked,
        }
    return {
        "database": Check(True, "answers"),
        "migrations": migrations,
        "projections": Check(False, "not checked: the schema is not at the newest migration")
        if statuses is None
        else _lag_check(statuses, max_lag_ms),
    }


@functools.cache
def _heads() -> frozenset[str]:
    return head_revisions()


def _migrations_check(applied: frozenset[str]) -> Check:
    heads = ", ".join(sorted(_heads()))
    if applied == _heads():
        return Check(True, f"at the newest migration, {heads}")
    return Check(False, f"at {', '.join(sorted(applied)) or 'no migration'}; the newest is {heads}")


def _lag_check(statuses: list[ProjectionStatus], max_lag_ms: int) -> Check:
    if not statuses:
        return Check(True, "no asynchronous projection")
    furthest = max(statuses, key=lambda status: status.lag_ms)
    detail = f"{furthest.name} lags most, by {furthest.lag_ms} ms; the bound is {max_lag_ms} ms"
    return Check(furthest.lag_ms <= max_lag_ms, detail)


def _rate_limit_store_check(answers: bool) -> Check:
    if answers:
        return Check(True, "Redis answers")
    return Check(False, "Redis does not answer: requests are refused (503) until it does")


def _database_failure(error: Exception) -> str:
    # The probe is unauthenticated: name the kind of failure, leave the particulars to the log.
    if isinstance(error, TimeoutError):
        return f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    if database_unavailable(error):
        return "unreachable"
    return "a query failed"
