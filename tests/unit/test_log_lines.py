"""A line logged on every request reaches each handler as a record logged with
`logger.info` would: the same JSON from a handler that batches lines as from any other."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from app.logs import BatchedLines, JsonLines, log_info


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonLines())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.log_lines.request")
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers.clear()
    logger.parent.handlers.clear()  # type: ignore[union-attr]


def batched(stream: io.StringIO) -> BatchedLines:
    handler = BatchedLines(stream)
    handler.setFormatter(JsonLines())
    return handler


def test_a_batching_handler_writes_the_line_any_other_handler_formats(
    logger: logging.Logger,
) -> None:
    stream, other = io.StringIO(), Kept()
    lines = batched(stream)
    logger.addHandler(lines)
    logger.addHandler(other)

    log_info(logger, "GET /v1/tasks 200", {"status": 200, "route": "/v1/tasks"})
    lines.close()

    [written] = stream.getvalue().splitlines()
    [formatted] = other.lines
    ours, theirs = json.loads(written), json.loads(formatted)
    # The same moment, read twice.
    assert abs(_seconds(ours.pop("time")) - _seconds(theirs.pop("time"))) < 1
    assert (
        ours
        == theirs
        == {
            "level": "info",
            "logger": logger.name,
            "message": "GET /v1/tasks 200",
            "pid": theirs["pid"],
            "status": 200,
            "route": "/v1/tasks",
        }
    )


def test_a_line_reaches_the_handlers_of_the_parents_while_they_propagate(
    logger: logging.Logger,
) -> None:
    parent = Kept()
    logger.parent.addHandler(parent)  # type: ignore[union-attr]

    log_info(logger, "seen above", {})
    logger.propagate = False
    log_info(logger, "kept below", {})
    logger.propagate = True

    assert [json.loads(line)["message"] for line in parent.lines] == ["seen above"]


def test_no_line_below_the_loggers_or_the_handlers_level(logger: logging.Logger) -> None:
    stream, strict = io.StringIO(), Kept()
    strict.setLevel(logging.WARNING)
    lines = batched(stream)
    logger.addHandler(lines)
    logger.addHandler(strict)

    log_info(logger, "written", {})
    logger.setLevel(logging.WARNING)
    log_info(logger, "not written", {})
    lines.close()

    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["written"]
    assert strict.lines == []


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
