"""The work beside the API (app/background.py) in a process of its own: `tasks-api projections
run`, and the one `tasks-api serve` starts beside its workers.

Beside the workers, a runner applying a batch never holds up a request on a worker's event
loop: at one connection it cost each command about 1 ms of that worker's CPU and most of
the commands' p99."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Iterator
from multiprocessing.process import BaseProcess

import uvloop

from app import metrics
from app.background import ENGINE_CONNECTIONS, run_on_every_cell
from app.cells import CellAddress, cell_addresses, open_cells
from app.logs import logging_config
from app.relay import stream_address
from app.settings import Settings, load_settings

log = logging.getLogger("tasks_api.background")

# How long `serve` waits before starting again a process that ended on its own.
RESTART_SECONDS = 1.0
# Beyond the runners' own bound for finishing a batch: the process's start and exit.
EXIT_MARGIN_SECONDS = 5.0


def run(
    settings: Settings, cells: tuple[CellAddress, ...], *, parent: BaseProcess | None = None
) -> None:
    """Every cell's runners, relay and sweep until SIGTERM or SIGINT, or until the process
    `parent` is gone (killed, it cannot say so: one left running would go on unsupervised);
    each runner stops at a batch boundary."""
    # The same JSON lines as the workers': the runners' state and the audit lines of the
    # events the sweep appends.
    logging_config(settings.log_level).configure()

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if parent is not None:
            # Its end of a pipe: readable, at its end, once the parent has exited.
            loop.add_reader(parent.sentinel, _parent_gone, parent, stop)
        async with open_cells(
            cells,
            pool_size=1,
            engine_pool_size=ENGINE_CONNECTIONS,
            statement_timeout_ms=settings.statement_timeout_ms,
        ) as opened:
            await run_on_every_cell(opened, stop, stream_address(settings))

    try:
        # The workers' event loop: the runners' many small statements cost the process less
        # of its CPU on it than on asyncio's own.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(work())
    finally:
        metrics.process_exiting()


def _parent_gone(parent: BaseProcess, stop: asyncio.Event) -> None:
    asyncio.get_running_loop().remove_reader(parent.sentinel)
    log.warning("the serving process %s is gone; stopping", parent.pid)
    stop.set()


def _serve_beside() -> None:
    """The process's entry: it builds its settings from the environment, as a worker does."""
    settings = load_settings()
    cells = cell_addresses(settings.cells, settings.database_url)
    run(settings, cells, parent=multiprocessing.parent_process())


@contextlib.contextmanager
def beside_the_workers(stop_within: float) -> Iterator[None]:
    """The background work in a process of its own for as long as the block runs, started
    again should it die (killed, or failing). One that was told to stop (Ctrl-C reaches the
    whole process group) exits 0 and is left stopped. On leaving, it is told to stop and
    given `stop_within` seconds to finish its batches, then killed."""
    context = multiprocessing.get_context("spawn")
    leaving = threading.Event()
    # Held while `current` is replaced, so that leaving stops the newest process.
    replacing = threading.Lock()

    def started() -> BaseProcess:
        process = context.Process(target=_serve_beside, name="tasks-api-background")
        process.start()
        return process

    current = started()

    def supervise() -> None:
        nonlocal current
        while True:
            current.join()
            if current.exitcode == 0 or leaving.wait(RESTART_SECONDS):
                return
            with replacing:
                if leaving.is_set():
                    return
                log.error(
                    "the background process ended (exit code %s); starting it again",
                    current.exitcode,
                )
                current = started()

    supervisor = threading.Thread(target=supervise, name="background-supervisor", daemon=True)
    supervisor.start()
    try:
        yield
    finally:
        with replacing:
            leaving.set()
            last = current
        # SIGTERM, unless it has ended: its runners stop at a batch boundary. Only the
        # supervisor waits for it: of two threads reaping one process, the one that loses the
        # race finds no child and takes the process for alive.
        last.terminate()
        supervisor.join(stop_within + EXIT_MARGIN_SECONDS)
        if supervisor.is_alive():
            log.warning("the background process did not stop in time; killing it")
            last.kill()
            supervisor.join()
