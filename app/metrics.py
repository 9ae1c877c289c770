"""The service's Prometheus metrics, and the text a scrape of /metrics reads.

Under `tasks-api serve` each worker process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR and a scrape, whichever worker answers it, adds up every worker's
(prometheus-client's multiprocess mode). The projections' checkpoints and lag are read from the
database by the process answering the scrape, so they are counted once, not once per worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.status import ProjectionStatus

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# A request has no route when the router found none for its path or method (404, 405).
UNMATCHED_ROUTE = "unmatched"

# As prometheus-client decides it, once, when first imported.
MULTIPROCESS = MULTIPROCESS_DIR in os.environ

# The `_created` timestamps would double the series and are absent in multiprocess mode.
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "tasks_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "tasks_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_APPENDED = Counter(
    "tasks_events_appended_total",
    "Events appended to the log and committed, by event type.",
    ["type"],
)
VERSION_CONFLICTS = Counter(
    "tasks_version_conflicts_total",
    "Commands that lost a race on a task's version to a concurrent writer.",
)
COMMAND_RETRIES = Counter(
    "tasks_command_retries_total",
    "Commands run again after a version conflict (the last conflict is answered 409 instead).",
)
IDEMPOTENT_REPLAYS = Counter(
    "tasks_idempotent_replays_total",
    "Requests answered with the recorded response of an earlier one with the same "
    "Idempotency-Key, by route template.",
    ["route"],
)
RATE_LIMIT_REJECTIONS = Counter(
    "tasks_rate_limit_rejections_total",
    "Requests refused 429 over a rate limit, by policy (tenant, failed-authentication).",
    ["policy"],
)
DB_POOL_IN_USE = Gauge(
    "tasks_db_pool_connections_in_use",
    "Database connections checked out of the pools, summed over the live processes.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "tasks_db_pool_size",
    "Database connections the pools may hold, summed over the live processes.",
    multiprocess_mode="livesum",
)


@contextmanager
def pool_watched(engine: AsyncEngine) -> Iterator[None]:
    """Count the engine's pool in the pool gauges while the block runs."""
    pool = engine.sync_engine.pool
    size: int = getattr(pool, "size", lambda: 0)()
    event.listen(pool, "checkout", _checked_out)
    event.listen(pool, "checkin", _checked_in)
    DB_POOL_SIZE.inc(size)
    try:
        yield
    finally:
        DB_POOL_SIZE.dec(size)
        event.remove(pool, "checkout", _checked_out)
        event.remove(pool, "checkin", _checked_in)


def _checked_out(*_: Any) -> None:
    DB_POOL_IN_USE.inc()


def _checked_in(*_: Any) -> None:
    DB_POOL_IN_USE.dec()


def process_exiting() -> None:
    """Drop this process's share of the live gauges, as a worker that has ended has none."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())


def exposition(statuses: list[ProjectionStatus] | None, accept: str) -> tuple[bytes, str]:
    """Every metric, and the content type: the Prometheus text format, or OpenMetrics when the
    Accept header asks for it. The projections' figures only when their status was read."""
    registry = CollectorRegistry()
    registry.register(_samples_of_every_process())
    if statuses is not None:
        registry.register(ProjectionFigures(statuses))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


def _samples_of_every_process() -> Collector:
    if not MULTIPROCESS:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


class ProjectionFigures(Collector):
    """Each asynchronous projection's checkpoint, events behind the log and lag, as read for
    this scrape."""

    def __init__(self, statuses: list[ProjectionStatus]) -> None:
        self.statuses = statuses

    def collect(self) -> Iterator[Metric]:
        position = GaugeMetricFamily(
            "tasks_projection_checkpoint_position",
            "Global position of the last event the projection applied.",
            labels=["projection"],
        )
        behind = GaugeMetricFamily(
            "tasks_projection_events_behind",
            "Committed events the projection has not applied yet.",
            labels=["projection"],
        )
        lag = GaugeMetricFamily(
            "tasks_projection_lag_seconds",
            "How long the oldest event the projection has not applied has waited; 0 when "
            "caught up.",
            labels=["projection"],
        )
        for status in self.statuses:
            position.add_metric([status.name], status.checkpoint.position)
            behind.add_metric([status.name], status.events_behind)
            lag.add_metric([status.name], status.lag_ms / 1000)
        yield from (position, behind, lag)
