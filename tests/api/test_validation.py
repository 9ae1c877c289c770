"""Request bodies: the Input Constraints table, enums, strict types, unknown and read-only
fields, malformed JSON and oversized bodies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.task_api import TaskApi

LONG_ID = "i" * 201


def metadata_of(keys: int) -> dict[str, int]:
    return {f"key{n}": n for n in range(keys)}


ACCEPTED_AT_THE_LIMIT = {
    "title of 500 characters": {"title": "t" * 500},
    "title of 500 characters and surrounding spaces": {"title": "  " + "t" * 500 + "  "},
    "title of 500 non-ASCII characters": {"title": "é" * 500},
    "description of 5000 characters": {"description": "d" * 5000},
    "ownerName of 200 characters": {"ownerName": "n" * 200},
    "20 tags": {"tags": [f"tag{n}" for n in range(20)]},
    "a tag of 50 characters": {"tags": ["t" * 50]},
    "50 metadata keys": {"metadata": metadata_of(50)},
    "a metadata string of 1000 characters": {"metadata": {"note": "v" * 1000}},
    # A string is measured in characters, not in its JSON escapes.
    "a metadata string of 1000 quotes": {"metadata": {"note": '"' * 1000}},
    "a metadata object of 1000 characters as JSON": {"metadata": {"note": {"t": "v" * 992}}},
    "ids of 200 characters": {"ownerId": "i" * 200, "relatedCustomerId": "i" * 200},
    "linkedEntity with type and id only": {"linkedEntity": {"type": "deal", "id": "d1"}},
    "autoComplete of 50 keys": {"autoComplete": metadata_of(50)},
}

REJECTED = {
    # name: (body, the field the error names)
    "missing title": ({}, "title"),
    "empty title": ({"title": ""}, "title"),
    "blank title": ({"title": "   "}, "title"),
    "title of 501 characters": ({"title": "t" * 501}, "title"),
    "description of 5001 characters": ({"title": "x", "description": "d" * 5001}, "description"),
    "ownerName of 201 characters": ({"title": "x", "ownerName": "n" * 201}, "ownerName"),
    "21 tags": ({"title": "x", "tags": [f"tag{n}" for n in range(21)]}, "tags"),
    "a tag of 51 characters": ({"title": "x", "tags": ["t" * 51]}, "tags"),
    "an empty tag": ({"title": "x", "tags": [""]}, "tags"),
    "51 metadata keys": ({"title": "x", "metadata": metadata_of(51)}, "metadata"),
    "a metadata string over 1000 characters": (
        {"title": "x", "metadata": {"note": "v" * 1001}},
        "metadata",
    ),
    "a nested metadata value over 1000 characters as JSON": (
        {"title": "x", "metadata": {"note": {"text": "v" * 1000}}},
        "metadata",
    ),
    "unknown titleType": ({"title": "x", "titleType": "email"}, "titleType"),
    "unknown status": ({"title": "x", "status": "done"}, "status"),
    "unknown priority": ({"title": "x", "priority": "critical"}, "priority"),
    "unknown outcome": ({"title": "x", "status": "completed", "outcome": "won"}, "outcome"),
    "ownerId over 200 characters": ({"title": "x", "ownerId": LONG_ID}, "ownerId"),
    "queueId over 200 characters": ({"title": "x", "queueId": LONG_ID}, "queueId"),
    "relatedCustomerId over 200 characters": (
        {"title": "x", "relatedCustomerId": LONG_ID},
        "relatedCustomerId",
    ),
    "relatedConversationId over 200 characters": (
        {"title": "x", "relatedConversationId": LONG_ID},
        "relatedConversationId",
    ),
    "a collaborator id over 200 characters": (
        {"title": "x", "collaboratorIds": [LONG_ID]},
        "collaboratorIds",
    ),
    "linkedEntity id over 200 characters": (
        {"title": "x", "linkedEntity": {"type": "deal", "id": LONG_ID}},
        "linkedEntity",
    ),
    "linkedEntity without id": ({"title": "x", "linkedEntity": {"type": "deal"}}, "linkedEntity"),
    "linkedEntity with an unknown field": (
        {"title": "x", "linkedEntity": {"type": "deal", "id": "d", "stage": "won"}},
        "linkedEntity",
    ),
    "autoComplete of 51 keys": ({"title": "x", "autoComplete": metadata_of(51)}, "autoComplete"),
    "agentReminders that is no object": ({"title": "x", "agentReminders": [1]}, "agentReminders"),
    "an unknown field": ({"title": "x", "colour": "red"}, "colour"),
    "read-only _id": ({"title": "x", "_id": "507f1f77bcf86cd799439011"}, "_id"),
    "read-only created_at": ({"title": "x", "created_at": "2030-01-01T00:00:00Z"}, "created_at"),
    "read-only updated_at": ({"title": "x", "updated_at": "2030-01-01T00:00:00Z"}, "updated_at"),
    "read-only claimStatus": ({"title": "x", "claimStatus": "claimed"}, "claimStatus"),
    "read-only claimedAt": ({"title": "x", "claimedAt": "2030-01-01T00:00:00Z"}, "claimedAt"),
    "read-only claimedBy": ({"title": "x", "claimedBy": "agent_1"}, "claimedBy"),
    "read-only snoozeCount": ({"title": "x", "snoozeCount": 3}, "snoozeCount"),
    "read-only snoozedUntil": (
        {"title": "x", "snoozedUntil": "2030-01-01T00:00:00Z"},
        "snoozedUntil",
    ),
    "read-only completedAt": ({"title": "x", "completedAt": "2030-01-01T00:00:00Z"}, "completedAt"),
    "a number for a string": ({"title": 5}, "title"),
    "a string for a list": ({"title": "x", "tags": "urgent"}, "tags"),
    "a list for an object": ({"title": "x", "metadata": ["orderId"]}, "metadata"),
    "a date that is no date": ({"title": "x", "dueDate": "tomorrow"}, "dueDate"),
    "an impossible date": ({"title": "x", "dueDate": "2030-02-30T10:00:00Z"}, "dueDate"),
    "a time without its offset": ({"title": "x", "dueDate": "2030-04-15T10:00:00"}, "dueDate"),
    "a number for a date": ({"title": "x", "dueDate": 1900000000}, "dueDate"),
    "outcome on a task that is not completed": ({"title": "x", "outcome": "resolved"}, "outcome"),
}


def assert_validation_error(response: Any, field: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert any(detail.startswith(field) for detail in error["details"]), error


@pytest.mark.parametrize("body", ACCEPTED_AT_THE_LIMIT.values(), ids=ACCEPTED_AT_THE_LIMIT.keys())
async def test_values_at_the_limit_are_accepted(tasks: TaskApi, body: dict[str, Any]) -> None:
    response = await tasks.call("POST", "/v1/tasks", json={"title": "x", **body})

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("body", "field"), REJECTED.values(), ids=REJECTED.keys())
async def test_creating_an_invalid_task_is_rejected_naming_the_field(
    tasks: TaskApi, body: dict[str, Any], field: str
) -> None:
    response = await tasks.call("POST", "/v1/tasks", json=body)

    assert_validation_error(response, field)


async def test_a_due_date_alone_is_its_first_instant_in_utc(tasks: TaskApi) -> None:
    task = await tasks.create(dueDate="2030-04-15")

    assert task["dueDate"] == "2030-04-15T00:00:00Z"


@pytest.mark.parametrize("title", ["", "   "])
async def test_an_empty_title_is_refused_as_the_reference_shows(tasks: TaskApi, title: str) -> None:
    response = await tasks.call("POST", "/v1/tasks", json={"title": title})

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "ValidationError",
            "message": "Validation failed",
            "details": ["title must be at least 1 characters"],
        }
    }


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": " "}, "title"),
        ({"description": "d" * 5001}, "description"),
        ({"tags": ["t" * 51]}, "tags"),
        ({"metadata": metadata_of(51)}, "metadata"),
        ({"priority": "critical"}, "priority"),
        ({"status": "done"}, "status"),
        ({"ownerId": LONG_ID}, "ownerId"),
        ({"completionNotes": "n" * 2001}, "completionNotes"),
        ({"_id": "507f1f77bcf86cd799439011"}, "_id"),
        ({"snoozeCount": 0}, "snoozeCount"),
        ({"claimStatus": "queued"}, "claimStatus"),
        ({"created_at": "2030-01-01T00:00:00Z"}, "created_at"),
        ({"colour": "red"}, "colour"),
        ({"dueDate": "soon"}, "dueDate"),
        ({"title": None}, "title"),
    ],
)
async def test_an_invalid_update_is_rejected_and_changes_nothing(
    tasks: TaskApi, method: str, body: dict[str, Any], field: str
) -> None:
    task = await tasks.create(title="Unchanged")

    response = await tasks.call(method, f"/v1/tasks/{task['_id']}", json=body)

    assert_validation_error(response, field)
    assert await tasks.get(task["_id"]) == task


async def test_patching_metadata_beyond_50_keys_is_rejected(tasks: TaskApi) -> None:
    task = await tasks.create(metadata=metadata_of(30))

    response = await tasks.call(
        "PATCH", f"/v1/tasks/{task['_id']}", json={"metadata": {f"more{n}": n for n in range(21)}}
    )

    assert_validation_error(response, "metadata")


async def test_patching_an_object_beyond_50_keys_is_rejected(tasks: TaskApi) -> None:
    task = await tasks.create(agentReminders=metadata_of(30))

    response = await tasks.call(
        "PATCH",
        f"/v1/tasks/{task['_id']}",
        json={"agentReminders": {f"more{n}": n for n in range(21)}},
    )

    assert_validation_error(response, "agentReminders")


async def test_patching_a_metadata_value_beyond_1000_characters_is_rejected(
    tasks: TaskApi,
) -> None:
    task = await tasks.create(metadata={"note": {"first": "a" * 600}})

    response = await tasks.call(
        "PATCH", f"/v1/tasks/{task['_id']}", json={"metadata": {"note": {"second": "b" * 600}}}
    )

    assert_validation_error(response, "metadata")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"completionNotes": "n" * 2001}, "completionNotes"),
        ({"outcome": "won"}, "outcome"),
        ({"outcome": 1}, "outcome"),
        ({"status": "completed"}, "status"),
    ],
)
async def test_an_invalid_completion_is_rejected(
    tasks: TaskApi, body: dict[str, Any], field: str
) -> None:
    task = await tasks.create()

    response = await tasks.call("POST", f"/v1/tasks/{task['_id']}/complete", json=body)

    assert_validation_error(response, field)


async def test_completion_notes_of_2000_characters_are_accepted(tasks: TaskApi) -> None:
    task = await tasks.create()

    result = await tasks.act(task["_id"], "complete", {"completionNotes": "n" * 2000})

    assert result["task"]["completionNotes"] == "n" * 2000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "newDueDate"),
        ({"newDueDate": "later"}, "newDueDate"),
        ({"newDueDate": "2030-01-01T00:00:00Z", "adjustReminders": "true"}, "adjustReminders"),
        ({"newDueDate": "2030-01-01T00:00:00Z", "adjustReminders": 1}, "adjustReminders"),
        ({"newDueDate": "2030-01-01T00:00:00Z", "snoozeCount": 5}, "snoozeCount"),
    ],
)
async def test_an_invalid_snooze_is_rejected(
    tasks: TaskApi, body: dict[str, Any], field: str
) -> None:
    task = await tasks.create()

    response = await tasks.call("POST", f"/v1/tasks/{task['_id']}/snooze", json=body)

    assert_validation_error(response, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "newOwnerId"),
        ({"newOwnerId": ""}, "newOwnerId"),
        ({"newOwnerId": LONG_ID}, "newOwnerId"),
        ({"newOwnerId": 7}, "newOwnerId"),
        ({"newOwnerId": "agent_2", "newOwnerName": "n" * 201}, "newOwnerName"),
        ({"newOwnerId": "agent_2", "ownerId": "agent_3"}, "ownerId"),
    ],
)
async def test_an_invalid_reassignment_is_rejected(
    tasks: TaskApi, body: dict[str, Any], field: str
) -> None:
    task = await tasks.create()

    response = await tasks.call("POST", f"/v1/tasks/{task['_id']}/reassign", json=body)

    assert_validation_error(response, field)


@pytest.mark.parametrize(
    "content",
    [b"{", b'{"title": "x",}', b"title=x", b"\xff\xfe", b'{"title": "x"} trailing'],
    ids=["unclosed", "trailing comma", "form data", "not UTF-8", "trailing text"],
)
async def test_a_malformed_json_body_is_rejected(tasks: TaskApi, content: bytes) -> None:
    response = await tasks.call(
        "POST", "/v1/tasks", content=content, headers={"content-type": "application/json"}
    )

    assert_validation_error(response, "body")


async def test_a_body_that_is_no_object_is_rejected(tasks: TaskApi) -> None:
    response = await tasks.call("POST", "/v1/tasks", json=["title"])

    assert_validation_error(response, "body")


async def test_a_string_holding_a_nul_character_is_rejected(tasks: TaskApi) -> None:
    response = await tasks.call("POST", "/v1/tasks", json={"title": "a\u0000b"})

    assert_validation_error(response, "body")
    assert "NUL character" in response.json()["error"]["details"][0]


async def test_a_body_over_256_kb_is_rejected_as_too_large(tasks: TaskApi) -> None:
    body = b'{"title": "x", "description": "' + b"d" * (256 * 1024) + b'"}'

    response = await tasks.call(
        "POST", "/v1/tasks", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PayloadTooLargeError"
    assert (await tasks.list())["total"] == 0


async def test_a_body_just_under_256_kb_is_read(tasks: TaskApi) -> None:
    body = b'{"title": "x", "description": "' + b"d" * (250 * 1024) + b'"}'

    response = await tasks.call(
        "POST", "/v1/tasks", content=body, headers={"content-type": "application/json"}
    )

    # Read and judged on its content: too long a description, not too large a body.
    assert_validation_error(response, "description")
