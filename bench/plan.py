"""How big and how long: the full benchmark, and the quick smoke that CI runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    # Tasks of the tenant that lists are read from, and of the one stats and analytics are.
    list_tasks: int
    stats_tasks: int
    # Seconds each HTTP figure is loaded for, and each ceiling and append rate.
    seconds: float
    ceiling_seconds: float
    # The rate the target is set at, then one this machine sustains beside it.
    lag_rates: tuple[int, ...]
    lag_seconds: float
    connections: int = 64
    wrk_threads: int = 2


FULL = Plan(
    name="full",
    list_tasks=100_000,
    stats_tasks=1_000_000,
    seconds=10,
    ceiling_seconds=8,
    lag_rates=(1_000, 250),
    lag_seconds=20,
)

QUICK = Plan(
    name="quick",
    list_tasks=5_000,
    stats_tasks=10_000,
    seconds=1,
    ceiling_seconds=1.5,
    lag_rates=(300,),
    lag_seconds=2,
)
