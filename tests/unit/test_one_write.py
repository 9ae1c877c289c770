"""The served protocol's transport: a write leaves joined to the next, or at the event loop's
next turn, in order, and nothing written is lost on close."""

from __future__ import annotations

import asyncio
from typing import Any

from app.http.one_write import JoinedWrites


class Socket:
    """The transport under JoinedWrites: what reached the socket, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name)


def joined() -> tuple[JoinedWrites, Socket]:
    socket = Socket()
    return JoinedWrites(socket, asyncio.get_running_loop()), socket  # type: ignore[arg-type]


async def test_a_head_and_the_body_behind_it_leave_in_one_write_at_once() -> None:
    transport, socket = joined()

    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert socket.writes == []
    transport.write(b"body")

    assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    await asyncio.sleep(0)
    assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


async def test_a_write_with_none_behind_it_leaves_at_the_loops_next_turn() -> None:
    transport, socket = joined()

    transport.write(b"one")
    transport.write(b"two")
    transport.write(b"three")
    await asyncio.sleep(0)
    transport.write(b"four")
    await asyncio.sleep(0)

    assert socket.writes == [b"onetwo", b"three", b"four"]


async def test_closing_sends_what_is_held_first() -> None:
    transport, socket = joined()

    transport.write(b"last words")
    transport.close()

    assert (socket.writes, socket.closed) == ([b"last words"], True)
    await asyncio.sleep(0)
    assert socket.writes == [b"last words"]


async def test_what_is_held_when_the_peer_closes_is_dropped_as_the_transport_would() -> None:
    transport, socket = joined()

    transport.write(b"too late")
    socket.close()
    await asyncio.sleep(0)

    assert socket.writes == []


async def test_everything_else_is_the_wrapped_transports() -> None:
    transport, _ = joined()

    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
