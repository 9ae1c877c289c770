"""HTTP load from wrk, a process of its own: requests/s, latency percentiles, errors, and
how much CPU wrk itself used, to show it had capacity to spare, beside what the server and
PostgreSQL used."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psutil

from bench.cpu import tree_cpu_seconds
from bench.plan import Plan
from bench.server import Server

LUA = Path(__file__).with_name("lua")


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    # CPU seconds per wall second: wrk's own, the server's processes' and PostgreSQL's.
    wrk_cpu: float
    server_cpu: float
    postgres_cpu: float

    def cpu_ms_per_request(self, cpu: float) -> float:
        return 1000 * cpu / self.requests_per_second if self.requests_per_second else 0.0


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
    server: Server,
    postgres: psutil.Process,
    plan: Plan,
    script: str,
    path: str,
    env: dict[str, str],
    seconds: float | None = None,
) -> LoadResult:
    """Load `path` through bench/lua/<script>.lua at the plan's concurrency."""
    seconds = plan.seconds if seconds is None else seconds
    command = [
        ensure_wrk(),
        f"-t{plan.wrk_threads}",
        f"-c{plan.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA / f"{script}.lua"),
        f"{server.base_url}{path}",
    ]
    with tempfile.TemporaryFile() as out:
        server_cpu_before = server.cpu_seconds()
        postgres_cpu_before = tree_cpu_seconds(postgres)
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "BENCH_LUA": str(LUA)},
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        server_cpu = server.cpu_seconds() - server_cpu_before
        postgres_cpu = tree_cpu_seconds(postgres) - postgres_cpu_before
        out.seek(0)
        text = out.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed on {path}:\n{text}")
    lines = [line for line in text.splitlines() if line.startswith("BENCH ")]
    if not lines:
        raise RuntimeError(f"wrk printed no summary for {path}:\n{text}")
    summary = msgspec.json.decode(lines[-1].removeprefix("BENCH "), type=WrkSummary)
    duration = summary.duration_us / 1e6
    errors = summary.connect + summary.read + summary.write + summary.status + summary.timeout
    return LoadResult(
        requests_per_second=summary.requests / duration,
        p50_ms=summary.p50_us / 1000,
        p99_ms=summary.p99_us / 1000,
        requests=summary.requests,
        errors=errors,
        wrk_cpu=(usage.ru_utime + usage.ru_stime) / wall,
        server_cpu=server_cpu / wall,
        postgres_cpu=postgres_cpu / wall,
    )
