"""The cells' migrations as `serve` starts: a cell that does not answer then is migrated as
soon as it does, and the service starts without it.

A cell down when a process starts costs only its own tenants, as one that goes down under a
process already serving does: they are answered 503 until it answers again. It may answer at
an older schema (the service was upgraded while it was down): it is migrated within
RETRY_SECONDS of answering."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence

from app.cells import REACHABLE, CellAddress, reachability
from app.database import DATABASE_ERRORS, first_line
from app.migrate import upgrade_to_head

log = logging.getLogger("tasks_api.cells")

RETRY_SECONDS = 5.0


def migrate_those_that_answer(cells: Sequence[CellAddress]) -> dict[CellAddress, str]:
    """Each of `cells` that answers, migrated (its errors raised); those that do not, with
    why not."""
    answering, silent = _by_answer(cells)
    for cell in answering:
        upgrade_to_head(cell.url)
    return silent


def _by_answer(cells: Sequence[CellAddress]) -> tuple[list[CellAddress], dict[CellAddress, str]]:
    """The cells that answer, and those that do not with why not."""
    answers = zip(cells, asyncio.run(reachability(cells)), strict=True)
    silent = {cell: answer for cell, answer in answers if answer != REACHABLE}
    return [cell for cell in cells if cell not in silent], silent


@contextlib.contextmanager
def migrating_when_they_answer(cells: Sequence[CellAddress]) -> Iterator[None]:
    """For as long as the block runs, each of `cells` is tried every RETRY_SECONDS and
    migrated once it answers."""
    if not cells:
        yield
        return
    leaving = threading.Event()
    trying = threading.Thread(
        target=_migrate_when_they_answer,
        args=(list(cells), leaving),
        name="cell-migrations",
        # A migration half done when the process exits rolls back whole.
        daemon=True,
    )
    trying.start()
    try:
        yield
    finally:
        leaving.set()
        trying.join(RETRY_SECONDS)


def _migrate_when_they_answer(waiting: list[CellAddress], leaving: threading.Event) -> None:
    while waiting and not leaving.wait(RETRY_SECONDS):
        answering, _ = _by_answer(waiting)
        for cell in answering:
            try:
                upgrade_to_head(cell.url)
            except DATABASE_ERRORS as error:
                log.error(
                    "cell %s answers but its migrations failed (%s); trying again in %g s",
                    cell.name,
                    first_line(error),
                    RETRY_SECONDS,
                )
                continue
            log.warning("cell %s answers again, at the newest migration", cell.name)
            waiting.remove(cell)
