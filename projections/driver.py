"""Statements on the driver's (asyncpg) connection under a pooled SQLAlchemy one, for the hot
reads where SQLAlchemy's work per statement (building the expression, then executing it: a few
hundred microseconds of Python each) is a measurable share. The statements are still written
with SQLAlchemy and compiled for the driver once (at import, or at the first use of each shape
a statement takes), then run with their values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = asyncpg_dialect.dialect()
# What runs a compiled statement: an asyncpg connection, or SQLAlchemy's, whose driver
# connection runs it.
AnyConnection = AsyncConnection | asyncpg.Connection
# The type of a parameter that is a list of texts (a text[]).
TEXTS = ARRAY(sa.Text)


async def driver_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a pooled one: for hot paths, where SQLAlchemy's work per
    statement is a measurable share, and for what only the driver offers (COPY, LISTEN).

    Inside SQLAlchemy's transaction (`engine.begin()`), the driver's statements join it:
    SQLAlchemy begins its transaction only at its own first statement, and a statement run on
    the driver before that one would commit on its own."""
    fairy = await conn.get_raw_connection()
    adapted: Any = fairy.dbapi_connection
    if conn.in_transaction() and adapted._transaction is None:
        await adapted._start_transaction()
    driver = fairy.driver_connection
    assert driver is not None
    return driver


def value(name: str, type_: sa.types.TypeEngine[Any] | None = None) -> sa.BindParameter[Any]:
    """A parameter of a compiled statement, given its value when the statement runs."""
    return sa.bindparam(name, None, type_=type_)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A query as the driver runs it: its SQL, the names of its parameters in order, and the
    values compiled into it (the members of a constant IN list)."""

    sql: str
    names: tuple[str, ...]
    constants: dict[str, Any]

    @classmethod
    def of(cls, query: sa.ClauseElement) -> Compiled:
        compiled = query.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        constants = {name: v for name, v in compiled.params.items() if v is not None}
        return cls(str(compiled), tuple(compiled.positiontup or ()), constants)

    def arguments(self, **values: Any) -> list[Any]:
        """The driver's arguments, given a value for each parameter made with `value`."""
        return [values[n] if n in values else self.constants[n] for n in self.names]

    async def fetch(self, conn: AnyConnection, **values: Any) -> list[asyncpg.Record]:
        driver = await driver_connection(conn) if isinstance(conn, AsyncConnection) else conn
        return list(await driver.fetch(self.sql, *self.arguments(**values)))

    async def execute(self, conn: AnyConnection, **values: Any) -> None:
        driver = await driver_connection(conn) if isinstance(conn, AsyncConnection) else conn
        await driver.execute(self.sql, *self.arguments(**values))
