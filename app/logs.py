"""Logging: one JSON object per line on stderr, from the service, Litestar, uvicorn and any
library that warns.

Every line has time (UTC), level, logger, message and pid; the service's own lines add their
fields (an access line per request, an audit line per event). No line carries a header, an API
key, its hash or a request body: the access line names the request by its method, path and
route, and the audit line by its task, version, key id and request id."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.logging.config import LoggingConfig

# Libraries log at WARNING and above unless the service's level is stricter still.
LIBRARY_LEVEL = logging.WARNING


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def logging_config(level: str) -> LoggingConfig:
    """The app's logging, through Litestar's queue handler so that writing a line never
    blocks the event loop."""
    level = level.upper()
    return LoggingConfig(
        formatters={"standard": {"()": JsonLines}},
        loggers={
            "tasks_api": {"level": level, "handlers": ["queue_listener"], "propagate": False},
            "litestar": {"level": level, "handlers": ["queue_listener"], "propagate": False},
        },
        root={"handlers": ["queue_listener"], "level": _library_level(level)},
    )


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's own lines (start, stop, errors) as JSON too. Its access log stays off: the
    service writes one access line per request itself."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.logs.JsonLines"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
        },
        "root": {"handlers": ["stderr"], "level": _library_level(level.upper())},
    }


def _library_level(level: str) -> str:
    return logging.getLevelName(max(logging.getLevelName(level), LIBRARY_LEVEL))
