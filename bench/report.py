"""The tables the benchmark prints (figure, value, ceiling, ratio, target, pass/fail; and
where the CPU went), and its progress lines on stderr."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.load import LoadResult


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    value: str
    ceiling: str = ""
    ratio: float | None = None
    target: str = ""
    # None: a figure shown for what it is, with no target.
    passed: bool | None = None


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def number(value: float, unit: str = "") -> str:
    text = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def rate_and_latency(result: LoadResult) -> str:
    """A load's rate, latency and failures, as a figure's value."""
    value = number(result.requests_per_second, "req/s")
    if result.p50_ms is not None and result.p99_ms is not None:
        value += f", p50 {milliseconds(result.p50_ms)}, p99 {milliseconds(result.p99_ms)}"
    if result.refused:
        value += f", {result.refused:,} answered ≥ 400"
    if result.unanswered:
        value += f", {result.unanswered:,} unanswered"
    return value


def milliseconds(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def table(rows: list[Row]) -> str:
    header = ("figure", "value", "ceiling", "ratio", "target", "pass/fail")
    cells = [
        (
            row.figure,
            row.value,
            row.ceiling,
            "" if row.ratio is None else f"{row.ratio:.2f}",
            row.target,
            "" if row.passed is None else ("pass" if row.passed else "FAIL"),
        )
        for row in rows
    ]
    return markdown([header, *cells])


def markdown(lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]

    def render(line: tuple[str, ...]) -> str:
        return (
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            + " |"
        )

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])


def cpu_table(loads: list[tuple[str, LoadResult]]) -> str:
    header = (
        "load",
        "requests",
        "≥ 400",
        "unanswered",
        "generator CPU",
        "server CPU",
        "PostgreSQL CPU",
        "generator ms/req",
        "server ms/req",
        "PostgreSQL ms/req",
    )
    lines = [
        (
            name,
            f"{r.requests:,}",
            f"{r.refused:,}",
            f"{r.unanswered:,}",
            f"{r.usage.generator:.2f}",
            f"{r.usage.servers:.2f}",
            f"{r.usage.postgres:.2f}",
            f"{r.cpu_ms_per_request(r.usage.generator):.3f}",
            f"{r.cpu_ms_per_request(r.usage.servers):.2f}",
            f"{r.cpu_ms_per_request(r.usage.postgres):.2f}",
        )
        for name, r in loads
    ]
    return markdown([header, *lines])
