"""uvicorn's worker processes, each accepting connections on a listening socket of its own.

uvicorn's supervisor binds one socket and hands it to every worker, which then race to accept
from its one queue: whichever worker is idle at that instant takes the connection, so clients
that open their connections together (a pool, a proxy, a load generator) land mostly on one
worker. 64 connections opened at once gave one of two workers 3.55 s of CPU and the other
0.53 s in the same 10 s, and the busy one's queue made the tail of every request it held.

Here each worker listens on a socket of its own bound to the same address with SO_REUSEPORT,
and the kernel spreads new connections over the workers by a hash of their addresses. The
supervisor binds the address too, so that a port in use is an error before any worker starts,
but never listens on it: a socket joins the address's group when it listens, so the
supervisor's takes no connections. (Only sockets of the same user can join the group.)
"""

from __future__ import annotations

import logging
import socket
from typing import Any, TypeVar

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

logger = logging.getLogger("uvicorn.error")

S = TypeVar("S", bound=socket.socket)


def run(**options: Any) -> None:
    """uvicorn.run with these options, its workers (when more than one) each on a socket of
    its own."""
    if options.get("workers", 1) == 1:
        uvicorn.run(**options)
        return
    config = uvicorn.Config(**options)
    try:
        address = SharedAddress.reserve(config.host, config.port)
    except OSError as error:
        logger.error(error)
        raise SystemExit(STARTUP_FAILURE) from None
    logger.info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit), a socket per worker",
        *address.getsockname()[:2],
    )
    with address:
        Multiprocess(config, sockets=[address]).run()


class SharedAddress(socket.socket):
    """The supervisor's socket, bound and never listening, that each worker receives (the
    supervisor pickles the sockets it hands to a worker) as a socket of its own bound to the
    same address."""

    @classmethod
    def reserve(cls, host: str, port: int) -> SharedAddress:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Bound first without SO_REUSEPORT, which fails while anything holds the address:
        # another server started with this option included, which would share it silently.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            address = probe.getsockname()
        return _reusing_port(cls(family, socket.SOCK_STREAM), address)

    def __reduce__(self) -> tuple[Any, ...]:
        return _socket_of_its_own, (self.family, self.getsockname())


def _socket_of_its_own(family: socket.AddressFamily, address: tuple[Any, ...]) -> socket.socket:
    return _reusing_port(socket.socket(family, socket.SOCK_STREAM), address)


def _reusing_port(sock: S, address: tuple[Any, ...]) -> S:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
