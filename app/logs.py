"""Logging: one JSON object per line on stderr, from the service, Litestar, uvicorn and any
library that warns.

Every line has time (UTC), level, logger, message and pid; the service's own lines add their
fields (an access line per request, an audit line per event). No line carries a header, an API
key, its hash or a request body: the access line names the request by its method, path and
route, and the audit line by its task, version, key id and request id."""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from litestar.logging.config import LoggingConfig

# Libraries log at WARNING and above unless the service's level is stricter still.
LIBRARY_LEVEL = logging.WARNING
# How long a line may wait to be written with the others logged meanwhile.
WRITE_EVERY_SECONDS = 0.02

# A line names no thread, no multiprocessing name and no line of the source: a record need
# not look them up (the last is a walk up the stack on every line).
logging.logThreads = False
logging.logMultiprocessing = False
logging._srcfile = None


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra = dict(fields) if isinstance(fields, dict) else {}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        message = record.getMessage()
        return json_line(
            record.created, record.levelname, record.name, message, record.process, extra
        )


def json_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    pid: int | None,
    fields: dict[str, object],
) -> str:
    line: dict[str, object] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level.lower(),
        "logger": logger,
        "message": message,
        "pid": pid,
    }
    line.update(fields)
    return msgspec.json.encode(line).decode()


def log_info(logger: logging.Logger, message: str, fields: dict[str, object]) -> None:
    """An INFO line with its fields, as `logger.info(message, extra={"fields": fields})` logs
    it, for the lines written on every request (access) and every event (audit): a handler
    that batches JSON lines is handed the line itself, and a LogRecord is made only for a
    handler of another kind. The record and the logging machinery around it cost a request
    more than everything else it logs (16 us of a constant route's 110 under load)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    line: str | None = None
    record: logging.LogRecord | None = None
    for handler in _handlers_of(logger):
        if handler.level > logging.INFO:
            continue
        if isinstance(handler, BatchedLines) and _formats_plainly(handler):
            if line is None:
                line = json_line(time.time(), "info", logger.name, message, os.getpid(), fields)
            handler.add(line)
            continue
        if record is None:
            record = logger.makeRecord(
                logger.name, logging.INFO, "", 0, message, None, None, extra={"fields": fields}
            )
        handler.handle(record)


def _handlers_of(logger: logging.Logger) -> Iterator[logging.Handler]:
    """The handlers a record of the logger reaches, as Logger.callHandlers finds them."""
    current: logging.Logger | None = logger
    while current is not None:
        yield from current.handlers
        if not current.propagate:
            return
        current = current.parent


def _formats_plainly(handler: logging.Handler) -> bool:
    return not handler.filters and type(handler.formatter) is JsonLines


class BatchedLines(logging.Handler):
    """Lines formatted where they are logged, and written to stderr by a thread of its own
    every WRITE_EVERY_SECONDS, all that have waited at once: writing never blocks the event
    loop, and a burst of requests costs a write, not a write and a thread's wake-up per line.
    What waits is written when the handler is flushed or closed (at exit, say)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream or sys.stderr
        self._waiting: collections.deque[str] = collections.deque()
        self._closing = threading.Event()
        self._writer = threading.Thread(target=self._write_until_closed, daemon=True)
        self._writer.start()

    def handle(self, record: logging.LogRecord) -> bool:
        # Without the handler's lock, which a deque has no need of: a line costs less.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add(self.format(record))
        except Exception:
            self.handleError(record)

    def add(self, line: str) -> None:
        """A line formatted already, to be written with the others."""
        self._waiting.append(line)

    def flush(self) -> None:
        lines = []
        # Each popleft is atomic: a line appended meanwhile waits for the next write.
        while self._waiting:
            lines.append(self._waiting.popleft())
        if lines:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()

    def close(self) -> None:
        self._closing.set()
        self._writer.join()
        super().close()

    def _write_until_closed(self) -> None:
        while not self._closing.wait(WRITE_EVERY_SECONDS):
            self.flush()
        self.flush()


def logging_config(level: str) -> LoggingConfig:
    """The app's logging: JSON lines, written in batches off the event loop."""
    level = level.upper()
    return LoggingConfig(
        formatters={"standard": {"()": JsonLines}},
        handlers={"lines": {"()": BatchedLines, "formatter": "standard"}},
        loggers={
            "tasks_api": {"level": level, "handlers": ["lines"], "propagate": False},
            "litestar": {"level": level, "handlers": ["lines"], "propagate": False},
        },
        root={"handlers": ["lines"], "level": _library_level(level)},
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
