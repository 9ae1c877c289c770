"""The ASGI application: every route, error handler and resource wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State

from app import metrics
from app.background import ENGINE_CONNECTIONS, running_in_background
from app.cells import cell_addresses, open_cells
from app.http.bench_routes import constant_task
from app.http.errors import EXCEPTION_HANDLERS
from app.http.events import EventController
from app.http.exchange import Exchange
from app.http.health import live, ready
from app.http.metrics import scrape
from app.http.openapi import openapi_config
from app.http.refusals import REFUSAL_HANDLERS
from app.http.tasks import TaskController
from app.logs import logging_config
from app.rate_limits import open_rate_limiter
from app.relay import stream_address
from app.revocations import hearing_revocations
from app.settings import Settings, load_settings
from app.warm_up import warm_up

# The connections of the work beside the requests, apart from the requests' pool: the
# runners' and the sweep's, the key revocations' listener, and a readiness check or a scrape.
BACKGROUND_CONNECTIONS = ENGINE_CONNECTIONS + 3


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    addresses = cell_addresses(settings.cells, settings.database_url)

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        try:
            async with (
                open_cells(
                    addresses,
                    pool_size=settings.db_pool_size,
                    engine_pool_size=BACKGROUND_CONNECTIONS,
                    statement_timeout_ms=settings.statement_timeout_ms,
                ) as cells,
                contextlib.AsyncExitStack() as watched,
            ):
                for cell in cells:
                    await watched.enter_async_context(metrics.pool_watched(cell.db.pool))
                await asyncio.gather(
                    *(warm_up(cell.db.pool, settings.db_pool_size) for cell in cells)
                )
                # The home cell's: it holds the directory, the keys and the rate limits.
                app.state.cells, app.state.db, app.state.engine = (
                    cells,
                    cells.home.db,
                    cells.home.engine,
                )
                async with hearing_revocations(cells.home.engine):
                    yield
        finally:
            metrics.process_exiting()

    @asynccontextmanager
    async def rate_limits(app: Litestar) -> AsyncIterator[None]:
        async with open_rate_limiter(settings.redis_url, app.state.db.pool) as rate_limiter:
            app.state.rate_limiter = rate_limiter
            yield

    @asynccontextmanager
    async def background(app: Litestar) -> AsyncIterator[None]:
        if not settings.run_projections:
            yield
            return
        async with running_in_background(
            app.state.cells, settings.shutdown_timeout_seconds, stream_address(settings)
        ):
            yield

    @asynccontextmanager
    async def started(app: Litestar) -> AsyncIterator[None]:
        # What is alive once the app has started (its routes, schemas, modules: some 130,000
        # objects) lives as long as the process: out of the collector's sight, a full
        # collection takes microseconds rather than tens of milliseconds in a request's way.
        gc.freeze()
        yield

    app = Litestar(
        route_handlers=[
            TaskController,
            EventController,
            live,
            ready,
            scrape,
            *([constant_task] if settings.bench_routes else []),
        ],
        lifespan=[database, rate_limits, background, started],
        exception_handlers={**EXCEPTION_HANDLERS, **REFUSAL_HANDLERS},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        state=State({"settings": settings}),
        logging_config=logging_config(settings.log_level),
        debug=False,
    )
    # Outside every route: Litestar runs route middleware only where a route matched, and the
    # 404s and 405s the router answers itself need their id and their access line too.
    app.asgi_handler = Exchange(app.asgi_handler, settings.request_timeout_seconds)
    return app
