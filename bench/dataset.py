"""The benchmark's tasks: made by the domain's own `create` rule, so the events are exactly what
the API would have appended, loaded with COPY. The projections are then made by rebuilding
them from these events (and that rebuild is measured).

Each task's title and description hold three of WORDS, drawn without replacement: each word is
in 3/20 = 15% of a tenant's tasks, the share a common search word is measured at, and the
loader counts them so the search's `total` can be checked exactly."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from app.ids import new_id
from domain import decide
from domain.commands import CreateTask
from domain.events import event_type
from projections.log import payload_version

WORDS = [
    "invoice",
    "renewal",
    "callback",
    "onboarding",
    "refund",
    "shipment",
    "contract",
    "demo",
    "upgrade",
    "escalation",
    "billing",
    "password",
    "outage",
    "survey",
    "meeting",
    "quote",
    "delivery",
    "warranty",
    "feedback",
    "migration",
]
STATUSES = ("not_started", "in_progress", "pending", "completed", "deferred")
STATUS_WEIGHTS = (40, 20, 10, 25, 5)
PRIORITIES = ("low", "normal", "high", "urgent")
OWNERS = 50
CUSTOMERS = 2_000
CREATED_OVER_DAYS = 120
ROWS_PER_COPY = 20_000

EVENT_COLUMNS = (
    "tenant_id",
    "stream_id",
    "stream_version",
    "event_type",
    "payload_version",
    "data",
    "metadata",
    "recorded_at",
)


@dataclass(slots=True)
class LoadedTenant:
    """What the loader made for a tenant: (id, status) of each task, and how many of its
    tasks hold each word in their title or description."""

    tasks: list[tuple[str, str]] = field(default_factory=list)
    word_counts: Counter[str] = field(default_factory=Counter)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def task_command(rng: random.Random, now: datetime) -> CreateTask:
    """A task as a CRM would create it: an owner, a customer, a due date around now."""
    owner = rng.randrange(OWNERS)
    words = rng.sample(WORDS, 3)
    fields: dict[str, Any] = {
        "title": f"{words[0].capitalize()} {words[1]} for customer {rng.randrange(CUSTOMERS)}",
        "description": f"Follow up on the {words[2]} discussed on the last call",
        "priority": rng.choice(PRIORITIES),
        "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
        "dueDate": (now + timedelta(hours=rng.randrange(-24 * 60, 24 * 60))).isoformat(),
        "ownerId": f"agent_{owner:03d}",
        "ownerName": f"Agent {owner}",
        "relatedCustomerId": f"cust_{rng.randrange(CUSTOMERS)}",
        "tags": [words[0]],
    }
    return msgspec.convert(fields, CreateTask, from_attributes=False, strict=False)


def tenant_events(
    tenant_id: str, count: int, seed: int, now: datetime
) -> Iterator[tuple[str, str, list[str], list[tuple[Any, ...]]]]:
    """Per task: its id, its status, the words of its text, and its events as COPY
    records."""
    rng = random.Random(seed)
    metadata = _json({"actor": "bench-loader", "requestId": "bench", "correlationId": "bench"})
    for _ in range(count):
        created = now - timedelta(seconds=rng.randrange(CREATED_OVER_DAYS * 86_400))
        command = task_command(rng, created)
        task_id = new_id()
        events = decide.create(command, task_id, created)
        records = []
        for version, event in enumerate(events, start=1):
            name = event_type(event)
            record = (tenant_id, task_id, version, name, payload_version(name), _json(event))
            records.append((*record, metadata, created))
        status = "completed" if len(events) > 1 else str(command.status or "not_started")
        text = f"{command.title} {command.description}".lower()
        yield task_id, status, [word for word in WORDS if word in text], records


async def load_tenant(
    conn: asyncpg.Connection, tenant_id: str, count: int, seed: int
) -> LoadedTenant:
    """COPY the events of `count` new tasks of a tenant."""
    now = datetime.now(UTC).replace(microsecond=0)
    loaded = LoadedTenant()
    events: list[tuple[Any, ...]] = []
    for task_id, status, words, records in tenant_events(tenant_id, count, seed, now):
        events.extend(records)
        loaded.tasks.append((task_id, status))
        loaded.word_counts.update(words)
        if len(events) >= ROWS_PER_COPY:
            await _copy(conn, events)
            events = []
    if events:
        await _copy(conn, events)
    return loaded


async def _copy(conn: asyncpg.Connection, events: list[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
