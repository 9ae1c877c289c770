"""The requests' deadline: a request that has not begun its answer within the request timeout
is cancelled.

One timer for all the requests in flight rather than one each (asyncio.timeout): on uvloop a
timer is a libuv handle opened, started, stopped and closed, which cost a request more than
the rest of the exchange's work together. The check runs every `seconds / 20` (at most every
CHECK_AT_MOST_SECONDS) while any request is in flight, so a request is cut at most that late,
never early."""

from __future__ import annotations

import asyncio
import time

CHECK_AT_MOST_SECONDS = 0.25


class Deadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._check_every = min(seconds / 20, CHECK_AT_MOST_SECONDS)
        # Each task in flight, by the moment it must have begun its answer.
        self._due: dict[asyncio.Task[object], float] = {}
        self._cut: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def start(self, task: asyncio.Task[object]) -> None:
        """The task's request has begun: its deadline runs."""
        self._due[task] = time.monotonic() + self.seconds
        loop = task.get_loop()
        # A timer of a loop that has since closed (an app served again on a new loop) is gone.
        if self._timer is None or self._timer_loop is not loop:
            self._timer_loop = loop
            self._timer = loop.call_later(self._check_every, self._check)

    def answering(self, task: asyncio.Task[object]) -> None:
        """The task's answer has begun: cutting it short now would only corrupt it."""
        self._due.pop(task, None)

    def done(self, task: asyncio.Task[object]) -> None:
        self._due.pop(task, None)
        self._cut.discard(task)

    def was_cut(self, task: asyncio.Task[object]) -> bool:
        """Whether the task's cancellation was its deadline's (then taken back, as
        asyncio.timeout does, so the task can answer), rather than anyone else's."""
        if task not in self._cut:
            return False
        self._cut.discard(task)
        task.uncancel()
        return True

    def _check(self) -> None:
        now = time.monotonic()
        for task, due in list(self._due.items()):
            if due <= now:
                del self._due[task]
                self._cut.add(task)
                task.cancel()
        self._timer = None
        if self._due and self._timer_loop is not None:
            self._timer = self._timer_loop.call_later(self._check_every, self._check)
