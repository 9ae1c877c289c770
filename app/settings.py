"""Every setting, read from the environment, validated once."""

from __future__ import annotations

import os
from typing import Annotated

import msgspec
from msgspec import Meta


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    # None: start the embedded PostgreSQL under data_dir.
    database_url: str | None = None
    data_dir: str = ".tasks-api"
    log_level: str = "INFO"
    max_body_bytes: Annotated[int, Meta(gt=0)] = 256 * 1024
    db_pool_size: Annotated[int, Meta(gt=0)] = 10
    statement_timeout_ms: Annotated[int, Meta(gt=0)] = 5_000
    request_timeout_seconds: Annotated[float, Meta(gt=0)] = 10.0
    # Run the projection runners and the auto-complete sweep inside the API process.
    run_projections: bool = True
    # Serve the benchmark's constant route (bench/), never wanted in production.
    bench_routes: bool = False
    # None: count the rate limits in PostgreSQL.
    redis_url: str | None = None


ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "data_dir": "TASKS_DATA_DIR",
    "log_level": "TASKS_LOG_LEVEL",
    "max_body_bytes": "TASKS_MAX_BODY_BYTES",
    "db_pool_size": "TASKS_DB_POOL_SIZE",
    "statement_timeout_ms": "TASKS_STATEMENT_TIMEOUT_MS",
    "request_timeout_seconds": "TASKS_REQUEST_TIMEOUT_SECONDS",
    "run_projections": "TASKS_RUN_PROJECTIONS",
    "bench_routes": "TASKS_BENCH_ROUTES",
    "redis_url": "REDIS_URL",
}


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from the environment; a bad value names its variable."""
    environ = dict(os.environ if environ is None else environ)
    values = {field: environ[name] for field, name in ENV_NAMES.items() if environ.get(name)}
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise SettingsError(_name_variable(str(error))) from error


def _name_variable(message: str) -> str:
    for field, name in ENV_NAMES.items():
        message = message.replace(f"$.{field}", name)
    return f"invalid setting: {message}"
