"""Snoozing a task: a new due date in the future, counted, with its reminders moved along."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from domain.decide import decide
from domain.errors import RuleViolation
from domain.events import TaskSnoozed
from tests.unit.tasks import LATER, after, complete, created, snooze

DUE = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
NEW_DUE = DUE + timedelta(days=2, hours=3)


def reminders(*remind_at: Any, **other: Any) -> dict[str, Any]:
    return {"reminders": [{"remindAt": moment, "channel": "sms"} for moment in remind_at], **other}


def test_snoozing_sets_the_due_date_and_snoozed_until_and_counts_one() -> None:
    task = after(created({"dueDate": DUE.isoformat()}), snooze(NEW_DUE))

    assert task.due_date == NEW_DUE
    assert task.snoozed_until == NEW_DUE
    assert task.snooze_count == 1
    assert task.updated_at == LATER


def test_snoozing_records_the_previous_and_new_due_date_and_the_count() -> None:
    events = decide(snooze(NEW_DUE), created({"dueDate": DUE.isoformat()}), LATER)

    assert events == [TaskSnoozed(previous_due_date=DUE, new_due_date=NEW_DUE, snooze_count=1)]


def test_each_snooze_adds_one_to_the_count() -> None:
    task = created()
    for count in range(1, 4):
        task = after(task, snooze(NEW_DUE + timedelta(days=count)))
        assert task.snooze_count == count


def test_a_task_without_a_due_date_can_be_snoozed() -> None:
    events = decide(snooze(NEW_DUE), created(), LATER)

    assert events == [TaskSnoozed(previous_due_date=None, new_due_date=NEW_DUE, snooze_count=1)]


def test_snoozing_to_a_time_in_the_past_is_rejected() -> None:
    with pytest.raises(RuleViolation, match="future"):
        decide(snooze(LATER - timedelta(seconds=1)), created(), LATER)


def test_snoozing_to_exactly_now_is_rejected() -> None:
    with pytest.raises(RuleViolation, match="future"):
        decide(snooze(LATER), created(), LATER)


def test_snoozing_to_just_after_now_is_accepted() -> None:
    moment = LATER + timedelta(milliseconds=1)

    assert after(created(), snooze(moment), at=LATER).due_date == moment


def test_snoozing_a_completed_task_is_rejected() -> None:
    with pytest.raises(RuleViolation, match="completed"):
        decide(snooze(NEW_DUE), after(created(), complete()), LATER)


@pytest.mark.parametrize("status", ["not_started", "in_progress", "pending", "deferred"])
def test_a_task_that_is_not_completed_can_be_snoozed(status: str) -> None:
    assert after(created({"status": status}), snooze(NEW_DUE)).snooze_count == 1


def test_a_snooze_time_without_offset_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="newDueDate"):
        snooze(datetime(2030, 5, 1, 9, 30))


class TestReminders:
    def test_snoozing_moves_every_reminder_by_the_due_date_delta(self) -> None:
        body = {
            "dueDate": DUE.isoformat(),
            "agentReminders": reminders("2025-03-10T14:00:00Z", "2025-03-09T15:00:00Z"),
        }

        task = after(created(body), snooze(NEW_DUE))

        assert task.agent_reminders == reminders("2025-03-12T17:00:00Z", "2025-03-11T18:00:00Z")

    def test_snoozing_earlier_moves_reminders_back(self) -> None:
        body = {"dueDate": DUE.isoformat(), "agentReminders": reminders("2025-03-10T14:00:00Z")}

        task = after(created(body), snooze(DUE - timedelta(days=1)), at=LATER)

        assert task.agent_reminders == reminders("2025-03-09T14:00:00Z")

    def test_the_snooze_event_carries_the_moved_reminders(self) -> None:
        body = {"dueDate": DUE.isoformat(), "agentReminders": reminders("2025-03-10T14:00:00Z")}

        [event] = decide(snooze(NEW_DUE), created(body), LATER)

        assert isinstance(event, TaskSnoozed)
        assert event.agent_reminders == reminders("2025-03-12T17:00:00Z")

    def test_a_reminder_keeps_its_offset_when_moved(self) -> None:
        body = {
            "dueDate": DUE.isoformat(),
            "agentReminders": reminders("2025-03-10T16:00:00+02:00"),
        }

        task = after(created(body), snooze(DUE + timedelta(hours=1)))

        assert task.agent_reminders == reminders("2025-03-10T17:00:00+02:00")

    def test_snoozing_without_adjust_reminders_leaves_them_as_they_are(self) -> None:
        body = {"dueDate": DUE.isoformat(), "agentReminders": reminders("2025-03-10T14:00:00Z")}

        events = decide(snooze(NEW_DUE, adjustReminders=False), created(body), LATER)

        assert events == [TaskSnoozed(previous_due_date=DUE, new_due_date=NEW_DUE, snooze_count=1)]

    def test_snoozing_a_task_without_a_previous_due_date_leaves_reminders(self) -> None:
        body = {"agentReminders": reminders("2025-03-10T14:00:00Z")}

        task = after(created(body), snooze(NEW_DUE))

        assert task.agent_reminders == reminders("2025-03-10T14:00:00Z")

    def test_other_keys_of_agent_reminders_are_kept(self) -> None:
        body = {
            "dueDate": DUE.isoformat(),
            "agentReminders": reminders("2025-03-10T14:00:00Z", enabled=True),
        }

        task = after(created(body), snooze(NEW_DUE))

        assert task.agent_reminders is not None
        assert task.agent_reminders["enabled"] is True

    def test_reminders_without_a_readable_time_are_kept_as_they_are(self) -> None:
        odd = [{"remindAt": "tomorrow"}, {"note": "no time"}, "just text", {"remindAt": 5}]
        body = {"dueDate": DUE.isoformat(), "agentReminders": {"reminders": odd}}

        task = after(created(body), snooze(NEW_DUE))

        assert task.agent_reminders == {"reminders": odd}

    def test_agent_reminders_without_a_reminder_list_are_left_alone(self) -> None:
        body = {"dueDate": DUE.isoformat(), "agentReminders": {"reminders": "daily"}}

        [event] = decide(snooze(NEW_DUE), created(body), LATER)

        assert isinstance(event, TaskSnoozed)
        assert event.agent_reminders is None
        assert after(created(body), snooze(NEW_DUE)).agent_reminders == {"reminders": "daily"}
