"""Hostile input in every field of every body, in query strings, paths and headers: NUL
characters, lone surrogates, bytes that are not UTF-8, characters of every Unicode plane, huge
and tiny numbers, deep nesting. None makes the server fail: each is refused with a 400 in the
error envelope, or accepted and stored exactly as it was sent."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.api.task_api import TaskApi

VALUE = "@value@"

# One character of each of the 17 planes, among them a combining mark, a line separator, a
# right-to-left override, a byte order mark, noncharacters, unassigned and private-use points.
EVERY_PLANE = (
    "a\u0301\u2028\u202e\ufeff\uffff"
    + "".join(chr(plane * 0x10000 + 0x41) for plane in range(1, 17))
    + "\U0001f600\U00020000\U000e0001\U0010fffd\U0010ffffz"
)

LINKED_ENTITY = {"type": "deal", "id": "d1", "pipelineId": "p1", "name": "Deal"}
# Where a string goes in a task's body, by the name a failure shows.
STRING_PLACES: dict[str, Any] = {
    "title": {"title": VALUE},
    **{
        name: {name: VALUE}
        for name in (
            "description",
            "ownerId",
            "ownerName",
            "queueId",
            "relatedCustomerId",
            "relatedCustomerName",
            "relatedConversationId",
        )
    },
    "collaboratorIds[]": {"collaboratorIds": [VALUE]},
    "tags[]": {"tags": [VALUE]},
    **{
        f"{name} {part}": {name: {VALUE: "v"} if part == "key" else {"k": VALUE}}
        for name in ("metadata", "autoComplete", "agentReminders")
        for part in ("key", "value")
    },
    **{
        f"linkedEntity.{name}": {"linkedEntity": {**LINKED_ENTITY, name: VALUE}}
        for name in LINKED_ENTITY
    },
}
# The places above that only a string may fill (the free-form objects take any JSON value).
TEXT_PLACES = {
    name: place for name, place in STRING_PLACES.items() if not name.endswith((" key", " value"))
}
# Where text goes in the bodies of the other commands, and where a time string does.
ACTION_PLACES = {
    "complete completionNotes": ("complete", {"completionNotes": VALUE}),
    "reassign newOwnerId": ("reassign", {"newOwnerId": VALUE}),
    "reassign newOwnerName": ("reassign", {"newOwnerId": "agent_2", "newOwnerName": VALUE}),
}
EVERY_ACTION_PLACE = {**ACTION_PLACES, "snooze newDueDate": ("snooze", {"newDueDate": VALUE})}
# Where any JSON value goes: the free-form objects.
VALUE_PLACES = {
    name: {name: {"k": VALUE}} for name in ("metadata", "autoComplete", "agentReminders")
}

REFUSED_STRINGS = {
    "a NUL character": rb'"a\u0000b"',
    "a lone high surrogate": rb'"a\ud800b"',
    "a lone low surrogate": rb'"a\udfffb"',
    "reversed surrogates": rb'"\ude00\ud83d"',
    "a byte that is not UTF-8": b'"a\xffb"',
    "an overlong encoding": b'"a\xc0\xafb"',
    "an encoded surrogate": b'"a\xed\xa0\x80b"',
    "a code point past U+10FFFF": b'"a\xf4\x90\x80\x80b"',
    "a truncated sequence": b'"a\xe2\x82"',
}
HUGE_NUMBERS = {
    "past a double": b"1e400",
    "past a double, negative": b"-1e400",
    "too small for a double": b"1e-400",
    "an integer of 4301 digits": b"9" * 4301,
}
EXACT_NUMBERS = {
    "an integer past 64 bits": b"123456789012345678901234567890",
    "an integer of 1000 digits": b"9" * 1000,
    "the largest double": b"1.7976931348623157e308",
    "the smallest double": b"5e-324",
    "a negative integer past 64 bits": b"-18446744073709551617",
    "an integral double": b"1e20",
}


def body(place: Any, value: bytes, **fields: Any) -> bytes:
    """The place's body as JSON, with the raw JSON `value` where VALUE stands."""
    return json.dumps({**fields, **place}).encode().replace(json.dumps(VALUE).encode(), value)


async def send(tasks: TaskApi, method: str, path: str, content: bytes) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return await tasks.call(method, path, content=content, headers=headers)


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert isinstance(error["message"], str)
    assert error["details"]
    assert all(isinstance(detail, str) for detail in error["details"])


def exactly(text: bytes | str) -> Any:
    """JSON with numbers as decimals, so that a number compares as the digits sent."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def stored(task: dict[str, Any], place: Any) -> Any:
    """The part of a task that a placement's fields set."""
    return {name: task[name] for name in place}


@pytest.mark.parametrize("value", REFUSED_STRINGS.values(), ids=REFUSED_STRINGS.keys())
@pytest.mark.parametrize("place", STRING_PLACES.values(), ids=STRING_PLACES.keys())
async def test_a_string_that_cannot_be_stored_is_refused_in_every_field(
    tasks: TaskApi, place: Any, value: bytes
) -> None:
    task = await tasks.create(title="Unchanged")

    created = await send(tasks, "POST", "/v1/tasks", body(place, value, title="x"))
    put = await send(tasks, "PUT", f"/v1/tasks/{task['_id']}", body(place, value))
    patched = await send(tasks, "PATCH", f"/v1/tasks/{task['_id']}", body(place, value))

    for response in (created, put, patched):
        assert_refused(response)
    assert await tasks.get(task["_id"]) == task
    assert (await tasks.list())["total"] == 1


@pytest.mark.parametrize("value", REFUSED_STRINGS.values(), ids=REFUSED_STRINGS.keys())
@pytest.mark.parametrize(
    ("action", "place"), EVERY_ACTION_PLACE.values(), ids=EVERY_ACTION_PLACE.keys()
)
async def test_a_string_that_cannot_be_stored_is_refused_by_every_action(
    tasks: TaskApi, action: str, place: Any, value: bytes
) -> None:
    task = await tasks.create()

    response = await send(tasks, "POST", f"/v1/tasks/{task['_id']}/{action}", body(place, value))

    assert_refused(response)
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED"]


@pytest.mark.parametrize("escaped", [False, True], ids=["as UTF-8", "as escapes"])
@pytest.mark.parametrize("place", STRING_PLACES.values(), ids=STRING_PLACES.keys())
async def test_characters_of_every_plane_are_stored_exactly_in_every_field(
    tasks: TaskApi, place: Any, escaped: bool
) -> None:
    value = json.dumps(EVERY_PLANE, ensure_ascii=escaped).encode()
    sent = json.loads(body(place, value))

    created = await send(tasks, "POST", "/v1/tasks", body(place, value, title="x"))
    assert created.status_code == 201, created.text
    task = created.json()["task"]
    replaced = await send(tasks, "PUT", f"/v1/tasks/{task['_id']}", body(place, value))
    assert replaced.status_code == 200, replaced.text

    for answered in (task, replaced.json()["task"], await tasks.get(task["_id"])):
        assert stored(answered, sent) == sent


@pytest.mark.parametrize(("action", "place"), ACTION_PLACES.values(), ids=ACTION_PLACES.keys())
async def test_characters_of_every_plane_are_stored_exactly_by_every_action(
    tasks: TaskApi, action: str, place: Any
) -> None:
    task = await tasks.create()

    response = await send(
        tasks,
        "POST",
        f"/v1/tasks/{task['_id']}/{action}",
        body(place, json.dumps(EVERY_PLANE).encode()),
    )

    assert response.status_code == 200, response.text
    changed = response.json()["task"]
    assert EVERY_PLANE in (changed["completionNotes"], changed["ownerId"], changed["ownerName"])
    assert changed == await tasks.get(task["_id"])


@pytest.mark.parametrize("number", HUGE_NUMBERS.values(), ids=HUGE_NUMBERS.keys())
@pytest.mark.parametrize("place", VALUE_PLACES.values(), ids=VALUE_PLACES.keys())
async def test_a_number_past_what_can_be_stored_is_refused(
    tasks: TaskApi, place: Any, number: bytes
) -> None:
    response = await send(tasks, "POST", "/v1/tasks", body(place, number, title="x"))

    assert_refused(response)
    assert (await tasks.list())["total"] == 0


@pytest.mark.parametrize("number", EXACT_NUMBERS.values(), ids=EXACT_NUMBERS.keys())
@pytest.mark.parametrize("place", VALUE_PLACES.values(), ids=VALUE_PLACES.keys())
async def test_huge_and_tiny_numbers_are_stored_exactly(
    tasks: TaskApi, place: Any, number: bytes
) -> None:
    created = await send(tasks, "POST", "/v1/tasks", body(place, number, title="x"))
    assert created.status_code == 201, created.text

    read = await tasks.call("GET", f"/v1/tasks/{created.json()['task']['_id']}")

    sent = exactly(body(place, number))
    for answer in (created.content, read.content):
        task = exactly(answer)
        assert stored(task.get("task", task), sent) == sent


async def test_a_number_more_precise_than_a_double_is_stored_as_the_nearest_double(
    tasks: TaskApi,
) -> None:
    task = await tasks.create(metadata={"ratio": 0.1000000000000000055511151231257827})

    assert (await tasks.get(task["_id"]))["metadata"] == {"ratio": 0.1}


@pytest.mark.parametrize("place", TEXT_PLACES.values(), ids=TEXT_PLACES.keys())
async def test_a_huge_number_where_a_string_belongs_is_refused(tasks: TaskApi, place: Any) -> None:
    response = await send(tasks, "POST", "/v1/tasks", body(place, b"1" + b"0" * 30, title="x"))

    assert_refused(response)


def nested(depth: int) -> bytes:
    """A JSON value `depth` arrays deep."""
    return b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize("place", VALUE_PLACES.values(), ids=VALUE_PLACES.keys())
async def test_nesting_up_to_32_levels_is_stored_exactly(tasks: TaskApi, place: Any) -> None:
    # The body is one level, the object another: 30 more make 32.
    value = nested(30)

    created = await send(tasks, "POST", "/v1/tasks", body(place, value, title="x"))

    assert created.status_code == 201, created.text
    assert stored(await tasks.get(created.json()["task"]["_id"]), place) == json.loads(
        body(place, value)
    )


@pytest.mark.parametrize("depth", [31, 1_000, 100_000])
@pytest.mark.parametrize("place", VALUE_PLACES.values(), ids=VALUE_PLACES.keys())
async def test_nesting_deeper_than_32_levels_is_refused(
    tasks: TaskApi, place: Any, depth: int
) -> None:
    response = await send(tasks, "POST", "/v1/tasks", body(place, nested(depth), title="x"))

    assert_refused(response)
    assert response.json()["error"]["details"] == ["body: nested deeper than 32 levels"]


@pytest.mark.parametrize("depth", [33, 40_000])
async def test_a_deeply_nested_body_is_refused_by_every_action(tasks: TaskApi, depth: int) -> None:
    task = await tasks.create()
    deep = b'{"k":' * depth + b"1" + b"}" * depth

    for method, path in [
        ("PUT", f"/v1/tasks/{task['_id']}"),
        ("PATCH", f"/v1/tasks/{task['_id']}"),
        *(
            ("POST", f"/v1/tasks/{task['_id']}/{action}")
            for action in ("complete", "snooze", "reassign")
        ),
    ]:
        assert_refused(await send(tasks, method, path, deep))
    assert await tasks.event_types(task["_id"]) == ["TASK_CREATED"]


LIST_QUERIES = [
    "search",
    "ownerId",
    "queueId",
    "relatedCustomerId",
    "linkedEntityType",
    "linkedEntityId",
    "linkedPipelineId",
    "status",
    "priority",
    "dueBefore",
    "dueAfter",
    "sort",
    "page",
    "limit",
]
REFUSED_QUERY_VALUES = {
    "a NUL character": "a%00b",
    "a byte that is not UTF-8": "a%FFb",
    "an encoded surrogate": "a%ED%A0%80b",
    "an overlong encoding": "a%C0%AFb",
}


@pytest.mark.parametrize("value", REFUSED_QUERY_VALUES.values(), ids=REFUSED_QUERY_VALUES.keys())
@pytest.mark.parametrize("name", LIST_QUERIES)
async def test_a_query_value_that_cannot_be_compared_is_refused(
    tasks: TaskApi, name: str, value: str
) -> None:
    assert_refused(await tasks.call("GET", f"/v1/tasks?{name}={value}"))


@pytest.mark.parametrize("value", REFUSED_QUERY_VALUES.values(), ids=REFUSED_QUERY_VALUES.keys())
@pytest.mark.parametrize(
    "path",
    [
        "/v1/tasks/customer/{value}",
        "/v1/tasks/{value}",
        "/v1/tasks/{value}/events",
        "/v1/tasks?{value}=1",
        "/v1/tasks/stats?ownerId={value}",
        "/v1/tasks/analytics?startDate={value}",
        "/v1/events?after={value}",
    ],
)
async def test_a_path_or_query_that_cannot_be_compared_is_refused(
    tasks: TaskApi, path: str, value: str
) -> None:
    assert_refused(await tasks.call("GET", path.format(value=value)))


@pytest.mark.parametrize(
    "name", ["ownerId", "queueId", "relatedCustomerId", "linkedEntityType", "linkedEntityId"]
)
async def test_a_filter_of_characters_of_every_plane_finds_its_task(
    tasks: TaskApi, name: str
) -> None:
    linked = {"type": EVERY_PLANE, "id": EVERY_PLANE}
    task = await tasks.create(
        ownerId=EVERY_PLANE, queueId=EVERY_PLANE, relatedCustomerId=EVERY_PLANE, linkedEntity=linked
    )
    await tasks.create()

    page = await tasks.list(**{name: EVERY_PLANE})

    assert [found["_id"] for found in page["tasks"]] == [task["_id"]]


async def test_a_search_of_characters_of_every_plane_finds_its_task(tasks: TaskApi) -> None:
    task = await tasks.create(title=f"Call {EVERY_PLANE} back")
    await tasks.create(title="Call back")

    page = await tasks.list(search=EVERY_PLANE)
    customers = await tasks.list(f"/v1/tasks/customer/{EVERY_PLANE}")

    assert [found["_id"] for found in page["tasks"]] == [task["_id"]]
    assert customers["total"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "page=99999999999999999999999999",
        "page=-99999999999999999999999999",
        "limit=1e400",
        "page=NaN",
        "limit=Infinity",
        "dueBefore=99999-01-01",
        "dueAfter=0000-01-01",
        "dueBefore=9999-12-31T23:59:59-01:00",
        "dueAfter=0001-01-01T00:00:00%2B01:00",
        "limit=5&limit=6",
        "colour=red",
    ],
)
async def test_a_list_query_out_of_range_is_refused(tasks: TaskApi, query: str) -> None:
    assert_refused(await tasks.call("GET", f"/v1/tasks?{query}"))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/events?after=99999999999999999999.1",
        "/v1/events?after=9223372036854775808.1",
        "/v1/events?limit=99999999999999999999",
        # Of the feed's form, but from a placement the tenant has not reached.
        "/v1/events?after=7.0.1.1",
        # Of the feed's form, but naming no event of the tenant, or none with a count.
        "/v1/events?after=0.99999.1.1",
        "/v1/events?after=0.5.0.0",
        "/v1/tasks/analytics?endDate=9999-12-31",
        "/v1/tasks/analytics?startDate=0001-01-01",
        "/v1/tasks/stats?ownerId=" + "x" * 201,
    ],
)
async def test_a_cursor_or_a_figures_query_out_of_range_is_refused(
    tasks: TaskApi, path: str
) -> None:
    assert_refused(await tasks.call("GET", path))


async def test_a_time_at_the_edge_of_the_calendar_is_refused_not_a_failure(
    tasks: TaskApi,
) -> None:
    task = await tasks.create()

    for method, path, fields in [
        ("POST", "/v1/tasks", {"title": "x", "dueDate": "0001-01-01T00:00:00+01:00"}),
        ("POST", "/v1/tasks", {"title": "x", "dueDate": "9999-12-31T23:59:59-01:00"}),
        ("POST", "/v1/tasks", {"title": "x", "autoComplete": {"at": "9999-12-31T23:00:00Z"}}),
        ("PATCH", f"/v1/tasks/{task['_id']}", {"dueDate": "9999-12-31T00:00:00Z"}),
        ("POST", f"/v1/tasks/{task['_id']}/snooze", {"newDueDate": "9999-12-31T12:00:00Z"}),
        ("GET", f"/v1/tasks/{task['_id']}?asOf=0001-01-01T00:00:00%2B01:00", None),
    ]:
        assert_refused(await tasks.call(method, path, json=fields))


@pytest.mark.parametrize(
    ("due", "accepted"),
    [
        ("0001-06-01T00:00:00Z", False),
        ("0002-01-01T00:00:00+23:59", True),
        ("9998-12-31T23:59:59-23:59", True),
        ("9999-01-01T00:00:00Z", False),
    ],
)
async def test_a_time_is_written_in_a_year_from_0002_to_9998(
    tasks: TaskApi, due: str, accepted: bool
) -> None:
    response = await tasks.call("POST", "/v1/tasks", json={"title": "x", "dueDate": due})
    listed = await tasks.call("GET", "/v1/tasks", params={"dueBefore": due})

    if accepted:
        assert (response.status_code, listed.status_code) == (201, 200)
    else:
        assert_refused(response)
        assert_refused(listed)


async def test_snoozing_a_reminder_past_the_calendar_is_refused(tasks: TaskApi) -> None:
    reminders = {"reminders": [{"remindAt": "9999-12-30T00:00:00Z"}]}
    task = await tasks.create(dueDate="2030-01-01T00:00:00Z", agentReminders=reminders)

    response = await tasks.call(
        "POST", f"/v1/tasks/{task['_id']}/snooze", json={"newDueDate": "2031-01-01T00:00:00Z"}
    )

    assert_refused(response)
    assert await tasks.get(task["_id"]) == task


@pytest.mark.parametrize(
    "header", ["x-tenant-api-key", "idempotency-key", "if-match", "if-none-match", "x-request-id"]
)
@pytest.mark.parametrize(
    "value",
    [b"\xff\xfe\x80", "\u00e9\u00ff".encode("latin-1"), b"\x01\x7f", b" ", b"x" * 8000],
    ids=["not UTF-8", "Latin-1", "control characters", "blank", "long"],
)
async def test_hostile_header_values_never_make_the_server_fail(
    tasks: TaskApi, header: str, value: bytes
) -> None:
    task = await tasks.create()
    headers = {header: value}

    for method, path, fields in [
        ("GET", f"/v1/tasks/{task['_id']}", None),
        ("POST", f"/v1/tasks/{task['_id']}/snooze", {"newDueDate": "2031-01-01T00:00:00Z"}),
        ("DELETE", f"/v1/tasks/{task['_id']}", None),
    ]:
        response = await tasks.call(method, path, json=fields, headers=headers)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.json()["error"]["code"]
