"""What a client asks of a task, with the reference's input constraints.

Commands decode straight from request bodies, so their field names are the wire names
and their limits are those of the reference's Input Constraints table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from domain.task import (
    Id,
    LinkedEntity,
    Name,
    Outcome,
    Priority,
    Status,
    TitleType,
    as_utc,
)

TITLE_MAX = 500
OBJECT_KEYS_MAX = 50
METADATA_VALUE_MAX = 1000

# A time a client gives names an instant: an RFC 3339 date-time, which must give its offset
# from UTC, or a date alone, its first instant in UTC (as the lists' and analytics' filters
# read one). msgspec decodes it as text, which the command's __post_init__ reads as the
# instant it names: the field holds that datetime from then on.
_INSTANT_OR_DAY = Annotated[
    str,
    Meta(
        extra_json_schema={
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ]
        }
    ),
]
if TYPE_CHECKING:
    InstantOrDay = datetime
else:
    InstantOrDay = _INSTANT_OR_DAY
# The years a client may write a time in. Its instant then lies a day within the calendar
# (EARLIEST to LATEST, UTC), whatever its offset, and the rule reads on the time as written.
FIRST_YEAR, LAST_YEAR = 2, 9998
YEARS_PATTERN = (
    "^(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
)

# What str.strip() takes off a title: the characters str.isspace() counts as whitespace.
_BLANK = (
    r"\t\n\u000b\f\r\u001c-\u001f \u0085\u00a0\u1680"
    r"\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
# 1 to TITLE_MAX characters between any blanks, none of them NUL (which no body may hold).
TITLE_PATTERN = (
    rf"^[{_BLANK}]*[^{_BLANK}\u0000]"
    rf"(?:[^\u0000]{{0,{TITLE_MAX - 2}}}[^{_BLANK}\u0000])?[{_BLANK}]*$"
)
Title = Annotated[
    str,
    Meta(
        description=f"Trimmed of surrounding whitespace, then 1 to {TITLE_MAX} characters",
        extra_json_schema={"pattern": TITLE_PATTERN},
    ),
]
Description = Annotated[str, Meta(max_length=5000)]
CompletionNotes = Annotated[str, Meta(max_length=2000)]
Tag = Annotated[str, Meta(min_length=1, max_length=50)]
Tags = Annotated[list[Tag], Meta(max_length=20)]
Collaborators = Annotated[list[Id], Meta(max_length=100)]
JsonObject = Annotated[dict[str, Any], Meta(max_length=OBJECT_KEYS_MAX)]
Metadata = Annotated[
    dict[str, Any],
    Meta(
        max_length=OBJECT_KEYS_MAX,
        description=(
            f"Up to {OBJECT_KEYS_MAX} keys. A string value is at most {METADATA_VALUE_MAX}"
            f" characters; any other value at most {METADATA_VALUE_MAX} characters as compact"
            " JSON"
        ),
        extra_json_schema={
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": METADATA_VALUE_MAX},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                    {"type": "array"},
                    {"type": "object"},
                ]
            }
        },
    ),
]
AutoComplete = Annotated[
    dict[str, Any],
    Meta(
        max_length=OBJECT_KEYS_MAX,
        description="`at`, when given, is the time the task completes itself",
        extra_json_schema={
            "properties": {
                "at": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
            }
        },
    ),
]


class Command(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Base of every command: unknown and read-only fields are refused by name."""


class TaskChanges(Command):
    """Fields a client may set; a field left out is left as it is."""

    title: Title | UnsetType = UNSET
    title_type: TitleType | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    status: Status | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    due_date: InstantOrDay | UnsetType | None = UNSET
    owner_id: Id | UnsetType | None = UNSET
    owner_name: Name | UnsetType | None = UNSET
    queue_id: Id | UnsetType | None = UNSET
    related_customer_id: Id | UnsetType | None = UNSET
    related_customer_name: Name | UnsetType | None = UNSET
    related_conversation_id: Id | UnsetType | None = UNSET
    collaborator_ids: Collaborators | UnsetType | None = UNSET
    tags: Tags | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET
    linked_entity: LinkedEntity | UnsetType | None = UNSET
    auto_complete: AutoComplete | UnsetType | None = UNSET
    agent_reminders: JsonObject | UnsetType | None = UNSET
    outcome: Outcome | UnsetType | None = UNSET
    completion_notes: CompletionNotes | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        if self.due_date is not None and self.due_date is not UNSET:
            self.due_date = parse_instant_or_day(self.due_date, "dueDate")
        if isinstance(self.title, str):
            self.title = self.title.strip()
            if not self.title:
                # The reference's words for it, in its example of a ValidationError.
                raise ValueError("title must be at least 1 characters")
            if len(self.title) > TITLE_MAX:
                raise ValueError(f"title must be at most {TITLE_MAX} characters")
        if isinstance(self.metadata, dict) and (problem := metadata_value_problem(self.metadata)):
            raise ValueError(problem)
        if isinstance(self.auto_complete, dict) and self.auto_complete.get("at") is not None:
            parse_instant(self.auto_complete["at"], "autoComplete.at")

    def provided(self) -> dict[str, Any]:
        """The fields the client sent, by wire name."""
        # The class's own name tables: msgspec.structs.fields() evaluates every annotation
        # anew on each call, most of a command's CPU time.
        names = zip(self.__struct_fields__, self.__struct_encode_fields__, strict=True)
        return {wire: value for name, wire in names if (value := getattr(self, name)) is not UNSET}


class CreateTask(TaskChanges):
    title: Title


class UpdateTask(msgspec.Struct, frozen=True):
    """PUT (merge=False): the fields carried replace the task's, objects wholesale.
    PATCH (merge=True): metadata and the free-form objects merge key by key (RFC 7396)."""

    changes: TaskChanges
    merge: bool


class CompleteTask(Command):
    outcome: Outcome = Outcome.RESOLVED
    completion_notes: CompletionNotes | None = None


class SnoozeTask(Command):
    new_due_date: InstantOrDay
    adjust_reminders: bool = True

    def __post_init__(self) -> None:
        self.new_due_date = parse_instant_or_day(self.new_due_date, "newDueDate")


class ReassignTask(Command):
    new_owner_id: Id
    new_owner_name: Name | None = None


class DeleteTask(msgspec.Struct, frozen=True):
    pass


TaskCommand = UpdateTask | CompleteTask | SnoozeTask | ReassignTask | DeleteTask


def metadata_value_problem(metadata: dict[str, Any]) -> str | None:
    """Why a metadata value breaks the Input Constraints table, or None when none does: a
    string is measured in characters, any other value by its compact JSON."""
    for key, value in metadata.items():
        if isinstance(value, str):
            if len(value) > METADATA_VALUE_MAX:
                return f"metadata.{key} must be at most {METADATA_VALUE_MAX} characters"
        elif len(msgspec.json.encode(value).decode()) > METADATA_VALUE_MAX:
            return f"metadata.{key} must be at most {METADATA_VALUE_MAX} characters as JSON"
    return None


def parse_instant(value: Any, name: str, expected: str = "an RFC 3339 date-time") -> datetime:
    """An RFC 3339 date-time as UTC. Raises ValueError naming `name` when `value` is none
    (saying what was `expected`), lacks its offset (a local time names no instant:
    2035-01-15T09:00:00 is refused, not taken as UTC) or lies outside the calendar the API
    keeps."""
    try:
        moment = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise ValueError(f"{name} must be {expected}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} must give its offset from UTC (Z or +hh:mm)")
    return in_calendar(moment, name)


def parse_instant_or_day(value: Any, name: str) -> datetime:
    """An RFC 3339 date-time with its offset, as parse_instant reads it, or a date alone:
    its first instant, UTC. Raises ValueError naming `name` otherwise."""
    expected = "an RFC 3339 date-time or a date"
    # Only text as long as YYYY-MM-DD can be a date alone (the years kept have four digits).
    if not (isinstance(value, str) and len(value) == len("YYYY-MM-DD")):
        return parse_instant(value, name, expected)
    try:
        day = msgspec.convert(value, date)
    except msgspec.ValidationError:
        raise ValueError(f"{name} must be {expected}") from None
    return in_calendar(datetime.combine(day, time(), tzinfo=UTC), name)


def in_calendar(moment: datetime, name: str) -> datetime:
    """`moment` as UTC. Raises ValueError naming `name` unless it is written in a year from
    FIRST_YEAR to LAST_YEAR."""
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError(f"{name} must fall in the years {FIRST_YEAR:04} to {LAST_YEAR}")
    return as_utc(moment, name)
