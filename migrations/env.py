"""Alembic runs the migrations over the service's own async engine."""

import asyncio
import zlib

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from app.database import create_engine
from projections.tables import metadata

# Every migration runs in one transaction under this advisory lock. Processes that start
# together on one database (replicas of a deployment, each migrating as it starts) take
# their turns: the first applies the migrations, the next finds the schema at the newest
# and applies none, where both would otherwise run the same DDL and the second fail on what
# the first had just created.
MIGRATION_LOCK = zlib.crc32(b"migrations")


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
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
