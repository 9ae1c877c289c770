"""How big and how long: the full benchmark, and the quick smoke that CI runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    # Tasks of the tenant that lists are read from, of the one stats and analytics are read
    # from, and of the one the commands write to (so that the reads' tenants stay as loaded).
    list_tasks: int
    stats_tasks: int
    command_tasks: int
    # Seconds each load at saturation runs for, and each ceiling and append rate.
    seconds: float
    ceiling_seconds: float
    # Seconds of each load from one connection, of the same load unmeasured before it, and
    # of each open-loop load.
    latency_seconds: float
    warm_up_seconds: float
    open_loop_seconds: float
    # The rate limit slices: a tenant's limit per minute, and how long it is sent twice that.
    slices_limit: int
    slices_seconds: float
    # The rate the target is set at, then one this machine sustains beside it.
    lag_rates: tuple[int, ...]
    lag_seconds: float
    # Tasks loaded for each tenant the hot path over cells reads, and tasks created on each
    # of two cells at once for the relay to publish.
    cells_tasks: int
    relay_tasks: int
    connections: int = 64
    wrk_threads: int = 2


FULL = Plan(
    name="full",
    list_tasks=100_000,
    stats_tasks=1_000_000,
    # Open tasks enough for each round to complete 31,000 (3,100/s) without a repeat.
    command_tasks=100_000,
    seconds=10,
    ceiling_seconds=8,
    latency_seconds=8,
    warm_up_seconds=2,
    open_loop_seconds=10,
    slices_limit=600,
    slices_seconds=2,
    lag_rates=(1_000, 250),
    lag_seconds=10,
    cells_tasks=20_000,
    relay_tasks=5_000,
)

QUICK = Plan(
    name="quick",
    list_tasks=2_000,
    stats_tasks=5_000,
    # Open tasks enough for each round to complete 2,500 without a repeat.
    command_tasks=8_000,
    seconds=1,
    ceiling_seconds=1.5,
    latency_seconds=1,
    warm_up_seconds=1,
    open_loop_seconds=1,
    slices_limit=600,
    slices_seconds=2,
    lag_rates=(300,),
    lag_seconds=2,
    cells_tasks=1_000,
    relay_tasks=500,
)
