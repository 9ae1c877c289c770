"""The API as production runs it: `tasks-api serve` in its own processes, watched for memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType

import psutil

from bench.cpu import tree_cpu_seconds
from bench.database import tasks_api

READY_SECONDS = 60
SAMPLE_SECONDS = 0.2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """`tasks-api serve --workers N` on a free port, with the peak RSS of each of its
    processes sampled from start to stop."""

    def __init__(self, database_url: str, workers: int, log_path: Path) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.peak_rss: dict[int, int] = {}
        self._env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TASKS_BENCH_ROUTES": "1",
        }
        self._log_path = log_path
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Server:
        log = self._log_path.open("ab")
        command = [tasks_api(), "serve", "--port", str(self.port), "--workers", str(self.workers)]
        self._process = subprocess.Popen(command, env=self._env, stdout=log, stderr=log)
        self._wait_until_ready()
        self._sampler.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tasks-api serve exited; see {self._log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/bench/constant-task", timeout=1):
                    pass
                # Every worker must be up, not just the first to answer.
                if self.workers == 1 or len(self.processes()) > self.workers:
                    time.sleep(2)
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"tasks-api serve did not answer in {READY_SECONDS} s")

    def _sample(self) -> None:
        while not self._stop.is_set():
            for process in self.worker_processes():
                try:
                    rss = process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                self.peak_rss[process.pid] = max(rss, self.peak_rss.get(process.pid, 0))
            self._stop.wait(SAMPLE_SECONDS)
