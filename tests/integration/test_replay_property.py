"""For any sequence of commands, folding a task's stored events gives back exactly its row in
the task view, or no row once the task is deleted.

Commands run through the service against the real database, as a request would run them.
Pytest-asyncio runs each Hypothesis example of an async test on the session's event loop,
so the examples share the session's engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from app import service
from app.database import Database
from app.tenants import Principal
from domain.commands import (
    CompleteTask,
    CreateTask,
    DeleteTask,
    ReassignTask,
    SnoozeTask,
    TaskChanges,
    TaskCommand,
    UpdateTask,
)
from domain.errors import RuleViolation
from domain.evolve import fold
from domain.task import Outcome, Priority, Status, TitleType
from projections import log, task_view
from store.tenant import tenant_transaction
from tests.conftest import new_tenant
from tests.unit.tasks import decoded

# PostgreSQL text and jsonb hold no NUL; JSON holds no lone surrogate.
CHARACTERS = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
short_texts = st.text(CHARACTERS, max_size=12)
texts = st.text(CHARACTERS, max_size=40)
titles = st.text(CHARACTERS, min_size=1, max_size=40).filter(lambda title: title.strip() != "")
names = st.none() | short_texts
# Few ids, so that owners and queues repeat and change back and forth.
owners = st.sampled_from(["u-ann", "u-bo", "u-cy"])
queues = st.sampled_from(["q-sales", "q-support"])
other_ids = st.sampled_from(["c-1", "c-2", "conv-1"])

# A time a client gives carries its offset: one without it is refused.
OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))]
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(OFFSETS),
).map(datetime.isoformat)
# Far enough ahead that the auto-complete sweep of a running app never acts on them.
future_moments = st.datetimes(
    min_value=datetime(2090, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(datetime.isoformat)

json_keys = st.sampled_from(["a", "b", "c", "d"]) | short_texts
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | short_texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_keys, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(json_keys, json_values, max_size=5)
reminders = st.fixed_dictionaries(
    {"reminders": st.lists(st.fixed_dictionaries({"remindAt": moments}), max_size=3)},
    optional={"enabled": st.booleans(), "a": json_values},
)
auto_completes = st.fixed_dictionaries(
    {}, optional={"at": st.none() | future_moments, "a": json_values, "b": json_values}
)
linked_entities = st.fixed_dictionaries(
    {"type": st.sampled_from(["deal", "lead"]), "id": other_ids},
    optional={"pipelineId": st.none() | other_ids, "name": names},
)


def values_of(enum: Any) -> st.SearchStrategy[str]:
    return st.sampled_from([member.value for member in enum])


TASK_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "titleType": values_of(TitleType),
    "description": st.none() | texts,
    "status": values_of(Status),
    "priority": values_of(Priority),
    "dueDate": st.none() | moments,
    "ownerId": st.none() | owners,
    "ownerName": names,
    "queueId": st.none() | queues,
    "relatedCustomerId": st.none() | other_ids,
    "relatedCustomerName": names,
    "relatedConversationId": st.none() | other_ids,
    "collaboratorIds": st.none() | st.lists(owners, max_size=3),
    "tags": st.none() | st.lists(st.text(CHARACTERS, min_size=1, max_size=8), max_size=4),
    "metadata": st.none() | json_objects,
    "linkedEntity": st.none() | linked_entities,
    "autoComplete": st.none() | auto_completes,
    "agentReminders": st.none() | reminders | json_objects,
}
COMPLETION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "outcome": st.none() | values_of(Outcome),
    "completionNotes": st.none() | texts,
}


@st.composite
def creations(draw: st.DrawFn) -> dict[str, Any]:
    """A valid create body; outcome and notes only on a task created as completed."""
    body = draw(st.fixed_dictionaries({"title": titles}, optional=TASK_FIELDS))
    if body.get("status") == Status.COMPLETED:
        body.update(draw(st.fixed_dictionaries({}, optional=COMPLETION_FIELDS)))
    return body


# Outcome and notes in a third of the updates: on an open task they break a rule.
changes = st.builds(
    lambda fields, completion: {**fields, **completion},
    st.fixed_dictionaries({}, optional={"title": titles, **TASK_FIELDS}),
    st.just({}) | st.just({}) | st.fixed_dictionaries({}, optional=COMPLETION_FIELDS),
)


@dataclass(frozen=True)
class Step:
    """One command of a sequence, as its request body."""

    kind: str
    body: dict[str, Any]

    def command(self) -> TaskCommand:
        match self.kind:
            case "put" | "patch":
                return UpdateTask(decoded(TaskChanges, self.body), merge=self.kind == "patch")
            case "complete":
                return decoded(CompleteTask, self.body)
            case "snooze":
                return decoded(SnoozeTask, self.body)
            case "reassign":
                return decoded(ReassignTask, self.body)
        return DeleteTask()


def steps_of(kind: str, bodies: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Step]:
    return bodies.map(lambda body: Step(kind, body))


steps = st.one_of(
    steps_of("put", changes),
    steps_of("patch", changes),
    steps_of("patch", changes),
    steps_of(
        "complete",
        st.fixed_dictionaries(
            {}, optional={"outcome": values_of(Outcome), "completionNotes": st.none() | texts}
        ),
    ),
    # Dates from 2000 on: the past ones must be refused.
    steps_of(
        "snooze",
        st.fixed_dictionaries({"newDueDate": moments}, optional={"adjustReminders": st.booleans()}),
    ),
    steps_of(
        "reassign", st.fixed_dictionaries({"newOwnerId": owners}, optional={"newOwnerName": names})
    ),
    steps_of("delete", st.just({})),
)


async def assert_replay_matches_view(db: Database, tenant_id: str, task_id: str) -> None:
    # One snapshot for both reads, in case a background sweeper writes in between.
    async with tenant_transaction(db.pool, tenant_id, "REPEATABLE READ") as conn:
        history = await log.stream(conn, tenant_id, task_id)
        row = await task_view.load(conn, tenant_id, task_id)

    replayed = fold((event.decode(), event.recorded_at) for event in history)

    assert [event.version for event in history] == list(range(1, len(history) + 1))
    if replayed is None:
        assert row is None
        return
    assert row is not None
    task, version, _head = row
    assert task == replayed
    assert version == len(history)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(creation=creations(), sequence=st.lists(steps, max_size=8))
async def test_folding_a_tasks_stored_events_reproduces_its_row_in_the_task_view(
    db: Database, engine: AsyncEngine, creation: dict[str, Any], sequence: list[Step]
) -> None:
    tenant = await new_tenant(engine, "replay-property")
    caller = service.Caller(
        principal=Principal(tenant.tenant_id, tenant.key_id), request_id="replay-property"
    )
    created = await service.create_task(db, caller, decoded(CreateTask, creation))
    assert created.task is not None
    task_id = created.task.id
    await assert_replay_matches_view(db, tenant.tenant_id, task_id)

    deleted = False
    for step in sequence:
        try:
            await service.run(db, caller, task_id, step.command())
            event(step.kind, "carried out")
        except RuleViolation:
            event(step.kind, "refused")  # nothing appended; the check below still holds
        except service.TaskNotFound:
            assert deleted, "only a deleted task goes missing"
        deleted = deleted or step.kind == "delete"
        await assert_replay_matches_view(db, tenant.tenant_id, task_id)
