"""A cell's PostgreSQL killed with SIGKILL, or stopped with SIGSTOP, while the API serves
tenants of two cells: the cell's tenants are answered 503 with Retry-After within the request
timeout, the other cell's tenants see no error at all; once the cell is back its tenants are
served again, and neither cell's log has lost or half-kept a command it acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from app.cells import CellAddress
from app.database import engine_of
from app.embedded import EmbeddedPostgres
from tests.cells.support import cli_in_thread, placed_tenant
from tests.conftest import cells_setting
from tests.fault.event_log import assert_log_keeps_what_was_answered
from tests.fault.served_api import ServedApi
from tests.fault.write_load import WriteLoad

WORKERS = 4
REQUEST_TIMEOUT_SECONDS = 3
UP_SECONDS = 1.0
DOWN_SECONDS = 2.0
RECOVERY_SECONDS = 5
UNTHROTTLED = {"tier": "enterprise", "rate_limit": str(10**9)}


def server_processes(server: EmbeddedPostgres) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    children = [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and _parent_of(int(entry)) == postmaster
    ]
    return [postmaster, *children]


def signal_server(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def kill_server(server: EmbeddedPostgres) -> None:
    """SIGKILL to the postmaster and every process it started: no shutdown of any kind."""
    pids = server_processes(server)
    signal_server(pids, signal.SIGKILL)
    while any(_alive(pid) for pid in pids):
        time.sleep(0.05)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_a_killed_cell_costs_only_its_own_tenants(
    fresh_database: str, killable_cell: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    postgres, cell_url = killable_cell
    cells = (CellAddress("a", fresh_database), CellAddress("b", cell_url))
    environment = {
        "TASKS_CELLS": cells_setting(cells),
        "TASKS_REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
    }
    assert (await cli_in_thread(cells, "migrate")).exit_code == 0
    home_tenant = await placed_tenant(cells, "a", **UNTHROTTLED)
    cell_tenant = await placed_tenant(cells, "b", **UNTHROTTLED)
    with ServedApi(fresh_database, tmp_path / "server.log", **environment) as api:
        home_load = WriteLoad(api.url, home_tenant.api_key)
        cell_load = WriteLoad(api.url, cell_tenant.api_key)
        stop = asyncio.Event()
        writing = [
            asyncio.create_task(load.run(WORKERS, stop, seconds=40))
            for load in (home_load, cell_load)
        ]
        await asyncio.sleep(UP_SECONDS)
        down_at = time.monotonic()
        await asyncio.to_thread(kill_server, postgres)
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(postgres.stop)
        await asyncio.to_thread(postgres.start)
        back_at = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS + 1)
        stop.set()
        await asyncio.gather(*writing)

    assert home_load.sent and all(sent.acknowledged for sent in home_load.sent), {
        sent.status for sent in home_load.sent
    }
    during = [sent for sent in home_load.sent if down_at <= sent.sent_at <= back_at]
    assert during, "the home cell's tenant sent nothing while the other cell was down"
    assert {sent.status for sent in cell_load.sent} <= {200, 201, 503}
    refused = [sent for sent in cell_load.sent if sent.status == 503]
    assert any(down_at <= sent.sent_at <= back_at for sent in refused), "the kill went unseen"
    assert all(
        sent.retry_after and sent.error_code == "ServiceUnavailableError" for sent in refused
    )
    assert all(sent.answered_at - sent.sent_at <= REQUEST_TIMEOUT_SECONDS + 1 for sent in refused)
    late = [sent for sent in cell_load.sent if sent.sent_at >= back_at + RECOVERY_SECONDS]
    assert late and all(sent.acknowledged for sent in late)
    for cell, load in ((cells[0], home_load), (cells[1], cell_load)):
        async with engine_of(cell.url) as engine:
            await assert_log_keeps_what_was_answered(engine, load.sent)


async def test_a_stuck_cell_costs_only_its_own_tenants(
    fresh_database: str, killable_cell: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    """SIGSTOP rather than SIGKILL: the cell's server neither answers nor refuses."""
    postgres, cell_url = killable_cell
    cells = (CellAddress("a", fresh_database), CellAddress("b", cell_url))
    environment = {
        "TASKS_CELLS": cells_setting(cells),
        "TASKS_REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
    }
    assert (await cli_in_thread(cells, "migrate")).exit_code == 0
    home_tenant = await placed_tenant(cells, "a", **UNTHROTTLED)
    cell_tenant = await placed_tenant(cells, "b", **UNTHROTTLED)
    with ServedApi(fresh_database, tmp_path / "server.log", **environment) as api:
        home_load = WriteLoad(api.url, home_tenant.api_key)
        cell_load = WriteLoad(api.url, cell_tenant.api_key)
        stop = asyncio.Event()
        writing = [
            asyncio.create_task(load.run(WORKERS, stop, seconds=40))
            for load in (home_load, cell_load)
        ]
        await asyncio.sleep(UP_SECONDS)
        pids = await asyncio.to_thread(server_processes, postgres)
        stuck_at = time.monotonic()
        signal_server(pids, signal.SIGSTOP)
        try:
            await asyncio.sleep(REQUEST_TIMEOUT_SECONDS + DOWN_SECONDS)
        finally:
            signal_server(pids, signal.SIGCONT)
        back_at = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS)
        stop.set()
        await asyncio.gather(*writing)

    assert home_load.sent and all(sent.acknowledged for sent in home_load.sent), sorted(
        {(sent.status, sent.error_code) for sent in home_load.sent}, key=str
    )
    assert any(stuck_at <= sent.sent_at <= back_at for sent in home_load.sent)
    refused = [sent for sent in cell_load.sent if sent.status == 503]
    # Refused while the server was stopped: the requests in flight when it stopped are cut at
    # the request timeout, and those sent after them may wait out the rest of the stop.
    assert any(stuck_at <= sent.answered_at <= back_at for sent in refused), "the stop went unseen"
    assert {sent.status for sent in cell_load.sent} <= {200, 201, 503}
    assert all(sent.answered_at - sent.sent_at <= REQUEST_TIMEOUT_SECONDS + 1 for sent in refused)
    late = [sent for sent in cell_load.sent if sent.sent_at >= back_at + RECOVERY_SECONDS - 2]
    assert late and all(sent.acknowledged for sent in late), [
        (round(sent.sent_at - back_at, 2), sent.status, sent.error_code)
        for sent in late
        if not sent.acknowledged
    ]
    for cell, load in ((cells[0], home_load), (cells[1], cell_load)):
        async with engine_of(cell.url) as engine:
            await assert_log_keeps_what_was_answered(engine, load.sent)
