"""Moving a tenant's log: `audit export` from one database, `audit import` into another. The
import re-appends every event (new positions and transaction ids, all else kept), creates the
tenant without keys, rebuilds the projections, and refuses whole what the log cannot take."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app import service
from app.cli import main
from app.database import engine_of, open_database
from app.store.tables import api_keys, tenants
from domain.commands import CreateTask
from projections.tables import events, task_view
from tests.api.task_api import TaskApi, now, timestamp
from tests.conftest import new_tenant
from tests.database import migrated_database
from tests.integration.projection_support import new_caller

# What an import keeps of each event: all but its position and transaction id.
KEPT = (
    events.c.tenant_id,
    events.c.stream_id,
    events.c.stream_version,
    events.c.event_type,
    events.c.payload_version,
    events.c.data,
    events.c.metadata,
    events.c.recorded_at,
)


def cli(args: list[str], database_url: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, args, env={"DATABASE_URL": database_url}, input=stdin)


@dataclass(frozen=True)
class Export:
    tenant_id: str
    path: Path
    # The digest the export printed, which `audit import --digest` checks.
    digest: str

    def lines(self) -> list[bytes]:
        return self.path.read_bytes().splitlines(keepends=True)


async def write_history(tasks: TaskApi) -> None:
    """Tasks created, updated, completed, snoozed, reassigned and deleted."""
    due = timestamp(now() + timedelta(days=3))
    for number in range(6):
        task = await tasks.create(
            title=f"Call back {number}", priority="high", dueDate=due, tags=["moved"]
        )
        task_id = task["_id"]
        await tasks.update("PATCH", task_id, {"status": "in_progress", "metadata": {"n": number}})
        if number % 3 == 0:
            await tasks.act(task_id, "snooze", {"newDueDate": timestamp(now() + timedelta(days=9))})
        if number % 2 == 0:
            await tasks.act(task_id, "reassign", {"newOwnerId": "agent_7"})
            await tasks.act(task_id, "complete", {"completionNotes": "Done"})
        if number == 5:
            assert (await tasks.call("DELETE", f"/v1/tasks/{task_id}")).status_code == 200


@pytest.fixture(scope="module")
async def exported(
    client: AsyncTestClient,
    engine: AsyncEngine,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Export:
    """A tenant's history in the session's database, and its export."""
    tenant = await new_tenant(engine, "moving")
    await write_history(TaskApi(client, tenant))
    result = await asyncio.to_thread(
        cli, ["audit", "export", "--tenant", tenant.tenant_id], database_url
    )
    assert result.exit_code == 0, result.output
    path = tmp_path_factory.mktemp("export") / "events.ndjson"
    path.write_bytes(result.stdout_bytes)
    printed = re.search(r"Exported (\d+) events; their digest is ([0-9a-f]{64})", result.stderr)
    assert printed is not None, result.stderr
    assert int(printed[1]) == len(result.stdout_bytes.splitlines())
    return Export(tenant.tenant_id, path, printed[2])


@pytest.fixture
def target_url(server_url: str) -> Iterator[str]:
    """Another database, migrated and empty: where the log moves to."""
    with migrated_database(server_url) as url:
        yield url


@pytest.fixture
async def target(target_url: str) -> AsyncIterator[AsyncEngine]:
    async with engine_of(target_url) as engine:
        yield engine


async def logged(engine: AsyncEngine, tenant_id: str) -> list[tuple[Any, ...]]:
    """The tenant's events in commit order, as an import keeps them."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(*KEPT)
            .where(events.c.tenant_id == tenant_id)
            .order_by(events.c.transaction_id, events.c.global_position)
        )
        return [tuple(row) for row in rows]


async def task_views(engine: AsyncEngine, tenant_id: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(task_view).where(task_view.c.tenant_id == tenant_id).order_by("task_id")
        )
        return [tuple(row) for row in rows]


async def import_into(url: str, *args: str, stdin: bytes | None = None) -> Result:
    return await asyncio.to_thread(cli, ["audit", "import", *args], url, stdin)


async def test_an_export_holds_every_event_committed_even_behind_a_transaction_in_flight(
    client: AsyncTestClient, engine: AsyncEngine, database_url: str
) -> None:
    tenant = await new_tenant(engine, "exporting")
    async with engine.connect() as in_flight:
        # A transaction anywhere in the cluster, begun before the task is written and still open.
        await in_flight.execute(sa.text("SELECT pg_current_xact_id()"))
        task = await TaskApi(client, tenant).create(title="Written while another writes")

        result = await asyncio.to_thread(
            cli, ["audit", "export", "--tenant", tenant.tenant_id], database_url
        )

        await in_flight.rollback()
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert json.loads(line)["taskId"] == task["_id"]


async def test_an_imported_log_gives_the_same_task_views_and_events(
    exported: Export, engine: AsyncEngine, target: AsyncEngine, target_url: str
) -> None:
    imported = await import_into(
        target_url, "-", "--tenant-name", "Moving Co", stdin=exported.path.read_bytes()
    )

    assert imported.exit_code == 0, imported.output
    assert f"Imported {len(exported.lines())} events" in imported.stdout
    assert f"tasks-api key create {exported.tenant_id}" in imported.stdout
    verified = await asyncio.to_thread(cli, ["projections", "verify"], target_url)
    assert verified.exit_code == 0, verified.output
    assert await task_views(target, exported.tenant_id) == await task_views(
        engine, exported.tenant_id
    )
    assert len(await task_views(target, exported.tenant_id)) == 5  # one of six was deleted
    assert await logged(target, exported.tenant_id) == await logged(engine, exported.tenant_id)
    async with target.connect() as conn:
        name = await conn.scalar(sa.select(tenants.c.name))
        keys = await conn.scalar(sa.select(sa.func.count()).select_from(api_keys))
    assert (name, keys) == ("Moving Co", 0)


async def test_an_export_whose_payloads_carry_their_type_imports_the_same_events(
    exported: Export, engine: AsyncEngine, target: AsyncEngine, target_url: str
) -> None:
    # Exports made before an event said its type once carried it in the payload too.
    older = [json.loads(line) for line in exported.lines()]
    for event in older:
        assert "type" not in event["data"]
        event["data"] = {"type": event["type"], **event["data"]}
    lines = b"".join(json.dumps(event).encode() + b"\n" for event in older)

    assert (await import_into(target_url, "-", stdin=lines)).exit_code == 0

    assert await logged(target, exported.tenant_id) == await logged(engine, exported.tenant_id)


async def test_the_imported_events_get_new_positions_and_transaction_ids(
    exported: Export, target: AsyncEngine, target_url: str
) -> None:
    # The target's log already holds events, so positions cannot coincide by chance.
    caller = await new_caller(target, "already-here")
    async with open_database(target_url) as target_db:
        for _ in range(3):
            await service.create_task(target_db, caller, CreateTask(title="Already here"))

    assert (await import_into(target_url, str(exported.path))).exit_code == 0

    exported_at = [
        (event["position"], event["transactionId"]) for event in map(json.loads, exported.lines())
    ]
    async with target.connect() as conn:
        rows = await conn.execute(
            sa.select(events.c.global_position, events.c.transaction_id.cast(sa.Text))
            .where(events.c.tenant_id == exported.tenant_id)
            .order_by(events.c.global_position)
        )
        here = [(position, int(transaction_id)) for position, transaction_id in rows]
    assert [position for position, _ in here] == list(range(4, 4 + len(exported_at)))
    assert {transaction_id for _, transaction_id in here}.isdisjoint(
        {transaction_id for _, transaction_id in exported_at}
    )


async def test_importing_events_already_in_the_log_is_refused_whole(
    exported: Export, target: AsyncEngine, target_url: str
) -> None:
    assert (await import_into(target_url, str(exported.path))).exit_code == 0
    before = await logged(target, exported.tenant_id)

    again = await import_into(target_url, str(exported.path))

    assert again.exit_code == 1
    assert "already has version 1" in again.stderr
    assert await logged(target, exported.tenant_id) == before


async def test_an_export_missing_a_tasks_first_events_is_refused_whole(
    exported: Export, target: AsyncEngine, target_url: str
) -> None:
    cut = b"".join(exported.lines()[1:])  # the first task's creation is missing

    refused = await import_into(target_url, "-", stdin=cut)

    assert refused.exit_code == 1
    assert "has version 2 but not version 1" in refused.stderr
    assert await logged(target, exported.tenant_id) == []
    async with target.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(tenants)) == 0


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b'{"tenantId": "t"}\n',
        # A TASK_DELETED whose data is a TASK_SNOOZED's.
        b'{"tenantId":"t","taskId":"000000000000000000000001","version":1,"position":1,'
        b'"transactionId":1,"type":"TASK_DELETED","payloadVersion":1,'
        b'"data":{"type":"TASK_SNOOZED","from":null,"to":"2026-01-01T00:00:00Z","count":1},'
        b'"metadata":{},"recordedAt":"2026-01-01T00:00:00Z"}\n',
    ],
)
async def test_a_line_that_is_not_an_exported_event_is_refused_naming_it(
    exported: Export, target: AsyncEngine, target_url: str, line: bytes
) -> None:
    lines = exported.lines()

    refused = await import_into(target_url, "-", stdin=b"".join([*lines, line]))

    assert refused.exit_code == 1
    assert f"line {len(lines) + 1}:" in refused.stderr
    assert await logged(target, exported.tenant_id) == []


async def hashes(engine: AsyncEngine, tenant_id: str) -> list[bytes]:
    """The tenant's events' hashes in commit order."""
    async with engine.connect() as conn:
        rows = await conn.scalars(
            sa.select(events.c.hash)
            .where(events.c.tenant_id == tenant_id)
            .order_by(events.c.transaction_id, events.c.global_position)
        )
        return list(rows)


async def test_an_export_carries_each_events_hash_and_the_import_keeps_it(
    exported: Export, engine: AsyncEngine, target: AsyncEngine, target_url: str
) -> None:
    source = await hashes(engine, exported.tenant_id)
    assert [json.loads(line)["hash"] for line in exported.lines()] == [h.hex() for h in source]

    assert (await import_into(target_url, str(exported.path))).exit_code == 0

    assert await hashes(target, exported.tenant_id) == source
    verified = await asyncio.to_thread(cli, ["audit", "verify"], target_url)
    assert verified.exit_code == 0, verified.output


async def test_an_export_altered_after_it_was_made_is_refused_naming_the_line(
    exported: Export, target: AsyncEngine, target_url: str
) -> None:
    lines = [json.loads(line) for line in exported.lines()]
    altered = next(n for n, event in enumerate(lines) if event["type"] == "TASK_COMPLETED")
    lines[altered]["data"]["completionNotes"] = "Never done"
    event = lines[altered]

    refused = await import_into(
        target_url, "-", stdin=b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    )

    assert refused.exit_code == 1
    assert (
        f"line {altered + 1}: version {event['version']} of task {event['taskId']} of tenant "
        f"{exported.tenant_id} does not match its hash" in refused.stderr
    )
    assert await logged(target, exported.tenant_id) == []


async def test_an_export_with_a_hash_made_up_for_an_altered_line_is_refused_at_the_next(
    exported: Export, target: AsyncEngine, target_url: str
) -> None:
    lines = [json.loads(line) for line in exported.lines()]
    first_task = lines[0]["taskId"]
    lines[0]["data"]["task"]["title"] = "Another title"
    # Whoever altered it gave it the hash its new content chains to.
    async with target.connect() as conn:
        lines[0]["hash"] = await conn.scalar(
            sa.text(
                "SELECT encode(event_hash(:no_hash, :tenant, :task, 1, :type, "
                "CAST(:payload_version AS smallint), CAST(CAST(:data AS text) AS jsonb), "
                "CAST(CAST(:metadata AS text) AS jsonb), "
                "CAST(CAST(:recorded_at AS text) AS timestamptz)), 'hex')"
            ),
            {
                "no_hash": bytes(32),
                "tenant": exported.tenant_id,
                "task": first_task,
                "type": lines[0]["type"],
                "payload_version": lines[0]["payloadVersion"],
                "data": json.dumps({"type": lines[0]["type"], **lines[0]["data"]}),
                "metadata": json.dumps(lines[0]["metadata"]),
                "recorded_at": lines[0]["recordedAt"],
            },
        )
    second = next(n for n, line in enumerate(lines) if n and line["taskId"] == first_task)

    refused = await import_into(
        target_url, "-", stdin=b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    )

    assert refused.exit_code == 1
    assert f"line {second + 1}: version 2 of task {first_task}" in refused.stderr


async def test_an_import_given_the_exports_digest_takes_every_event(
    exported: Export, engine: AsyncEngine, target: AsyncEngine, target_url: str
) -> None:
    imported = await import_into(
        target_url, "-", "--digest", exported.digest, stdin=exported.path.read_bytes()
    )

    assert imported.exit_code == 0, imported.output
    assert f"whose digest is {exported.digest}" in imported.stderr
    assert await logged(target, exported.tenant_id) == await logged(engine, exported.tenant_id)


@pytest.mark.parametrize("cut", ["a task's last event", "two tasks' events swapped"])
async def test_an_export_cut_or_reordered_is_refused_given_its_digest(
    exported: Export, target: AsyncEngine, target_url: str, cut: str
) -> None:
    lines = exported.lines()
    if cut == "a task's last event":
        # No event chains to the last one of its task: only the digest misses it.
        lines = lines[:-1]
    else:
        # Two neighbours of different tasks: each task's own order, and so its chain, holds.
        tasks = [json.loads(line)["taskId"] for line in lines]
        n = next(n for n in range(len(lines) - 1) if tasks[n] != tasks[n + 1])
        lines[n], lines[n + 1] = lines[n + 1], lines[n]
    altered = b"".join(lines)

    refused = await import_into(target_url, "-", "--digest", exported.digest, stdin=altered)

    assert refused.exit_code == 1
    assert f"not to {exported.digest}: events were removed, added or moved" in refused.stderr
    assert await logged(target, exported.tenant_id) == []


async def test_a_digest_that_is_no_sha256_is_refused(exported: Export, target_url: str) -> None:
    refused = await import_into(
        target_url, "-", "--digest", "abc", stdin=exported.path.read_bytes()
    )

    assert refused.exit_code == 2
    assert "--digest must be 64 hex digits" in refused.stderr
