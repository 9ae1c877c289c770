"""The servers under load, each in processes of its own on a free port, watched for memory:
the API as production runs it (`tasks-api serve`), and the bare Litestar app beside it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType

import psutil

from bench.bare_app import PATH as CONSTANT_PATH
from bench.cpu import tree_cpu_seconds
from bench.database import tasks_api

READY_SECONDS = 60
SAMPLE_SECONDS = 0.2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """`command` serving on a free port with `workers` processes, with the peak RSS of each of
    its processes sampled from start to stop. Ready once the constant task answers."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], workers: int, log_path: Path
    ) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.peak_rss: dict[int, int] = {}
        self._command = [*command, "--port", str(self.port), "--workers", str(workers)]
        self._env = {**os.environ, **env}
        self._log_path = log_path
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Server:
        self.start()
        self.wait_until_ready()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(self._command, env=self._env, stdout=log, stderr=log)

    def stop(self) -> None:
        if self._process is None or self._stop.is_set():
            return
        self._stop.set()
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._sampler.is_alive():
            self._sampler.join()

    def processes(self) -> list[psutil.Process]:
        assert self._process is not None
        try:
            root = psutil.Process(self._process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that serve requests: uvicorn's workers, or the one process."""
        everything = self.processes()
        return everything[1:] if len(everything) > 1 else everything

    def cpu_seconds(self) -> float:
        assert self._process is not None
        try:
            return tree_cpu_seconds(psutil.Process(self._process.pid))
        except psutil.NoSuchProcess:
            return 0.0

    def peak_worker_rss(self) -> int:
        return max(self.peak_rss.values(), default=0)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self._log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}{CONSTANT_PATH}", timeout=1):
                    pass
                # Every worker must be up, not just the first to answer.
                if self.workers == 1 or len(self.processes()) > self.workers:
                    time.sleep(2)
                    self._sampler.start()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer in {READY_SECONDS} s")

    def _sample(self) -> None:
        while not self._stop.is_set():
            for process in self.worker_processes():
                try:
                    rss = process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                self.peak_rss[process.pid] = max(rss, self.peak_rss.get(process.pid, 0))
            self._stop.wait(SAMPLE_SECONDS)


@contextmanager
def serving(*servers: Server) -> Iterator[None]:
    """Every server started at once, then each waited for; all stopped when the block ends."""
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start()
        for server in servers:
            server.wait_until_ready()
        yield


def api_server(
    database_url: str,
    workers: int,
    log_path: Path,
    redis_url: str | None = None,
    run_projections: bool = True,
    settings: dict[str, str] | None = None,
) -> Server:
    """`tasks-api serve`, the real command, with the constant route added; its rate limits
    counted in Redis at `redis_url`, else in PostgreSQL (the default); with these `settings`
    beside (TASKS_CELLS, NATS_URL…)."""
    env = {
        "DATABASE_URL": database_url,
        "TASKS_BENCH_ROUTES": "1",
        "TASKS_RUN_PROJECTIONS": "true" if run_projections else "false",
        # One cell and no relay unless `settings` say so, whatever the bench's own
        # environment says (an empty setting is an unset one).
        "TASKS_CELLS": "",
        "NATS_URL": "",
        **(settings or {}),
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    else:
        # The default, whatever the bench's own environment says.
        env["REDIS_URL"] = ""
    store = "Redis" if redis_url else "PostgreSQL"
    return Server(
        f"tasks-api serve (rate limits in {store})",
        [tasks_api(), "serve"],
        env,
        workers,
        log_path,
    )


def bare_server(workers: int, log_path: Path) -> Server:
    """bench/bare_app.py on uvicorn, configured as `tasks-api serve` runs it."""
    command = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1"]
    return Server(
        "the bare Litestar app",
        [*command, "--no-access-log", "--log-level", "warning"],
        {},
        workers,
        log_path,
    )
