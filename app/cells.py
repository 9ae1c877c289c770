"""Cells: independent PostgreSQL servers, each holding the whole schema, over which tenants
are placed. A tenant's events, views and transactions are all on one cell.

TASKS_CELLS lists them as `NAME=URL` pairs, the first the home cell, which also holds the
directory: every tenant with the cell that holds it, and every API key (app/tenants.py). With
TASKS_CELLS unset there is one cell, HOME_CELL, on DATABASE_URL: the service as it always was.

A process holds a pool and an engine per cell. A request finds its cell from its key, which
the process caches with the key's tenant: no round trip is spent on the directory."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import asyncpg

from store.pool import plain_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.database import Database

# The name of the only cell when TASKS_CELLS is unset.
HOME_CELL = "main"
CELL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
URL_SCHEMES = ("postgresql", "postgresql+asyncpg")
REACHABLE = "reachable"
REACH_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class CellAddress:
    """A cell as configured: its name and its database's URL."""

    name: str
    url: str


def parse_cells(text: str) -> tuple[CellAddress, ...]:
    """`NAME=URL,NAME=URL,…`, the home cell first; ValueError naming what is wrong (never a
    URL, which may carry a password)."""
    cells: list[CellAddress] = []
    for number, pair in enumerate(text.split(","), start=1):
        name, equals, url = pair.strip().partition("=")
        if not equals or not url:
            raise ValueError(f"cell {number} is not NAME=URL")
        if not CELL_NAME.fullmatch(name):
            raise ValueError(
                f"cell {number}: a name is 1 to 40 lowercase letters, digits, - or _, "
                "starting with a letter"
            )
        if urlsplit(url).scheme not in URL_SCHEMES:
            raise ValueError(f"cell {name}: its URL must start postgresql://")
        if any(cell.name == name for cell in cells):
            raise ValueError(f"cell {name} is named twice")
        cells.append(CellAddress(name, url))
    return tuple(cells)


def cell_addresses(cells: str | None, database_url: str | None) -> tuple[CellAddress, ...]:
    """The configured cells: TASKS_CELLS's, else the one cell on `database_url`."""
    if cells is not None:
        return parse_cells(cells)
    if database_url is None:
        raise RuntimeError("DATABASE_URL is not set; start the service with `tasks-api serve`")
    return (CellAddress(HOME_CELL, database_url),)


async def reachability(cells: Sequence[CellAddress]) -> list[str]:
    """Whether each cell answers a query within REACH_SECONDS: REACHABLE, else why not."""

    async def reach(address: CellAddress) -> str:
        try:
            async with asyncio.timeout(REACH_SECONDS):
                conn = await asyncpg.connect(plain_url(address.url))
                try:
                    await conn.execute("SELECT 1")
                finally:
                    await conn.close()
        except TimeoutError:
            return f"no answer in {REACH_SECONDS:g} s"
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            return f"unreachable: {type(error).__name__}"
        return REACHABLE

    return list(await asyncio.gather(*(reach(address) for address in cells)))


class UnknownCell(Exception):
    """The directory places a tenant on a cell this process is not configured with."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class Cell:
    """A cell as a process holds it: the requests' pool and the engine of the work beside."""

    name: str
    db: Database
    engine: AsyncEngine


class Cells:
    """Every cell of a process, by name; the home cell holds the directory."""

    __slots__ = ("_by_name", "home")

    def __init__(self, cells: Sequence[Cell]) -> None:
        self.home = cells[0]
        self._by_name = {cell.name: cell for cell in cells}

    def of(self, name: str | None) -> Cell:
        """The cell of that name (None: the home cell); UnknownCell if there is none."""
        if name is None:
            return self.home
        cell = self._by_name.get(name)
        if cell is None:
            raise UnknownCell(name)
        return cell

    def __iter__(self) -> Iterator[Cell]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


@contextlib.asynccontextmanager
async def open_cells(
    addresses: Sequence[CellAddress],
    *,
    pool_size: int,
    engine_pool_size: int,
    statement_timeout_ms: int,
) -> AsyncIterator[Cells]:
    """A pool and an engine on every cell, for as long as the block runs. A pool opens its
    connections as they are needed: a cell that is down costs nothing until used."""
    from app.database import create_engine, open_database

    async with contextlib.AsyncExitStack() as stack:
        cells = []
        for address in addresses:
            db = await stack.enter_async_context(
                open_database(
                    address.url, pool_size=pool_size, statement_timeout_ms=statement_timeout_ms
                )
            )
            engine = create_engine(
                address.url, pool_size=engine_pool_size, statement_timeout_ms=statement_timeout_ms
            )
            stack.push_async_callback(engine.dispose)
            cells.append(Cell(address.name, db, engine))
        yield Cells(cells)
