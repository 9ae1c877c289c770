"""The service's Prometheus metrics, and the text a scrape of /metrics reads.

Under `tasks-api serve` each worker process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR and a scrape, whichever worker answers it, adds up every worker's
(prometheus-client's multiprocess mode). The projections' checkpoints and lag are read from the
database by the process answering the scrape, so they are counted once, not once per worker.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
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
    "Database connections checked out of the pools that serve requests, summed over the live "
    "processes.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "tasks_db_pool_size",
    "Database connections the pools that serve requests may hold, summed over the live processes.",
    multiprocess_mode="livesum",
)


# Each (method, route, status)'s series of the two request metrics: labels() costs a request
# more than counting does.
_request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def count_request(method: str, route: str, status: int, seconds: float) -> None:
    """A request answered: counted, and its duration observed."""
    series = _request_series.get((method, route, status))
    if series is None:
        series = _request_series[(method, route, status)] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_REQUEST_DURATION.labels(method, route),
        )
    series[0].inc()
    series[1].observe(seconds)


# How often each process writes down its pools' connections in use: a scrape reads its own
# process's at once, the other processes' as they last wrote them.
POOL_SAMPLE_SECONDS = 1.0


@asynccontextmanager
async def pool_watched(pool: asyncpg.Pool) -> AsyncIterator[None]:
    """Count the requests' pool in the pool gauges while the block runs. The connections in
    use are sampled, not counted at each checkout: a request would pay for two writes to the
    gauge's file."""
    size = pool.get_max_size()
    DB_POOL_SIZE.inc(size)
    watched = (asyncio.get_running_loop(), pool)
    _watched.append(watched)
    sampling = asyncio.create_task(_sample_every(POOL_SAMPLE_SECONDS))
    try:
        yield
    finally:
        sampling.cancel()
        _watched.remove(watched)
        sample_pools()
        DB_POOL_SIZE.dec(size)


# Each pool with the event loop it serves. A served process has one loop; a process that
# runs several apps on loops of their own (a test's) counts the asking loop's pools.
_watched: list[tuple[asyncio.AbstractEventLoop, asyncpg.Pool]] = []


def sample_pools() -> None:
    """Write down the connections the running loop's pools have checked out."""
    loop = asyncio.get_running_loop()
    DB_POOL_IN_USE.set(
        sum(pool.get_size() - pool.get_idle_size() for on, pool in _watched if on is loop)
    )


async def _sample_every(seconds: float) -> None:
    while True:
        sample_pools()
        await asyncio.sleep(seconds)


def process_exiting() -> None:
    """Drop this process's share of the live gauges, as a worker that has ended has none."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())


# Each cell's projection statuses, by cell name; None as the name when there is one cell,
# whose figures carry no `cell` label.
CellStatuses = list[tuple[str | None, list[ProjectionStatus]]]


def exposition(statuses: CellStatuses | None, accept: str) -> tuple[bytes, str]:
    """Every metric, and the content type: the Prometheus text format, or OpenMetrics when the
    Accept header asks for it. The projections' figures of the cells whose status was read."""
    sample_pools()
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
    this scrape; with several cells, each cell's, labelled with it."""

    def __init__(self, statuses: CellStatuses) -> None:
        self.statuses = statuses
        self.labels = (
            ["projection"] if statuses and statuses[0][0] is None else ["projection", "cell"]
        )

    def collect(self) -> Iterator[Metric]:
        position = GaugeMetricFamily(
            "tasks_projection_checkpoint_position",
            "Global position of the last event the projection applied.",
            labels=self.labels,
        )
        behind = GaugeMetricFamily(
            "tasks_projection_events_behind",
            "Committed events the projection has not applied yet.",
            labels=self.labels,
        )
        lag = GaugeMetricFamily(
            "tasks_projection_lag_seconds",
            "How long the oldest event the projection has not applied has waited; 0 when "
            "caught up.",
            labels=self.labels,
        )
        for cell, statuses in self.statuses:
            for status in statuses:
                values = [status.name] if cell is None else [status.name, cell]
                position.add_metric(values, status.checkpoint.position)
                behind.add_metric(values, status.events_behind)
                lag.add_metric(values, status.lag_ms / 1000)
        yield from (position, behind, lag)
