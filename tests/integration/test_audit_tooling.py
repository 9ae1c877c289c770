"""The operator's audit tools explain what they find: `projections verify` names the table,
key and column of each difference with both values, `projections status` lists every
projection, and `audit replay` tells a deleted task from one not created yet and from one
the tenant never had.

Verify reports on the whole database, so these tests tamper with a database of their own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncEngine

from app import service
from app.cli import main
from app.database import Database, create_engine, open_database
from domain.commands import DeleteTask
from projections.tables import events, owner_names, task_totals, task_view
from tests.api.task_api import timestamp
from tests.database import migrated_database
from tests.integration.projection_support import apply_rollups, create, new_caller
from tests.unit.tasks import complete

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def tooling_database_url(database_url: str) -> Iterator[str]:
    with migrated_database(database_url) as url:
        yield url


@pytest.fixture(scope="module")
async def engine(tooling_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(tooling_database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def db(tooling_database_url: str) -> AsyncIterator[Database]:
    async with open_database(tooling_database_url, pool_size=2) as database:
        yield database


async def cli(database_url: str, *args: str) -> Result:
    return await asyncio.to_thread(
        CliRunner().invoke, main, list(args), env={"DATABASE_URL": database_url}
    )


async def recorded(engine: AsyncEngine, task_id: str) -> list[datetime]:
    """When each of a task's events was recorded, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.scalars(
            sa.select(events.c.recorded_at)
            .where(events.c.stream_id == task_id)
            .order_by(events.c.stream_version)
        )
        return list(rows)


async def test_verify_names_the_table_key_and_column_of_each_difference_with_both_values(
    db: Database, engine: AsyncEngine, tooling_database_url: str
) -> None:
    caller = await new_caller(engine, "verified")
    tenant_id = caller.principal.tenant_id
    honest = await create(db, caller, title="Honest title")
    await create(db, caller, ownerId="agent_1", ownerName="Ann")
    assert honest.task is not None
    await apply_rollups(engine)
    assert (await cli(tooling_database_url, "projections", "verify")).exit_code == 0

    async with engine.begin() as conn:
        await conn.execute(
            task_view.update().where(task_view.c.task_id == honest.task.id).values(title="tampered")
        )
        await conn.execute(
            task_totals.update()
            .where(task_totals.c.tenant_id == tenant_id, task_totals.c.owner_id.is_(None))
            .values(tasks=5)
        )
        await conn.execute(owner_names.delete().where(owner_names.c.tenant_id == tenant_id))
        await conn.execute(
            owner_names.insert().values(tenant_id=tenant_id, owner_id="agent_9", owner_name="Zed")
        )

    result = await cli(tooling_database_url, "projections", "verify")

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"task_view (tenant_id='{tenant_id}', task_id='{honest.task.id}'): "
        "title is 'tampered', a replay of the log gives 'Honest title'",
        f"task_totals (tenant_id='{tenant_id}', owner_id=NULL, status='not_started', "
        "priority='normal'): tasks is 5, a replay of the log gives 1",
        f"owner_names (tenant_id='{tenant_id}', owner_id='agent_1'): "
        "missing; a replay of the log has owner_name='Ann'",
        f"owner_names (tenant_id='{tenant_id}', owner_id='agent_9'): "
        "a row a replay of the log does not have (owner_name='Zed')",
    ]


async def test_status_lists_every_projection_the_task_view_and_the_log_digests_included(
    db: Database, engine: AsyncEngine, tooling_database_url: str
) -> None:
    caller = await new_caller(engine, "status")
    await create(db, caller)

    result = await cli(tooling_database_url, "projections", "status")

    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [(row[0], " ".join(row[1:-3])) for row in rows] == [
        ("task_view", "inline"),
        ("task_rollups", "by a runner"),
        ("log_digest", "by a runner"),
    ]
    task_view_row, rollups_row, digest_row = rows
    assert task_view_row[-2:] == ["0", "0"], "the task view is never behind"
    assert int(rollups_row[-2]) >= 1, "no runner applies the rollups here"
    assert int(digest_row[-2]) >= 1, "no runner folds the log digests here"


async def test_replay_tells_apart_not_created_yet_deleted_and_no_such_task(
    db: Database, engine: AsyncEngine, tooling_database_url: str
) -> None:
    caller = await new_caller(engine, "replayed")
    tenant_id = caller.principal.tenant_id
    created = await create(db, caller, title="Replayed")
    assert created.task is not None
    task_id = created.task.id
    await asyncio.sleep(0.01)
    await service.run(db, caller, task_id, complete())
    await asyncio.sleep(0.01)
    await service.run(db, caller, task_id, DeleteTask())
    born, completed, deleted = await recorded(engine, task_id)

    async def replay(task: str, at: datetime, tenant: str = tenant_id) -> Result:
        return await cli(
            tooling_database_url,
            *("audit", "replay", "--tenant", tenant, "--task", task, "--at", timestamp(at)),
        )

    before = await replay(task_id, born - timedelta(seconds=1))
    assert before.exit_code == 1
    assert before.stderr.strip() == (
        f"Error: task {task_id} was not created yet at "
        f"{timestamp(born - timedelta(seconds=1))}: it was created at {timestamp(born)}"
    )

    alive = await replay(task_id, completed)
    assert alive.exit_code == 0, alive.output
    assert json.loads(alive.stdout)["status"] == "completed"

    after = await replay(task_id, deleted + timedelta(days=1))
    assert after.exit_code == 1
    assert f"task {task_id} was deleted at {timestamp(deleted)}" in after.stderr

    unknown = await replay("6b0000000000000000000000", completed)
    assert unknown.exit_code == 1
    assert f"tenant {tenant_id} has no task 6b0000000000000000000000" in unknown.stderr

    other = await new_caller(engine, "not-the-owner")
    elsewhere = await replay(task_id, completed, tenant=other.principal.tenant_id)
    assert elsewhere.exit_code == 1
    assert f"has no task {task_id}" in elsewhere.stderr

    no_tenant = await replay(task_id, completed, tenant="6b0000000000000000000001")
    assert no_tenant.exit_code == 1
    assert "no tenant has the id 6b0000000000000000000001" in no_tenant.stderr


async def test_replay_takes_a_date_alone_as_its_first_instant_utc_as_as_of_does(
    db: Database, engine: AsyncEngine, tooling_database_url: str
) -> None:
    caller = await new_caller(engine, "replayed-by-day")
    created = await create(db, caller, title="Replayed by day")
    assert created.task is not None
    task_id = created.task.id
    (born,) = await recorded(engine, task_id)
    day = born.date()

    async def replay(at: str) -> Result:
        return await cli(
            tooling_database_url,
            *("audit", "replay", "--tenant", caller.principal.tenant_id, "--task", task_id),
            *("--at", at),
        )

    next_day = await replay((day + timedelta(days=1)).isoformat())
    assert next_day.exit_code == 0, next_day.output
    assert json.loads(next_day.stdout)["title"] == "Replayed by day"

    same_day = await replay(day.isoformat())
    assert same_day.exit_code == 1
    assert f"was not created yet at {day.isoformat()}T00:00:00Z" in same_day.stderr

    local = await replay(f"{day.isoformat()}T12:00:00")
    assert local.exit_code == 2
    assert "--at must give its offset from UTC" in local.stderr
