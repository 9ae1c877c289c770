"""The task: its vocabulary and the state that events fold into."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

# The limits every reference to another record, and every name, keeps to.
Id = Annotated[str, Meta(min_length=1, max_length=200)]
Name = Annotated[str, Meta(max_length=200)]


class TitleType(StrEnum):
    FOLLOWUP = "followup"
    CALLBACK = "callback"
    MEETING = "meeting"
    SUPPORT = "support"
    OTHER = "other"


class Status(StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    COMPLETED = "completed"
    DEFERRED = "deferred"


class Priority(StrEnum):
    """From least to most urgent: low, normal, high, urgent; lists sort in this order."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Outcome(StrEnum):
    RESOLVED = "resolved"
    NO_ANSWER = "no_answer"
    CALLBACK_SCHEDULED = "callback_scheduled"
    ESCALATED = "escalated"
    AUTO_COMPLETED = "auto_completed"
    OTHER = "other"


class ClaimStatus(StrEnum):
    UNASSIGNED = "unassigned"
    QUEUED = "queued"
    CLAIMED = "claimed"


# Python's times end with the years 1 and 9999; a day's margin at either end keeps the day
# arithmetic of periods and rollups (the end of a day, the next whole day) within them.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)

# Statuses a task can no longer be completed or counted as overdue from.
CLOSED_STATUSES = frozenset({Status.COMPLETED, Status.DEFERRED})


class LinkedEntity(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """The pipeline entity (a deal, a lead, …) a task belongs to."""

    type: Id
    id: Id
    pipeline_id: Id | None = None
    name: Name | None = None


class Task(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A task as it stands after its events; field names on the wire are the reference's."""

    id: str = msgspec.field(name="_id")
    title: str
    title_type: TitleType = TitleType.OTHER
    description: str | None = None
    status: Status = Status.NOT_STARTED
    priority: Priority = Priority.NORMAL
    outcome: Outcome | None = None
    due_date: datetime | None = None
    completed_at: datetime | None = None
    owner_id: str | None = None
    owner_name: str | None = None
    queue_id: str | None = None
    claim_status: ClaimStatus = ClaimStatus.UNASSIGNED
    claimed_at: datetime | None = None
    claimed_by: str | None = None
    related_customer_id: str | None = None
    related_customer_name: str | None = None
    related_conversation_id: str | None = None
    collaborator_ids: list[str] = msgspec.field(default_factory=list)
    completion_notes: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    linked_entity: LinkedEntity | None = None
    auto_complete: dict[str, Any] | None = None
    agent_reminders: dict[str, Any] | None = None
    snoozed_until: datetime | None = None
    snooze_count: int = 0
    created_at: datetime = msgspec.field(name="created_at")
    updated_at: datetime = msgspec.field(name="updated_at")

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def auto_complete_at(self) -> datetime | None:
        """When the task completes itself, if its autoComplete holds a time `at`."""
        return auto_complete_time(self.auto_complete)


def auto_complete_time(auto_complete: dict[str, Any] | None) -> datetime | None:
    """autoComplete.at as a time; None when absent. Raises ValueError when it is no time."""
    if not auto_complete or auto_complete.get("at") is None:
        return None
    try:
        moment = msgspec.convert(auto_complete["at"], datetime)
    except msgspec.ValidationError:
        raise ValueError("autoComplete.at must be an RFC 3339 date-time") from None
    return as_utc(moment, "autoComplete.at")


def as_utc(moment: datetime, name: str) -> datetime:
    """A time without an offset is taken as UTC. Raises ValueError naming it outside
    EARLIEST..LATEST."""
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(f"{name} must lie between {EARLIEST.date()} and {LATEST.date()} (UTC)")
    return utc


def claim_fields(owner_id: str | None, queue_id: str | None, now: datetime) -> dict[str, Any]:
    """Who holds a task follows from its owner and queue: claimed, queued or unassigned."""
    if owner_id is not None:
        return {"claimStatus": ClaimStatus.CLAIMED, "claimedAt": now, "claimedBy": owner_id}
    status = ClaimStatus.QUEUED if queue_id is not None else ClaimStatus.UNASSIGNED
    return {"claimStatus": status, "claimedAt": None, "claimedBy": None}
