"""uvicorn's HTTP protocol with a response's head and body sent in one write.

uvicorn writes a response's status line and headers as soon as the app starts the response,
then its body: two `send` calls on the socket for every answer. On loopback a send runs the
receiver's side of TCP as well, and writes were the largest share of a worker's CPU under
load (37% of its samples during PATCHes at 64 connections). Here the transport holds a write
until the next, and sends the two as one: an answer's head and body, written one right after
the other, leave together, and nothing waits longer than the event loop's turn. Side by side,
three alternating rounds at 64 connections, the servers' CPU per request: PATCH 0.80-0.83 ->
0.64-0.69 ms, GET 0.25-0.28 -> 0.24-0.26 ms (the request rates moved within the rounds'
spread, PostgreSQL's CPU bounding them).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class JoinedWrites:
    """A transport that holds a write until the next one, which it sends joined to it, or
    until the event loop's next turn; everything else is the wrapped transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            # An answer's body, right behind its head: sent now, not a turn later.
            self._transport.write(self._held + data)
            self._held = None

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            # A connection the peer closed meanwhile takes no more writes (uvloop raises).
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through JoinedWrites."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        super().connection_made(JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
