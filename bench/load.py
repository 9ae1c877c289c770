"""HTTP load from a process of its own, and what it cost: wrk, closed loop, at 64 connections
(saturation) or at one (the latency one client feels), and bench.paced, open loop, at a fixed
rate; requests/s, latency percentiles, answers refused, and how much CPU the generator itself
used, to show it had capacity to spare, beside what the servers and PostgreSQL used."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from bench.cpu import Measured, Meter, Postgres, Usage, run_process
from bench.paced import PacedSpec, PacedSummary

LUA = Path(__file__).with_name("lua")


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    # None where the load has no latency of its own to show (the raw INSERT ceiling).
    p50_ms: float | None
    p99_ms: float | None
    # Answers with a status of 400 or more, and requests with no answer at all (connect,
    # read or write errors, timeouts).
    refused: int
    unanswered: int
    usage: Usage

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.refused + self.unanswered

    def cpu_ms_per_request(self, cpu: float) -> float:
        rate = self.requests_per_second
        return 1000 * cpu / rate if rate else 0.0


class WrkSummary(msgspec.Struct):
    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    connect: int
    read: int
    write: int
    status: int
    timeout: int


def ensure_wrk() -> str:
    """wrk from Debian's packages, installed when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, check=False, capture_output=True).returncode != 0:
        # A fresh machine may not have read the package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def run_wrk(
    url: str,
    script: str,
    env: dict[str, str],
    seconds: float,
    connections: int,
    threads: int,
    servers: Sequence[Measured],
    postgres: Postgres,
) -> LoadResult:
    """Load `url` through bench/lua/<script>.lua, closed loop: each connection sends its next
    request when the answer to the last has come."""
    command = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA / f"{script}.lua"),
        url,
    ]
    env = {**env, "BENCH_LUA": str(LUA), "BENCH_WRK_THREADS": str(threads)}
    meter = Meter(servers, postgres)
    text, cpu = run_process(command, env, "wrk")
    usage = meter.usage(cpu)
    lines = [line for line in text.splitlines() if line.startswith("BENCH ")]
    if not lines:
        raise RuntimeError(f"wrk printed no summary for {url}:\n{text}")
    summary = msgspec.json.decode(lines[-1].removeprefix("BENCH "), type=WrkSummary)
    return LoadResult(
        requests=summary.requests,
        seconds=summary.duration_us / 1e6,
        p50_ms=summary.p50_us / 1000,
        p99_ms=summary.p99_us / 1000,
        refused=summary.status,
        unanswered=summary.connect + summary.read + summary.write + summary.timeout,
        usage=usage,
    )


def run_paced(
    targets: Sequence[str],
    requests: list[str],
    rate: float,
    seconds: float,
    connections: int,
    servers: Sequence[Measured],
    postgres: Postgres,
    records_path: Path | None = None,
) -> tuple[LoadResult, PacedSummary]:
    """Load the base URLs `targets` at a fixed `rate` for `seconds` with bench.paced, open
    loop: latency from each request's due time."""
    spec = PacedSpec(
        targets=[_host_and_port(url) for url in targets],
        requests=requests,
        rate=rate,
        seconds=seconds,
        connections=connections,
        records_path=str(records_path or ""),
    )
    with tempfile.NamedTemporaryFile(suffix=".json") as spec_file:
        spec_file.write(msgspec.json.encode(spec))
        spec_file.flush()
        meter = Meter(servers, postgres)
        command = [sys.executable, "-m", "bench.paced", spec_file.name]
        text, cpu = run_process(command, {}, "bench.paced")
        usage = meter.usage(cpu)
    summary = msgspec.json.decode(text.strip().splitlines()[-1], type=PacedSummary)
    succeeded = sum(count for status, count in summary.statuses.items() if 200 <= status < 300)
    result = LoadResult(
        requests=summary.answered,
        seconds=summary.seconds,
        p50_ms=summary.p50_ms,
        p99_ms=summary.p99_ms,
        refused=summary.answered - succeeded,
        unanswered=summary.sent - summary.answered,
        usage=usage,
    )
    return result, summary


def _host_and_port(base_url: str) -> tuple[str, int]:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)
