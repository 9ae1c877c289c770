"""A bounded write load on a served API: workers that create a task, then change it with one
command that appends three events (an update, a reassignment and a completion). Each request
carries its own x-request-id, which the log records with every event the request appends."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

CREATE = {"title": "Written under load"}
CHANGE = {"title": "Changed under load", "ownerId": "agent_9", "status": "completed"}


@dataclass(frozen=True)
class Sent:
    """A command sent, how many events it appends when it succeeds, and its answer (status
    None: no answer came)."""

    request_id: str
    events: int
    sent_at: float
    answered_at: float
    status: int | None = None
    retry_after: str | None = None
    error_code: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class WriteLoad:
    url: str
    api_key: str
    sent: list[Sent] = field(default_factory=list)
    answered: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def run(
        self, workers: int, stop: asyncio.Event, seconds: float, per_worker: int = sys.maxsize
    ) -> None:
        """Until `stop` is set, `seconds` have passed or each worker sent `per_worker`. A test
        that asserts what is sent late in its run leaves `per_worker` unbounded: a fast server
        would otherwise finish its quota before the test's last phase began."""
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=workers)
        async with httpx.AsyncClient(base_url=self.url, timeout=15, limits=limits) as client:
            await asyncio.gather(
                *(self._work(client, stop, deadline, per_worker) for _ in range(workers))
            )

    def acknowledged(self) -> list[Sent]:
        return [sent for sent in self.sent if sent.acknowledged]

    async def until_acknowledged(self, count: int) -> None:
        async with self.answered:
            await self.answered.wait_for(lambda: len(self.acknowledged()) >= count)

    async def _work(
        self, client: httpx.AsyncClient, stop: asyncio.Event, deadline: float, requests: int
    ) -> None:
        while requests > 0 and not stop.is_set() and time.monotonic() < deadline:
            created = await self.send(client, "POST", "/v1/tasks", CREATE, events=1)
            requests -= 1
            if created is not None and created.status_code == 201 and requests > 0:
                task_id = created.json()["task"]["_id"]
                await self.send(client, "PATCH", f"/v1/tasks/{task_id}", CHANGE, events=3)
                requests -= 1
            elif created is None or created.status_code >= 500:
                await asyncio.sleep(0.05)  # the server is down: do not spin

    async def send(
        self, client: httpx.AsyncClient, method: str, path: str, body: Any, events: int
    ) -> httpx.Response | None:
        request_id = f"fault-{uuid.uuid4().hex}"
        headers = {"x-tenant-api-key": self.api_key, "x-request-id": request_id}
        sent_at = time.monotonic()
        try:
            response = await client.request(method, path, json=body, headers=headers)
        except httpx.TransportError:
            await self._record(Sent(request_id, events, sent_at, time.monotonic()))
            return None
        error = response.json().get("error", {}) if response.status_code >= 400 else {}
        answer = Sent(
            request_id,
            events,
            sent_at,
            time.monotonic(),
            response.status_code,
            response.headers.get("retry-after"),
            error.get("code"),
        )
        await self._record(answer)
        return response

    async def _record(self, sent: Sent) -> None:
        async with self.answered:
            self.sent.append(sent)
            self.answered.notify_all()
