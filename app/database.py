"""The connection pool to PostgreSQL, shared by the HTTP handlers, the CLI and migrations."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def asyncpg_url(database_url: str) -> str:
    """postgresql://… as SQLAlchemy names the asyncpg driver."""
    url = make_url(database_url)
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def create_engine(
    database_url: str, *, pool_size: int = 10, statement_timeout_ms: int = 5_000
) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(database_url),
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        json_serializer=_encode_json,
        json_deserializer=msgspec.json.decode,
        connect_args={
            "server_settings": {
                "statement_timeout": str(statement_timeout_ms),
                # Long-open transactions hold back the log readers' horizon.
                "idle_in_transaction_session_timeout": "10000",
                "application_name": "tasks-api",
            }
        },
    )
