"""Bringing a database's schema to the newest migration."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def head_revisions() -> frozenset[str]:
    """The newest migration of each branch, as read from the migration scripts."""
    return frozenset(ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_heads())


async def applied_revisions(conn: AsyncConnection) -> frozenset[str]:
    """The migrations a database is at: none on one never migrated."""
    if not await conn.scalar(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")):
        return frozenset()
    return frozenset(await conn.scalars(sa.text("SELECT version_num FROM alembic_version")))
