"""`tasks-api serve` in a child process on a free 127.0.0.1 port, as an operator runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

STARTUP_SECONDS = 30
STOP_SECONDS = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_running(pid: int) -> bool:
    """Whether the process runs: a zombie waiting for its parent to reap it has exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class ServedApi:
    """The API served on `url` from `database_url` until it is killed or the block ends."""

    def __init__(
        self, database_url: str, log: Path, *, workers: int = 1, **environment: str
    ) -> None:
        self.database_url = database_url
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.environment = environment
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = Path(sys.executable).with_name("tasks-api")
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "TASKS_LOG_LEVEL": "warning",
            **self.environment,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(str(command), "serve", "--host", "127.0.0.1", "--port", str(self.port)),
                    *("--workers", str(self.workers)),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_serving()

    def kill(self) -> None:
        """SIGKILL: no cleanup, no response to anything in flight."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_SECONDS)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()

    def _wait_until_serving(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/schema/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not serve within {STARTUP_SECONDS} s")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
