"""An open-loop load: requests sent at a fixed rate whatever the server does, each at its due
time, and its latency timed from that due time. A closed-loop generator (wrk) waits for an
answer before it sends the next request, so a server that stalls is sent less and its stall is
timed once ("coordinated omission"); here a request that could not even be sent on time, every
connection being busy, is late by exactly what a client would have waited.

Runs in a process of its own (uvloop, httptools' parser, keep-alive connections opened before
the clock starts), so its CPU is measured apart, as wrk's is. Request i goes to target
i mod the number of targets, so two servers share a load evenly. (wrk2, which paces wrk, is
not in Debian's packages; autocannon's fixed rate, tried beside this at the same rates, used
as much CPU and times whole milliseconds from each send rather than from its due time.)

usage: python -m bench.paced SPEC.json  (prints one line: the summary as JSON)"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import cast

import httptools
import msgspec
import uvloop

TIMER_SECONDS = 0.001
# A request not answered this long after the last was due is counted unanswered.
GRACE_SECONDS = 10.0


class PacedSpec(msgspec.Struct):
    # (host, port) of each server.
    targets: list[tuple[str, int]]
    # Raw HTTP/1.1 requests, sent in turn, over and over.
    requests: list[str]
    rate: float
    seconds: float
    # Keep-alive connections to each target.
    connections: int
    # Where to write each request's (due, sent, answered, status), times in seconds from
    # the first due time; none when empty.
    records_path: str = ""


class PacedSummary(msgspec.Struct):
    sent: int
    answered: int
    statuses: dict[int, int]
    # From each request's due time to its answer; None when none was answered.
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    # How late this generator itself sent its requests (a busy connection included).
    late_p99_ms: float | None
    seconds: float


def render(method: str, path: str, api_key: str, body: str | None = None) -> str:
    """A request as the generator sends it."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"x-tenant-api-key: {api_key}"]
    if body is not None:
        encoded = body.encode()
        lines += ["content-type: application/json", f"content-length: {len(encoded)}"]
    return "\r\n".join(lines) + "\r\n\r\n" + (body or "")


Record = tuple[float, float, float, int]
# The loop's own clock is uvloop's, cached per turn of the loop in whole milliseconds.
clock = time.perf_counter


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a target, one request in flight: it tells the generator
    when the answer is in, from its parser's callback (no task or future per request, which
    would cost this process more than the server's answer)."""

    def __init__(self, generator: _Generator, target: int) -> None:
        self._generator = generator
        self.target = target
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        # The request in flight: its number, due time and sending time.
        self.in_flight: tuple[int, float, float] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport's subclasses, but are one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._generator.lost(self)

    def on_message_complete(self) -> None:
        self._generator.answered(self, self._parser.get_status_code())

    def send(self, number: int, due: float, request: bytes) -> None:
        assert self._transport is not None
        self.in_flight = (number, due, clock())
        self._transport.write(request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _Generator:
    """Sends request `number` at its due time on a free connection to its target, or as soon
    as one is free, and records when each is answered."""

    def __init__(self, spec: PacedSpec) -> None:
        self._spec = spec
        self._requests = [request.encode() for request in spec.requests]
        self._free: list[deque[_Connection]] = [deque() for _ in spec.targets]
        self._waiting: list[deque[tuple[int, float]]] = [deque() for _ in spec.targets]
        self._all: set[_Connection] = set()
        self.total = max(1, round(spec.rate * spec.seconds))
        self.start = 0.0
        self.records: list[Record] = []
        self.late: list[float] = []
        self.finished = asyncio.Event()

    async def connect(self) -> None:
        await asyncio.gather(
            *(
                self._connect(target)
                for target in range(len(self._spec.targets))
                for _ in range(self._spec.connections)
            )
        )

    async def _connect(self, target: int) -> None:
        host, port = self._spec.targets[target]
        _, connection = await asyncio.get_running_loop().create_connection(
            lambda: _Connection(self, target), host, port
        )
        self._all.add(connection)
        self._ready(connection)

    async def send_all(self) -> None:
        rate = self._spec.rate
        self.start = clock() + 0.05
        sent = 0
        while sent < self.total:
            now = clock()
            # Everything due by now goes out; then sleep until the next is due.
            while sent < self.total and self.start + sent / rate <= now:
                self._send(sent, self.start + sent / rate)
                sent += 1
            if sent < self.total:
                # uvloop's timers count whole milliseconds: a shorter sleep would spin.
                await asyncio.sleep(max(TIMER_SECONDS, self.start + sent / rate - clock()))

    def _send(self, number: int, due: float) -> None:
        target = number % len(self._spec.targets)
        if self._free[target]:
            self._start(self._free[target].popleft(), number, due)
        else:
            self._waiting[target].append((number, due))

    def _start(self, connection: _Connection, number: int, due: float) -> None:
        connection.send(number, due, self._requests[number % len(self._requests)])
        self.late.append(clock() - due)

    def answered(self, connection: _Connection, status: int) -> None:
        self._record(connection, status)
        self._ready(connection)

    def lost(self, connection: _Connection) -> None:
        self._all.discard(connection)
        if connection.in_flight is not None:
            self._record(connection, 0)
        if not self.finished.is_set():
            asyncio.get_running_loop().create_task(self._connect(connection.target))

    def _record(self, connection: _Connection, status: int) -> None:
        assert connection.in_flight is not None
        _, due, sent = connection.in_flight
        connection.in_flight = None
        start = self.start
        self.records.append((due - start, sent - start, clock() - start, status))
        if len(self.records) == self.total:
            self.finished.set()

    def _ready(self, connection: _Connection) -> None:
        waiting = self._waiting[connection.target]
        if waiting:
            self._start(connection, *waiting.popleft())
        else:
            self._free[connection.target].append(connection)

    def close(self) -> None:
        self.finished.set()
        for connection in list(self._all):
            connection.close()


async def run(spec: PacedSpec) -> tuple[PacedSummary, list[Record]]:
    """The load `spec` asks for: its summary, and each request's record."""
    generator = _Generator(spec)
    await generator.connect()
    gc.collect()
    gc.freeze()
    await generator.send_all()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(generator.finished.wait(), GRACE_SECONDS)
    generator.close()
    summary = _summary(generator.total, generator.records, generator.late, spec.seconds)
    return summary, generator.records


def _summary(sent: int, records: list[Record], late: list[float], seconds: float) -> PacedSummary:
    answered = [(done - due) * 1000 for due, _, done, status in records if status]
    return PacedSummary(
        sent=sent,
        answered=len(answered),
        statuses=dict(Counter(status for *_, status in records if status)),
        p50_ms=_percentile(answered, 50),
        p99_ms=_percentile(answered, 99),
        max_ms=max(answered, default=None),
        late_p99_ms=_percentile([each * 1000 for each in late], 99),
        seconds=seconds,
    )


def _percentile(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def main() -> None:
    spec = msgspec.json.decode(Path(sys.argv[1]).read_bytes(), type=PacedSpec)
    summary, records = uvloop.run(run(spec))
    if spec.records_path:
        Path(spec.records_path).write_bytes(msgspec.json.encode(records))
    print(msgspec.json.encode(summary).decode())


if __name__ == "__main__":
    main()
