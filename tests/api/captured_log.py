"""The service's log as it writes it, captured in-process for the tests that read it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.logs import JsonLines

# Every logger the app configures: its own, Litestar's, and the root that libraries reach.
LOGGERS = ("tasks_api", "litestar", "")


class CapturedLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonLines())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def entries(self, logger: str | None = None) -> list[dict[str, Any]]:
        """The lines as objects, those of `logger` only when named."""
        entries = [json.loads(line) for line in self.lines]
        return [entry for entry in entries if logger is None or entry["logger"] == logger]

    def access(self, request_id: str) -> dict[str, Any]:
        """The one access line of the request with this x-request-id."""
        lines = [
            entry for entry in self.entries("tasks_api.access") if entry["requestId"] == request_id
        ]
        assert len(lines) == 1, self.lines
        return lines[0]


@contextmanager
def captured_log() -> Iterator[CapturedLog]:
    """Every line the service logs while the block runs, formatted as it writes them."""
    capture = CapturedLog()
    for name in LOGGERS:
        logging.getLogger(name).addHandler(capture)
    try:
        yield capture
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(capture)
