"""Alembic runs the migrations over the service's own async engine."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from app.database import create_engine
from projections.tables import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    # A migration may build an index over every task: the service's statement timeout is for
    # requests, not for this.
    engine = create_engine(
        context.config.attributes["database_url"], pool_size=1, statement_timeout_ms=0
    )
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


asyncio.run(run_async_migrations())
