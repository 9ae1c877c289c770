"""A request that has not begun its answer within the request timeout is cancelled and answered
503 with Retry-After. A command cancelled that way rolls back with its transaction, unless it
had already committed, so a client retries it with the same Idempotency-Key."""

from __future__ import annotations

import asyncio

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.http.errors import ApiError, send_error, service_unavailable


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.seconds) as deadline:

                async def send_once_answering(message: Message) -> None:
                    # Once the answer has begun, cutting it short would only corrupt it.
                    if message["type"] == "http.response.start":
                        deadline.reschedule(None)
                    await send(message)

                await self.app(scope, receive, send_once_answering)
        except TimeoutError:
            if deadline.expired():
                await send_error(self._timed_out(), scope, receive, send)
                return
            raise

    def _timed_out(self) -> ApiError:
        seconds = f"{self.seconds:g}"
        return service_unavailable(f"The request took longer than {seconds} s; retry shortly")
