"""The /v1/tasks API as one tenant sees it: the calls tests build their state with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from litestar.testing import AsyncTestClient

from tests.conftest import Tenant

RFC3339_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
# Every field of the reference's Task Object table.
TASK_OBJECT_FIELDS = {
    "_id",
    "title",
    "titleType",
    "description",
    "status",
    "priority",
    "outcome",
    "dueDate",
    "completedAt",
    "ownerId",
    "ownerName",
    "queueId",
    "claimStatus",
    "claimedAt",
    "claimedBy",
    "relatedCustomerId",
    "relatedCustomerName",
    "relatedConversationId",
    "collaboratorIds",
    "completionNotes",
    "tags",
    "metadata",
    "linkedEntity",
    "autoComplete",
    "agentReminders",
    "snoozedUntil",
    "snoozeCount",
    "created_at",
    "updated_at",
}


@dataclass(frozen=True)
class TaskApi:
    client: AsyncTestClient
    tenant: Tenant

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A raw request with the tenant's key, for tests that look at the status code."""
        headers = {**self.tenant.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def create(self, **fields: Any) -> dict[str, Any]:
        """A new task; the title defaults so that tests name only what they care about."""
        response = await self.call("POST", "/v1/tasks", json={"title": "A task", **fields})
        assert response.status_code == 201, response.text
        return response.json()["task"]

    async def get(self, task_id: str) -> dict[str, Any]:
        response = await self.call("GET", f"/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def act(self, task_id: str, action: str, body: Any = None) -> dict[str, Any]:
        """POST complete, snooze or reassign, expecting success; the response body."""
        response = await self.call("POST", f"/v1/tasks/{task_id}/{action}", json=body or {})
        assert response.status_code == 200, response.text
        return response.json()

    async def update(self, method: str, task_id: str, body: Any) -> dict[str, Any]:
        """PUT or PATCH expecting success; the task afterwards."""
        response = await self.call(method, f"/v1/tasks/{task_id}", json=body)
        assert response.status_code == 200, response.text
        return response.json()["task"]

    async def events(self, task_id: str) -> list[dict[str, Any]]:
        response = await self.call("GET", f"/v1/tasks/{task_id}/events")
        assert response.status_code == 200, response.text
        return response.json()

    async def event_types(self, task_id: str) -> list[str]:
        return [event["type"] for event in await self.events(task_id)]

    async def list(self, path: str = "/v1/tasks", **params: Any) -> dict[str, Any]:
        response = await self.call("GET", path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def titles(self, path: str = "/v1/tasks", **params: Any) -> list[str]:
        """The titles on one page of a list, in order."""
        return [task["title"] for task in (await self.list(path, **params))["tasks"]]


def timestamp(moment: datetime) -> str:
    """A time as the API writes it."""
    return msgspec.json.encode(moment.astimezone(UTC)).decode().strip('"')


def moment(text: str) -> datetime:
    """A time the API wrote."""
    return msgspec.convert(text, datetime)


def now() -> datetime:
    return datetime.now(UTC)
