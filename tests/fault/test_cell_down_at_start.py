"""`tasks-api serve` started while a cell's PostgreSQL is down, the service upgraded since
the cell last ran: it serves the other cells' tenants from the start, answers the cell's
tenants 503 with Retry-After until the cell answers, then migrates the cell and serves them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from alembic import command

from app.cell_migrations import RETRY_SECONDS
from app.cells import CellAddress
from app.database import engine_of
from app.embedded import EmbeddedPostgres
from app.migrate import alembic_config, applied_revisions, head_revisions
from tests.cells.support import cli_in_thread, placed_tenant
from tests.conftest import cells_setting
from tests.fault.served_api import ServedApi

# Time for the cell's server to start and be migrated, beyond the retries' interval.
MIGRATED_WITHIN_SECONDS = 3 * RETRY_SECONDS + 10


async def revisions(url: str) -> frozenset[str]:
    async with engine_of(url) as engine, engine.connect() as conn:
        return await applied_revisions(conn)


async def migrated_within(url: str, seconds: float) -> frozenset[str]:
    deadline = time.monotonic() + seconds
    while True:
        applied = await revisions(url)
        if applied == head_revisions() or time.monotonic() >= deadline:
            return applied
        await asyncio.sleep(0.5)


async def test_serve_starts_without_a_cell_that_is_down_and_migrates_it_once_it_answers(
    fresh_database: str, killable_cell: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    postgres, cell_url = killable_cell
    cells = (CellAddress("a", fresh_database), CellAddress("b", cell_url))
    assert (await cli_in_thread(cells, "migrate")).exit_code == 0
    home_tenant = await placed_tenant(cells, "a")
    cell_tenant = await placed_tenant(cells, "b")
    await asyncio.to_thread(command.downgrade, alembic_config(cell_url), "-1")
    behind = await revisions(cell_url)
    await asyncio.to_thread(postgres.stop)

    log = tmp_path / "server.log"
    with ServedApi(fresh_database, log, TASKS_CELLS=cells_setting(cells)) as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            created = await client.post(
                "/v1/tasks", json={"title": "Served"}, headers=home_tenant.headers
            )
            refused = await client.get("/v1/tasks", headers=cell_tenant.headers)
            ready = await client.get("/health/ready")
            await asyncio.to_thread(postgres.start)
            applied = await migrated_within(cell_url, MIGRATED_WITHIN_SECONDS)
            served = await client.post(
                "/v1/tasks", json={"title": "Served"}, headers=cell_tenant.headers
            )
            found = await client.get("/v1/tasks?search=serv", headers=cell_tenant.headers)

    assert behind != head_revisions()
    assert created.status_code == 201, created.text
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "ServiceUnavailableError"
    assert refused.headers["retry-after"]
    assert ready.status_code == 200, ready.text
    assert "Cell b does not answer" in log.read_text()
    assert applied == head_revisions()
    assert served.status_code == 201, served.text
    assert found.json()["total"] == 1
