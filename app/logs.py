"""Logging: one JSON object per line on stderr, from the service, Litestar, uvicorn and any
library that warns.

Every line has time (UTC), level, logger, message and pid; the service's own lines add their
fields (an access line per request, an audit line per event). No line carries a header, an API
key, its hash or a request body: the access line names the request by its method, path and
route, and the audit line by its task, version, key id and request id."""

from __future__ import annotations

import collections
import logging
import sys
import threading
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
            self._waiting.append(self.format(record))
        except Exception:
            self.handleError(record)

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
