"""Tenants placed on cells through `tasks-api`, and the API served over the cells."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from click.testing import CliRunner, Result

from app.cells import CellAddress
from app.cli import main
from app.http.app import create_app
from app.settings import Settings
from store.pool import plain_url
from tests.api.test_rate_limits import client_of, running_lifespan
from tests.conftest import cells_setting

Cells = tuple[CellAddress, ...]


@dataclass(frozen=True)
class PlacedTenant:
    tenant_id: str
    api_key: str
    cell: str

    @property
    def headers(self) -> dict[str, str]:
        return {"x-tenant-api-key": self.api_key}


def cli(cells: Cells, *args: str) -> Result:
    """`tasks-api ARGS` with TASKS_CELLS naming the cells."""
    env = {"TASKS_CELLS": cells_setting(cells), "DATABASE_URL": None}
    return CliRunner().invoke(main, list(args), env=env)


async def cli_in_thread(cells: Cells, *args: str) -> Result:
    """The command from inside an event loop: it runs one of its own."""
    return await asyncio.to_thread(cli, cells, *args)


async def placed_tenant(cells: Cells, cell: str | None = None, **options: str) -> PlacedTenant:
    """A tenant made by `tenant create --json`, on `cell` when given."""
    args = ["tenant", "create", "placed", "--json", *(("--cell", cell) if cell else ())]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    result = await cli_in_thread(cells, *args)
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    return PlacedTenant(created["tenantId"], created["apiKey"], created["cell"])


@asynccontextmanager
async def served(cells: Cells, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API served over the cells, its requests overlapping in the app."""
    settings = {"run_projections": False, **settings}
    app = create_app(Settings(cells=cells_setting(cells), **settings))
    async with running_lifespan(app), client_of(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def events_by_cell(cells: Cells, tenant_id: str) -> dict[str, int]:
    """How many of the tenant's events each cell's log holds."""
    counts = {}
    for cell in cells:
        rows = await fetch(cell.url, "SELECT count(*) FROM events WHERE tenant_id = $1", tenant_id)
        counts[cell.name] = rows[0][0]
    return counts
