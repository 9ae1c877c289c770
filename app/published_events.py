"""An event as it leaves the log: one JSON shape for the events feed (GET /v1/events), a
task's history (GET /v1/tasks/{id}/events) and `tasks-api audit export`, which `audit import`
reads back. docs/events.md describes it; its payload schemas are made here, from the events
themselves, for that page and for the OpenAPI document alike."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import inspect

from domain.events import EVENT_TYPES
from projections.log import RecordedEvent, payload_version

TYPE_FIELD = "type"


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    """The schema with every reference to a definition replaced by the definition."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(definitions[schema["$ref"].removeprefix("#/$defs/")], definitions)
        return {key: _inline(value, definitions) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    return schema


def _mark_times(cls: type, definitions: dict[str, Any]) -> None:
    """Give every time field of `cls`, and of the structs within it, the format date-time:
    the log writes each one in RFC 3339 with its offset (msgspec says so only of types that
    refuse a time without one)."""
    seen: set[type] = set()

    def visit(kind: inspect.Type) -> None:
        if isinstance(kind, inspect.StructType) and kind.cls not in seen:
            seen.add(kind.cls)
            properties = definitions[kind.cls.__name__]["properties"]
            for field in kind.fields:
                if _holds_a_time(field.type):
                    _format_time(properties[field.encode_name])
                visit(field.type)
        for inner in _inner_types(kind):
            visit(inner)

    visit(inspect.type_info(cls))


def _inner_types(kind: inspect.Type) -> list[inspect.Type]:
    if isinstance(kind, inspect.UnionType):
        return list(kind.types)
    if isinstance(kind, inspect.Metadata):
        return [kind.type]
    if isinstance(kind, inspect.ListType):
        return [kind.item_type]
    if isinstance(kind, inspect.DictType):
        return [kind.value_type]
    return []


def _holds_a_time(kind: inspect.Type) -> bool:
    return isinstance(kind, inspect.DateTimeType) or any(
        isinstance(inner, inspect.DateTimeType) for inner in _inner_types(kind)
    )


def _format_time(schema: dict[str, Any]) -> None:
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["format"] = "date-time"


def payload_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of an event type's payload in its current version, as the feed
    carries it: the event's fields without its type, every definition written out in place."""
    cls = EVENT_TYPES[event_type]
    generated = msgspec.json.schema(cls)
    definitions = generated["$defs"]
    _mark_times(cls, definitions)
    schema: dict[str, Any] = _inline(definitions[cls.__name__], definitions)
    del schema["properties"][TYPE_FIELD]
    schema["required"].remove(TYPE_FIELD)
    return schema


EventType = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "description": "What happened; docs/events.md names what produces each.",
            "enum": list(EVENT_TYPES),
        }
    ),
]

Metadata = Annotated[
    dict[str, Any],
    msgspec.Meta(
        extra_json_schema={
            "description": "Who and what caused the event, as the log holds it.",
            "properties": {
                "actor": {
                    "type": "string",
                    "description": "The API key id that sent the command, or `system`.",
                },
                "requestId": {"type": "string", "description": "The request's X-Request-Id."},
                "correlationId": {
                    "type": "string",
                    "description": "The request the command belongs to (today its own id).",
                },
            },
        }
    ),
]

Payload = Annotated[
    dict[str, Any],
    msgspec.Meta(
        extra_json_schema={
            "description": "The event's facts, by `type`; see docs/events.md.",
            "oneOf": [payload_schema(name) for name in EVENT_TYPES],
        }
    ),
]


EventHash = Annotated[
    str,
    msgspec.Meta(
        pattern="^[0-9a-f]{64}$",
        extra_json_schema={
            "description": "sha256, in hex, of the previous version's hash (32 zero bytes "
            "before version 1) and the event's content: each task's events form a hash chain "
            "(docs/events.md).",
        },
    ),
]


class AuditEvent(msgspec.Struct, rename="camel"):
    """One event of the log."""

    tenant_id: str
    task_id: str
    version: int
    type: EventType
    payload_version: int
    position: int
    transaction_id: int
    recorded_at: datetime
    metadata: Metadata
    data: Payload
    hash: EventHash

    @classmethod
    def of(cls, event: RecordedEvent, *, as_stored: bool = False) -> AuditEvent:
        """The event with its payload lifted to the version read today, or `as_stored`,
        exactly as the log holds it (an export, which an import appends as it was). The
        payload's type is said once, as the event's."""
        data = event.data if as_stored else event.current_data()
        return cls(
            tenant_id=event.tenant_id,
            task_id=event.stream_id,
            version=event.version,
            type=event.type,
            payload_version=event.payload_version if as_stored else payload_version(event.type),
            position=event.position,
            transaction_id=event.transaction_id,
            recorded_at=event.recorded_at,
            metadata=event.metadata,
            data={key: value for key, value in data.items() if key != TYPE_FIELD},
            hash=event.hash.hex(),
        )

    def recorded(self) -> RecordedEvent:
        """The event as the log holds it, its payload carrying its type again. An export
        made before the type was said once carries it in the payload already."""
        stored = self.data if TYPE_FIELD in self.data else {TYPE_FIELD: self.type, **self.data}
        return RecordedEvent(
            tenant_id=self.tenant_id,
            stream_id=self.task_id,
            position=self.position,
            transaction_id=self.transaction_id,
            version=self.version,
            type=self.type,
            payload_version=self.payload_version,
            data_json=msgspec.json.encode(stored).decode(),
            metadata_json=msgspec.json.encode(self.metadata).decode(),
            recorded_at=self.recorded_at,
            hash=bytes.fromhex(self.hash),
        )
