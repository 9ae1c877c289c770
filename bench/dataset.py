"""The benchmark's tasks: made by the domain's own `create` rule, so the events and the task
view rows are exactly what the API would have written, then loaded with COPY."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from app.ids import new_id
from domain import decide
from domain.commands import CreateTask
from domain.events import event_type
from domain.evolve import evolve
from projections.log import payload_version
from projections.task_view import row_of

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
        "dueDate": now + timedelta(hours=rng.randrange(-24 * 60, 24 * 60)),
        "ownerId": f"agent_{owner:03d}",
        "ownerName": f"Agent {owner}",
        "relatedCustomerId": f"cust_{rng.randrange(CUSTOMERS)}",
        "tags": [words[0]],
    }
    return msgspec.convert(fields, CreateTask, from_attributes=False, strict=False)


def tenant_rows(
    tenant_id: str, count: int, seed: int, now: datetime
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]], list[Any]]]:
    """Per task: its task_view row and its events as COPY records, and its id."""
    rng = random.Random(seed)
    metadata = _json({"actor": "bench-loader", "requestId": "bench", "correlationId": "bench"})
    for _ in range(count):
        created = now - timedelta(seconds=rng.randrange(CREATED_OVER_DAYS * 86_400))
        command = task_command(rng, created)
        task_id = new_id()
        events = decide.create(command, task_id, created)
        task = None
        records = []
        for version, event in enumerate(events, start=1):
            task = evolve(task, event, created)
            name = event_type(event)
            records.append(
                (
                    tenant_id,
                    task_id,
                    version,
                    name,
                    payload_version(name),
                    _json(event),
                    metadata,
                    created,
                )
            )
        assert task is not None
        row = row_of(tenant_id, len(events), task)
        yield (
            tuple(_json(v) if isinstance(v, dict | list) else v for v in row.values()),
            records,
            [task_id, task.status],
        )


def view_columns() -> list[str]:
    rng = random.Random(0)
    now = datetime.now(UTC)
    task = evolve(None, decide.create(task_command(rng, now), new_id(), now)[0], now)
    assert task is not None
    return list(row_of("t", 1, task))


async def load_tenant(
    conn: asyncpg.Connection, tenant_id: str, count: int, seed: int
) -> list[tuple[str, str]]:
    """COPY `count` tasks of a tenant into the events and the task view; (id, status) of each."""
    now = datetime.now(UTC).replace(microsecond=0)
    columns = view_columns()
    tasks: list[tuple[str, str]] = []
    views: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    for view, records, (task_id, status) in tenant_rows(tenant_id, count, seed, now):
        views.append(view)
        events.extend(records)
        tasks.append((task_id, status))
        if len(views) >= ROWS_PER_COPY:
            await _copy(conn, columns, views, events)
            views, events = [], []
    if views:
        await _copy(conn, columns, views, events)
    return tasks


async def _copy(
    conn: asyncpg.Connection,
    columns: list[str],
    views: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
) -> None:
    async with conn.transaction():
        await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
        await conn.copy_records_to_table("task_view", records=views, columns=columns)
