"""The one table the benchmark prints: figure, value, ceiling, ratio, target, pass/fail."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    value: str
    ceiling: str = ""
    ratio: float | None = None
    target: str = ""
    # None: a figure shown for what it is, with no target.
    passed: bool | None = None


def number(value: float, unit: str = "") -> str:
    text = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


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
