"""The service over three cells: the relay publishing two cells' events to NATS JetStream at a
burst (bench/relay.py); then the hot path, GET by id and POST at saturation, for a tenant on
a cell that is not the home, served by `tasks-api serve` with TASKS_CELLS naming the three,
each figure measured back to back with the same for a tenant of the home served by a
`tasks-api serve` of that cell alone (TASKS_CELLS unset), so that the two are weighed in the
same minute: this machine's speed moves between runs by a third and more.

Each cell is a PostgreSQL server of its own, the embedded server in a temporary folder, with
its own transaction ids, as cells are; all three alike, and none shared with the tests other
people run on this machine, so that the ratio weighs the cells and not the servers. The relay
goes first: it publishes every event of the cells' logs, and the tasks loaded for the hot
path would be in its stream too."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.cells import CellAddress
from app.database import create_engine
from app.embedded import running
from bench import dataset
from bench.cpu import Postgres, postgres_of
from bench.database import CreatedTenant, cli, connect, create_tenants
from bench.dataset import LoadedTenant
from bench.load import LoadResult
from bench.plan import Plan
from bench.relay import RelayResult, bench_stream, relay_burst, stream_set_up, stream_settings
from bench.report import Row, rate_and_latency, say
from bench.requests import task_ids_file
from bench.saturation import saturated
from bench.server import Server, api_server, serving
from projections.rebuild import rebuild
from projections.registry import PROJECTORS

HOME, ON_CELL = "home", "b"
# The tenants, each on its cell: one on each cell but the home writes the relay's burst; the
# hot path is read and written by one on the home (served alone) and one on cell b.
RELAY_TENANTS = {"bench-relay-b": "b", "bench-relay-c": "c"}
ONE_CELL, THREE_CELLS = "one cell", "three cells"
HOT_PATH_TENANTS = {ONE_CELL: "bench-hot-path-home", THREE_CELLS: "bench-hot-path-b"}
PLACEMENT = {**RELAY_TENANTS, "bench-hot-path-home": HOME, "bench-hot-path-b": ON_CELL}
# The hot path over three cells holds as over one: the share of the one-cell figure asked.
SHARE = 0.90
HOT_PATH = (("GET /v1/tasks/:id", "get_task"), ("POST /v1/tasks", "create_task"))


@dataclass(frozen=True, slots=True)
class CellsResult:
    """Each hot-path figure's load over one cell and over three, and the relay's burst."""

    hot_path: dict[str, dict[str, LoadResult]]
    relay: RelayResult


def cells_figures(plan: Plan, workers: int, scratch: Path) -> CellsResult:
    with three_cells() as cells:
        home, setting = cells[0], cells_setting(cells)
        created = create_tenants(home.url, list(PLACEMENT), cells=setting, placement=PLACEMENT)
        tenants = dict(zip(PLACEMENT, created, strict=True))
        stream = bench_stream()
        # One process runs every cell's relay; the servers of the hot path run none.
        relays = api_server(
            home.url,
            1,
            scratch / "relay.log",
            settings={"TASKS_CELLS": setting, **stream_settings(stream)},
        )
        servers = {
            ONE_CELL: api_server(home.url, workers, scratch / "one-cell.log"),
            THREE_CELLS: api_server(
                home.url, workers, scratch / "three-cells.log", settings={"TASKS_CELLS": setting}
            ),
        }
        say("three cells ready; starting tasks-api serve over them, over one, and the relays")
        with stream_set_up(home.url, stream), serving(relays, *servers.values()):
            writers = [
                (_cell(cells, cell).url, tenants[name].tenant_id)
                for name, cell in RELAY_TENANTS.items()
            ]
            relay = asyncio.run(relay_burst(stream, writers, plan.relay_tasks))
            # They would publish the hot path's tasks too.
            relays.stop()
            hot_path = _hot_path(plan, scratch, cells, tenants, servers)
    return CellsResult(hot_path, relay)


def cells_rows(result: CellsResult) -> list[Row]:
    rows = []
    for name, loads in result.hot_path.items():
        one, three = loads[ONE_CELL], loads[THREE_CELLS]
        ratio = three.requests_per_second / one.requests_per_second
        rows.append(Row(f"{name}, {ONE_CELL} (tenant on it)", rate_and_latency(one)))
        rows.append(
            Row(
                f"{name}, {THREE_CELLS} (tenant on cell {ON_CELL}, not the home)",
                rate_and_latency(three),
                ONE_CELL,
                ratio,
                f"≥ {SHARE:.2f}x, no answer ≥ 400, none unanswered",
                ratio >= SHARE and one.errors == 0 and three.errors == 0,
            )
        )
    return rows


@contextmanager
def three_cells() -> Iterator[tuple[CellAddress, ...]]:
    """The home, b and c, each an embedded server of its own, migrated; stopped and removed
    when the block ends."""
    with ExitStack() as stack:
        cells = tuple(
            CellAddress(name, stack.enter_context(_embedded_server(name)))
            for name in (HOME, "b", "c")
        )
        cli(cells[0].url, "migrate", settings={"TASKS_CELLS": cells_setting(cells)})
        yield cells


def cells_setting(cells: tuple[CellAddress, ...]) -> str:
    """TASKS_CELLS for these cells."""
    return ",".join(f"{cell.name}={cell.url}" for cell in cells)


@contextmanager
def _embedded_server(name: str) -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory(prefix=f"tasks-bench-cell-{name}-") as folder,
        running(folder) as url,
    ):
        yield url


def _cell(cells: tuple[CellAddress, ...], name: str) -> CellAddress:
    return next(cell for cell in cells if cell.name == name)


def _hot_path(
    plan: Plan,
    scratch: Path,
    cells: tuple[CellAddress, ...],
    tenants: dict[str, CreatedTenant],
    servers: dict[str, Server],
) -> dict[str, dict[str, LoadResult]]:
    """GET by id and POST over one cell, then at once over three, for two tenants loaded
    with the same tasks."""
    say(f"loading {plan.cells_tasks:,} tasks on each of cells {HOME} and {ON_CELL}")
    placed = {
        over: (_cell(cells, PLACEMENT[name]), tenants[name])
        for over, name in HOT_PATH_TENANTS.items()
    }
    ids = {
        over: task_ids_file(
            scratch / f"cell-{cell.name}-ids",
            asyncio.run(_loaded(cell.url, tenant.tenant_id, plan.cells_tasks)),
        )
        for over, (cell, tenant) in placed.items()
    }
    home = asyncio.run(postgres_of(cells[0].url))
    # Over three cells the rate limits are counted on the home, the tasks kept on the cell.
    postgres = {
        ONE_CELL: home,
        THREE_CELLS: Postgres(
            *home.postmasters,
            *asyncio.run(postgres_of(_cell(cells, ON_CELL).url)).postmasters,
        ),
    }
    envs = {
        over: {"BENCH_API_KEY": tenant.api_key, "BENCH_IDS": ids[over]}
        for over, (_, tenant) in placed.items()
    }

    def measured(over: str, figure: str, script: str) -> LoadResult:
        cell = placed[over][0]
        server, env = servers[over], envs[over]
        return saturated(plan, figure, server, "/", script, env, cell.url, postgres[over])

    # A fresh server's first load opens its pools' connections and fills its caches: it would
    # count against whichever server went first.
    for over in placed:
        measured(over, f"warming up over {over}", "get_task")
    return {
        name: {over: measured(over, f"{name}, {over}", script) for over in placed}
        for name, script in HOT_PATH
    }


async def _loaded(url: str, tenant_id: str, count: int) -> LoadedTenant:
    """The tenant's tasks loaded by COPY, and every projection rebuilt from them."""
    conn = await connect(url)
    engine = create_engine(url, pool_size=2)
    try:
        loaded = await dataset.load_tenant(conn, tenant_id, count, seed=0)
        for projector in PROJECTORS.values():
            await rebuild(engine, projector, lambda _: None)
        await conn.execute("ANALYZE")
    finally:
        await engine.dispose()
        await conn.close()
    return loaded
