"""An answer sent as it stands, as the hot routes give it: its status, its JSON body and its
ETag in two ASGI messages. Litestar's response classes take a read a fifth of its CPU to say
the same; the exchange (app/http/exchange.py) adds the request id and the RateLimit fields."""

from __future__ import annotations

from litestar.status_codes import HTTP_304_NOT_MODIFIED
from litestar.types import Message, Receive, Scope, Send

from app.http.idempotency import REPLAYED_HEADER
from app.idempotency import Answer

_REPLAYED = (REPLAYED_HEADER.lower().encode(), b"true")
_JSON = (b"content-type", b"application/json")


class Answered:
    """An ASGI app that sends one answer: what a route handler returns on the hot paths."""

    __slots__ = ("_body", "_start")

    def __init__(self, answer: Answer) -> None:
        headers = []
        if answer.status_code != HTTP_304_NOT_MODIFIED:
            headers += [_JSON, (b"content-length", str(len(answer.body)).encode())]
        if answer.etag is not None:
            headers.append((b"etag", answer.etag.encode()))
        if answer.replayed:
            headers.append(_REPLAYED)
        self._start: Message = {
            "type": "http.response.start",
            "status": answer.status_code,
            "headers": headers,
        }
        self._body: Message = {"type": "http.response.body", "body": answer.body}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(self._start)
        await send(self._body)
