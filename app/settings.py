"""Every setting, read from the environment and a `.env` file, validated once.

A variable set in the environment wins over the same one in `.env` (in the working directory);
an empty value counts as unset. A bad value is refused at start, naming its variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec
from dotenv import dotenv_values
from msgspec import Meta

from app.cells import parse_cells

ENV_FILE = Path(".env")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# The URL schemes each server's setting accepts.
URL_SCHEMES = {
    "database_url": ("postgresql", "postgresql+asyncpg"),
    "redis_url": ("redis", "rediss", "unix"),
    "nats_url": ("nats", "tls", "ws", "wss"),
}
MASK = "***"


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    # None: start the embedded PostgreSQL under data_dir.
    database_url: str | None = None
    data_dir: str = ".tasks-api"
    log_level: str = "INFO"
    max_body_bytes: Annotated[int, Meta(gt=0)] = 256 * 1024
    db_pool_size: Annotated[int, Meta(gt=0)] = 10
    # PostgreSQL takes at most a 32-bit count of milliseconds.
    statement_timeout_ms: Annotated[int, Meta(gt=0, le=2_147_483_647)] = 5_000
    request_timeout_seconds: Annotated[float, Meta(gt=0)] = 10.0
    # On SIGTERM, how long requests in flight may take to finish before they are cancelled.
    shutdown_timeout_seconds: Annotated[float, Meta(gt=0)] = 20.0
    # /health/ready fails while an asynchronous projection lags the log by more.
    ready_max_lag_ms: Annotated[int, Meta(gt=0)] = 30_000
    # Run the projection runners and the auto-complete sweep inside the API process.
    run_projections: bool = True
    # Serve the benchmark's constant route (bench/), never wanted in production.
    bench_routes: bool = False
    # None: count the rate limits in PostgreSQL.
    redis_url: str | None = None
    # NAME=URL pairs, comma-separated, the home cell first (app/cells.py). None: one cell,
    # DATABASE_URL's (or the embedded server).
    cells: str | None = None
    # None: no relay publishes the log to NATS JetStream.
    nats_url: str | None = None
    nats_stream: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "TASKS_EVENTS"
    nats_subject_prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")] = (
        "tasks.events"
    )


ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "data_dir": "TASKS_DATA_DIR",
    "log_level": "TASKS_LOG_LEVEL",
    "max_body_bytes": "TASKS_MAX_BODY_BYTES",
    "db_pool_size": "TASKS_DB_POOL_SIZE",
    "statement_timeout_ms": "TASKS_STATEMENT_TIMEOUT_MS",
    "request_timeout_seconds": "TASKS_REQUEST_TIMEOUT_SECONDS",
    "shutdown_timeout_seconds": "TASKS_SHUTDOWN_TIMEOUT_SECONDS",
    "ready_max_lag_ms": "TASKS_READY_MAX_LAG_MS",
    "run_projections": "TASKS_RUN_PROJECTIONS",
    "bench_routes": "TASKS_BENCH_ROUTES",
    "redis_url": "REDIS_URL",
    "cells": "TASKS_CELLS",
    "nats_url": "NATS_URL",
    "nats_stream": "NATS_STREAM",
    "nats_subject_prefix": "NATS_SUBJECT_PREFIX",
}


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


class Source(StrEnum):
    DEFAULT = "default"
    ENV_FILE = ".env"
    ENVIRONMENT = "environment"


@dataclass(frozen=True)
class Configured:
    """One setting as the service runs with it, passwords masked, and where it came from."""

    variable: str
    shown: str
    source: Source


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = ENV_FILE
) -> Settings:
    """Settings from the environment and `env_file`; a bad value names its variable."""
    given = _given(os.environ if environ is None else environ, env_file)
    return _settings({field: value for field, (value, _) in given.items()})


def effective_configuration(
    environ: Mapping[str, str] | None = None, env_file: Path | None = ENV_FILE
) -> list[Configured]:
    """Every setting, validated, with its value and its source."""
    given = _given(os.environ if environ is None else environ, env_file)
    settings = _settings({field: value for field, (value, _) in given.items()})
    return [
        Configured(
            name, _shown(field, getattr(settings, field)), given.get(field, ("", Source.DEFAULT))[1]
        )
        for field, name in ENV_NAMES.items()
    ]


def mask_password(url: str) -> str:
    """The URL with its password, in the authority or the query, replaced by ***."""
    # Each part replaced where it stands: rebuilding the URL from its parts would also drop
    # the empty authority of postgresql:///name.
    parts = urlsplit(url)
    if parts.password is not None:
        credentials, _, host = parts.netloc.rpartition("@")
        url = url.replace(parts.netloc, f"{credentials.split(':', 1)[0]}:{MASK}@{host}", 1)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        masked = [(key, MASK if key == "password" else value) for key, value in query]
        url = url.replace(f"?{parts.query}", f"?{urlencode(masked, safe='*/')}", 1)
    return url


def _shown(field: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if field == "cells":
        return ",".join(f"{cell.name}={mask_password(cell.url)}" for cell in parse_cells(value))
    return mask_password(value) if field in URL_SCHEMES else str(value)


def _given(environ: Mapping[str, str], env_file: Path | None) -> dict[str, tuple[str, Source]]:
    """The text of each setting that has one, by field, and where it was found."""
    from_file = dotenv_values(env_file) if env_file is not None and env_file.is_file() else {}
    given = {}
    for field, name in ENV_NAMES.items():
        if environ.get(name):
            given[field] = (environ[name], Source.ENVIRONMENT)
        elif value := from_file.get(name):
            given[field] = (value, Source.ENV_FILE)
    return given


def _settings(values: dict[str, str]) -> Settings:
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise _not_converted(str(error), values) from error
    if settings.log_level.lower() not in LOG_LEVELS:
        raise SettingsError(
            f"invalid setting: {ENV_NAMES['log_level']}={settings.log_level!r}: "
            f"must be one of {', '.join(LOG_LEVELS)}"
        )
    for field, schemes in URL_SCHEMES.items():
        url = getattr(settings, field)
        # The URL itself is not repeated: it may carry a password.
        if url is not None and (scheme := urlsplit(url).scheme) not in schemes:
            starts = f"it starts {scheme}://" if scheme else "it has no scheme"
            raise SettingsError(
                f"invalid setting: {ENV_NAMES[field]}: must be a URL starting "
                f"{' or '.join(f'{wanted}://' for wanted in schemes)} ({starts})"
            )
    if settings.cells is not None:
        try:
            parse_cells(settings.cells)
        except ValueError as error:
            raise SettingsError(f"invalid setting: {ENV_NAMES['cells']}: {error}") from None
    return settings


def _not_converted(message: str, values: dict[str, str]) -> SettingsError:
    """msgspec's message, led by the variable's name and the value it was given."""
    problem, _, path = message.partition(" - at `$.")
    field = path.rstrip("`")
    if field not in ENV_NAMES:
        return SettingsError(f"invalid setting: {message}")
    return SettingsError(f"invalid setting: {ENV_NAMES[field]}={values.get(field)!r}: {problem}")
