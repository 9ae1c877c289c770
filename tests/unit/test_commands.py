"""Decoding commands from request bodies: the reference's Input Constraints table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.commands import (
    TITLE_PATTERN,
    YEARS_PATTERN,
    CompleteTask,
    CreateTask,
    ReassignTask,
    SnoozeTask,
    TaskChanges,
)
from domain.task import LinkedEntity, Outcome, Priority, Status, TitleType
from tests.unit.tasks import decoded

READ_ONLY_FIELDS = [
    "_id",
    "id",
    "created_at",
    "updated_at",
    "createdAt",
    "claimStatus",
    "claimedAt",
    "claimedBy",
    "completedAt",
    "snoozedUntil",
    "snoozeCount",
]


def refused(command_type: type[Any], body: dict[str, Any]) -> str:
    """The decoding error's message for a body that must be refused."""
    with pytest.raises(msgspec.ValidationError) as error:
        decoded(command_type, body)
    return str(error.value)


def create_body(**fields: Any) -> dict[str, Any]:
    return {"title": "Call back", **fields}


class TestTitle:
    def test_the_title_is_trimmed(self) -> None:
        assert decoded(CreateTask, {"title": "  Call back \n"}).title == "Call back"

    def test_a_title_of_500_characters_after_trimming_is_accepted(self) -> None:
        command = decoded(CreateTask, {"title": "  " + "t" * 500 + "  "})
        assert len(command.title) == 500

    def test_a_title_of_501_characters_is_rejected(self) -> None:
        assert "title" in refused(CreateTask, {"title": "t" * 501})

    def test_a_blank_title_is_rejected(self) -> None:
        assert "title" in refused(CreateTask, {"title": " \t "})

    def test_an_empty_title_is_rejected(self) -> None:
        assert "title" in refused(CreateTask, {"title": ""})

    def test_a_task_cannot_be_created_without_a_title(self) -> None:
        assert "title" in refused(CreateTask, {})

    def test_an_update_may_leave_the_title_out(self) -> None:
        assert decoded(TaskChanges, {}).provided() == {}

    def test_an_update_cannot_set_the_title_to_null(self) -> None:
        assert "title" in refused(TaskChanges, {"title": None})

    def test_an_updated_title_is_trimmed_and_checked_too(self) -> None:
        assert decoded(TaskChanges, {"title": " New "}).title == "New"
        assert "title" in refused(TaskChanges, {"title": "   "})


class TestTextLimits:
    @pytest.mark.parametrize(
        ("field", "limit"),
        [
            ("description", 5000),
            ("ownerName", 200),
            ("relatedCustomerName", 200),
            ("completionNotes", 2000),
        ],
    )
    def test_text_fields_accept_their_limit_and_refuse_one_more(
        self, field: str, limit: int
    ) -> None:
        assert decoded(TaskChanges, {field: "x" * limit}).provided()[field] == "x" * limit
        assert field in refused(TaskChanges, {field: "x" * (limit + 1)})

    @pytest.mark.parametrize(
        "field", ["ownerId", "queueId", "relatedCustomerId", "relatedConversationId"]
    )
    def test_ids_are_1_to_200_characters(self, field: str) -> None:
        assert decoded(TaskChanges, {field: "i" * 200}).provided()[field] == "i" * 200
        assert field in refused(TaskChanges, {field: "i" * 201})
        assert field in refused(TaskChanges, {field: ""})

    def test_collaborator_ids_are_ids(self) -> None:
        assert "collaboratorIds" in refused(TaskChanges, {"collaboratorIds": ["i" * 201]})

    def test_completion_notes_of_the_complete_command_are_limited_to_2000(self) -> None:
        assert decoded(CompleteTask, {"completionNotes": "n" * 2000}).completion_notes
        assert "completionNotes" in refused(CompleteTask, {"completionNotes": "n" * 2001})

    def test_the_new_owner_of_a_reassignment_is_an_id_and_its_name_a_name(self) -> None:
        assert "newOwnerId" in refused(ReassignTask, {"newOwnerId": "i" * 201})
        assert "newOwnerName" in refused(
            ReassignTask, {"newOwnerId": "u1", "newOwnerName": "n" * 201}
        )


class TestTags:
    def test_twenty_tags_are_accepted(self) -> None:
        tags = [f"tag{n}" for n in range(20)]
        assert decoded(TaskChanges, {"tags": tags}).tags == tags

    def test_twenty_one_tags_are_rejected(self) -> None:
        assert "tags" in refused(TaskChanges, {"tags": [f"tag{n}" for n in range(21)]})

    def test_a_tag_of_50_characters_is_accepted(self) -> None:
        assert decoded(TaskChanges, {"tags": ["t" * 50]}).tags == ["t" * 50]

    def test_a_tag_of_51_characters_is_rejected(self) -> None:
        assert "tags" in refused(TaskChanges, {"tags": ["t" * 51]})

    def test_an_empty_tag_is_rejected(self) -> None:
        assert "tags" in refused(TaskChanges, {"tags": [""]})

    def test_a_tag_must_be_a_string(self) -> None:
        assert "tags" in refused(TaskChanges, {"tags": [5]})


class TestMetadataAndObjects:
    def test_fifty_metadata_keys_are_accepted(self) -> None:
        metadata = {f"k{n}": n for n in range(50)}
        assert decoded(TaskChanges, {"metadata": metadata}).metadata == metadata

    def test_fifty_one_metadata_keys_are_rejected(self) -> None:
        assert "metadata" in refused(TaskChanges, {"metadata": {f"k{n}": n for n in range(51)}})

    def test_a_metadata_string_of_1000_characters_is_accepted(self) -> None:
        value = "v" * 1000
        assert decoded(TaskChanges, {"metadata": {"note": value}}).metadata == {"note": value}

    def test_a_metadata_string_is_measured_in_characters_not_in_its_escapes(self) -> None:
        value = '"' * 1000  # 2000 characters of JSON, escaped
        assert decoded(TaskChanges, {"metadata": {"note": value}}).metadata == {"note": value}

    def test_a_metadata_string_over_1000_characters_is_rejected(self) -> None:
        assert "metadata.note" in refused(TaskChanges, {"metadata": {"note": "v" * 1001}})

    def test_a_metadata_number_is_measured_as_json(self) -> None:
        assert "metadata.big" in refused(TaskChanges, {"metadata": {"big": 10**1000}})

    def test_a_nested_metadata_value_is_measured_as_json(self) -> None:
        nested = {"items": ["x" * 100] * 10}  # each item 102 characters with its quotes
        assert "metadata.big" in refused(TaskChanges, {"metadata": {"big": nested}})

    def test_metadata_values_count_characters_not_bytes(self) -> None:
        value = "é" * 1000
        assert decoded(TaskChanges, {"metadata": {"note": value}}).metadata == {"note": value}

    def test_the_create_command_checks_metadata_values_too(self) -> None:
        assert "metadata.note" in refused(CreateTask, create_body(metadata={"note": "v" * 1001}))

    def test_metadata_must_be_an_object(self) -> None:
        assert "metadata" in refused(TaskChanges, {"metadata": ["a"]})

    @pytest.mark.parametrize("field", ["autoComplete", "agentReminders"])
    def test_free_form_objects_take_at_most_50_keys(self, field: str) -> None:
        fifty = {f"k{n}": n for n in range(50)}
        assert decoded(TaskChanges, {field: fifty}).provided()[field] == fifty
        assert field in refused(TaskChanges, {field: {**fifty, "one_more": 1}})

    def test_an_auto_complete_time_must_be_a_timestamp(self) -> None:
        assert decoded(TaskChanges, {"autoComplete": {"at": "2025-06-01T12:00:00Z"}}).auto_complete
        assert "autoComplete.at" in refused(TaskChanges, {"autoComplete": {"at": "soon"}})

    def test_a_linked_entity_needs_a_type_and_an_id(self) -> None:
        assert "type" in refused(TaskChanges, {"linkedEntity": {"id": "d1"}})
        assert "id" in refused(TaskChanges, {"linkedEntity": {"type": "deal"}})

    def test_a_linked_entity_may_name_its_pipeline_and_itself(self) -> None:
        body = {"type": "deal", "id": "d1", "pipelineId": "p1", "name": "Big deal"}
        command = decoded(TaskChanges, {"linkedEntity": body})
        assert command.linked_entity == LinkedEntity("deal", "d1", "p1", "Big deal")

    def test_a_linked_entity_with_an_unknown_field_is_rejected(self) -> None:
        body = {"type": "deal", "id": "d1", "stage": "won"}
        assert "stage" in refused(TaskChanges, {"linkedEntity": body})


class TestEnumsAndStrictTypes:
    @pytest.mark.parametrize(
        ("field", "enum"),
        [
            ("titleType", TitleType),
            ("status", Status),
            ("priority", Priority),
            ("outcome", Outcome),
        ],
    )
    def test_enum_fields_take_exactly_their_values(self, field: str, enum: Any) -> None:
        for member in enum:
            assert decoded(TaskChanges, {field: member.value}).provided()[field] == member
        assert field in refused(TaskChanges, {field: "someday"})
        assert field in refused(TaskChanges, {field: "COMPLETED"})

    @pytest.mark.parametrize("field", ["title", "titleType", "status", "priority"])
    def test_fields_that_always_have_a_value_cannot_be_null(self, field: str) -> None:
        assert field in refused(TaskChanges, {field: None})

    def test_a_number_given_as_a_string_is_rejected(self) -> None:
        assert "title" in refused(TaskChanges, {"title": 5})
        assert "metadata" in refused(TaskChanges, {"metadata": "5"})

    def test_a_boolean_given_as_a_string_is_rejected(self) -> None:
        body = {"newDueDate": "2030-01-01T00:00:00Z", "adjustReminders": "true"}
        assert "adjustReminders" in refused(SnoozeTask, body)

    def test_an_invalid_timestamp_is_rejected(self) -> None:
        assert "dueDate" in refused(TaskChanges, {"dueDate": "next tuesday"})
        assert "dueDate" in refused(TaskChanges, {"dueDate": "2025-13-01T00:00:00Z"})


class TestUnknownAndReadOnlyFields:
    def test_an_unknown_field_is_rejected_by_name(self) -> None:
        assert "colour" in refused(CreateTask, create_body(colour="red"))

    @pytest.mark.parametrize("field", READ_ONLY_FIELDS)
    def test_a_read_only_field_is_rejected_by_name_on_create(self, field: str) -> None:
        assert field in refused(CreateTask, create_body(**{field: "x"}))

    @pytest.mark.parametrize("field", READ_ONLY_FIELDS)
    def test_a_read_only_field_is_rejected_by_name_on_update(self, field: str) -> None:
        assert field in refused(TaskChanges, {field: "x"})

    @pytest.mark.parametrize(
        ("command_type", "body"),
        [
            (CompleteTask, {"status": "completed"}),
            (SnoozeTask, {"newDueDate": "2030-01-01T00:00:00Z", "dueDate": None}),
            (ReassignTask, {"newOwnerId": "u1", "ownerId": "u1"}),
        ],
    )
    def test_action_commands_refuse_fields_of_other_commands(
        self, command_type: type[Any], body: dict[str, Any]
    ) -> None:
        unknown = next(name for name in body if name not in ("newDueDate", "newOwnerId"))
        assert unknown in refused(command_type, body)

    def test_snake_case_spellings_of_fields_are_unknown(self) -> None:
        assert "due_date" in refused(TaskChanges, {"due_date": "2030-01-01T00:00:00Z"})


class TestTimes:
    def test_a_due_date_without_an_offset_is_refused(self) -> None:
        assert "dueDate" in refused(TaskChanges, {"dueDate": "2025-06-01T12:30:00"})

    def test_a_due_date_with_an_offset_is_converted_to_utc(self) -> None:
        command = decoded(TaskChanges, {"dueDate": "2025-06-01T14:30:00+02:00"})
        assert isinstance(command.due_date, datetime)
        assert command.due_date.tzinfo is UTC
        assert command.due_date == datetime(2025, 6, 1, 12, 30, tzinfo=UTC)

    def test_a_due_date_can_be_cleared_with_null(self) -> None:
        assert decoded(TaskChanges, {"dueDate": None}).provided() == {"dueDate": None}

    def test_a_snooze_time_without_an_offset_is_refused(self) -> None:
        assert "newDueDate" in refused(SnoozeTask, {"newDueDate": "2030-01-01T08:00:00"})

    def test_an_auto_complete_time_without_an_offset_is_refused(self) -> None:
        body = {"autoComplete": {"at": "2030-01-01T08:00:00"}}
        assert "autoComplete.at" in refused(TaskChanges, body)

    def test_a_snooze_time_with_an_offset_is_converted_to_utc(self) -> None:
        command = decoded(SnoozeTask, {"newDueDate": "2030-01-01T08:00:00-05:00"})
        assert command.new_due_date == datetime(2030, 1, 1, 8, tzinfo=timezone(-timedelta(hours=5)))
        assert command.new_due_date.tzinfo is UTC


class TestActionCommands:
    def test_completing_defaults_to_outcome_resolved_without_notes(self) -> None:
        command = decoded(CompleteTask, {})
        assert command.outcome == Outcome.RESOLVED
        assert command.completion_notes is None

    def test_completing_refuses_an_unknown_outcome(self) -> None:
        assert "outcome" in refused(CompleteTask, {"outcome": "done"})

    def test_snoozing_requires_a_new_due_date(self) -> None:
        assert "newDueDate" in refused(SnoozeTask, {})

    def test_snoozing_adjusts_reminders_by_default(self) -> None:
        assert decoded(SnoozeTask, {"newDueDate": "2030-01-01T00:00:00Z"}).adjust_reminders

    def test_reassigning_requires_a_new_owner(self) -> None:
        assert "newOwnerId" in refused(ReassignTask, {"newOwnerName": "Ann"})
        assert "newOwnerId" in refused(ReassignTask, {"newOwnerId": None})

    def test_reassigning_may_leave_out_the_owner_name(self) -> None:
        assert decoded(ReassignTask, {"newOwnerId": "u1"}).new_owner_name is None


def test_provided_names_the_fields_sent_by_their_wire_names() -> None:
    command = decoded(TaskChanges, {"ownerId": "u1", "description": None, "tags": ["a"]})
    assert command.provided() == {"ownerId": "u1", "description": None, "tags": ["a"]}


# Characters str.strip() takes off, and some it keeps, for titles near every boundary.
BLANKS = [chr(code) for code in range(0x3001) if chr(code).isspace()]
TITLE_CHARACTERS = st.sampled_from([*BLANKS, "a", "é", "\U0001f600", "\u200b", "\ufeff"])


def accepted(command_type: type[Any], body: dict[str, Any]) -> bool:
    try:
        decoded(command_type, body)
    except msgspec.ValidationError:
        return False
    return True


class TestTheRulesAsTheOpenApiDocumentStatesThem:
    @settings(max_examples=300, derandomize=True, database=None)
    @given(
        st.builds(
            lambda blank, middle, trailing: blank + middle + trailing,
            st.text(st.sampled_from(BLANKS), max_size=3),
            st.one_of(
                st.text(TITLE_CHARACTERS, max_size=8),
                st.text(TITLE_CHARACTERS, min_size=496, max_size=504),
            ),
            st.text(st.sampled_from(BLANKS), max_size=3),
        )
    )
    def test_the_title_pattern_holds_exactly_the_titles_a_command_takes(self, title: str) -> None:
        assert bool(re.search(TITLE_PATTERN, title)) == accepted(CreateTask, {"title": title})

    def test_the_years_pattern_holds_exactly_the_years_a_time_may_be_written_in(self) -> None:
        for year in range(10_000):
            written = f"{year:04d}-06-15T12:00:00+05:00"
            assert bool(re.search(YEARS_PATTERN, written)) == accepted(
                SnoozeTask, {"newDueDate": written}
            ), written
