"""Tenants placed on three cells, each a PostgreSQL server of its own: each tenant is served
from its cell alone, a key never reaches another cell's tasks, and every command finds the
tenant's cell itself."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.migrate import head_revisions
from projections.registry import ROLLUPS
from projections.runner import catch_up
from tests.api.task_api import TaskApi
from tests.api.test_tenant_isolation import TASK_ENDPOINTS
from tests.cells.support import (
    Cells,
    cli_in_thread,
    events_by_cell,
    fetch,
    placed_tenant,
    served,
)
from tests.database import create_database, drop_database

DUE = "2030-04-15T10:00:00Z"


def api(client: Any, tenant: Any) -> TaskApi:
    return TaskApi(client, tenant)


async def tenants_by_cell(cells: Cells) -> dict[str, int]:
    rows = await fetch(cells[0].url, "SELECT coalesce(cell, 'a'), count(*) FROM tenants GROUP BY 1")
    return {cell.name: 0 for cell in cells} | {name: count for name, count in rows}


async def test_a_new_tenant_goes_to_the_cell_with_fewest_tenants_unless_one_is_named(
    three_cells: Cells,
) -> None:
    before = await tenants_by_cell(three_cells)

    placed = await placed_tenant(three_cells)
    named = await placed_tenant(three_cells, "c")

    assert before[placed.cell] == min(before.values())
    assert named.cell == "c"
    result = await cli_in_thread(three_cells, "tenant", "create", "shown", "--json")
    assert set(json.loads(result.stdout)) == {"tenantId", "apiKey", "cell"}
    unknown = await cli_in_thread(three_cells, "tenant", "create", "x", "--cell", "nowhere")
    assert unknown.exit_code == 1 and "no cell is named nowhere" in unknown.output


async def test_each_tenant_is_served_from_its_own_cell_alone(three_cells: Cells) -> None:
    placed = [await placed_tenant(three_cells, cell.name) for cell in three_cells]
    async with served(three_cells) as client:
        created = [await api(client, tenant).create(title=tenant.cell) for tenant in placed]

        for tenant, task in zip(placed, created, strict=True):
            assert (await api(client, tenant).get(task["_id"]))["title"] == tenant.cell
            counts = await events_by_cell(three_cells, tenant.tenant_id)
            assert counts == {cell.name: int(cell.name == tenant.cell) for cell in three_cells}


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ENDPOINTS)
async def test_a_key_of_one_cell_never_reaches_a_task_of_another(
    three_cells: Cells, method: str, suffix: str, body: Any
) -> None:
    owner = await placed_tenant(three_cells, "b")
    intruders = [await placed_tenant(three_cells, name) for name in ("a", "c")]
    async with served(three_cells) as client:
        task = await api(client, owner).create(title="Mine")

        for intruder in intruders:
            response = await api(client, intruder).call(
                method, f"/v1/tasks/{task['_id']}{suffix}", json=body
            )
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "NotFoundError"
            assert (await api(client, intruder).list())["tasks"] == []
            feed = await api(client, intruder).call("GET", "/v1/events")
            assert feed.json()["events"] == []

        assert await api(client, owner).get(task["_id"]) == task
        assert await api(client, owner).event_types(task["_id"]) == ["TASK_CREATED"]


async def test_every_endpoint_answers_for_a_tenant_off_the_home_cell(three_cells: Cells) -> None:
    tenant = await placed_tenant(three_cells, "c")
    async with served(three_cells) as client:
        tasks = api(client, tenant)
        task = await tasks.create(title="Call Ada", ownerId="agent_1", dueDate=DUE)
        task_id = task["_id"]
        first = await tasks.call(
            "POST", "/v1/tasks", json={"title": "Once"}, headers={"Idempotency-Key": "k1"}
        )
        again = await tasks.call(
            "POST", "/v1/tasks", json={"title": "Once"}, headers={"Idempotency-Key": "k1"}
        )
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        fetched = await tasks.call("GET", f"/v1/tasks/{task_id}")
        unchanged = await tasks.call(
            "GET", f"/v1/tasks/{task_id}", headers={"If-None-Match": fetched.headers["ETag"]}
        )
        assert unchanged.status_code == 304
        await tasks.update("PATCH", task_id, {"title": "Call Ada back"})
        await tasks.update("PUT", task_id, {"title": "Call Ada again", "priority": "high"})
        await tasks.act(task_id, "snooze", {"newDueDate": "2031-01-01T00:00:00Z"})
        await tasks.act(task_id, "reassign", {"newOwnerId": "agent_2"})
        await tasks.act(task_id, "complete", {"outcome": "resolved"})
        assert await tasks.titles(status="completed") == ["Call Ada again"]
        assert await tasks.titles(search="Once") == ["Once"]
        assert len(await tasks.events(task_id)) == 6
        feed = (await tasks.list("/v1/events"))["events"]
        assert len(feed) == 7
        assert {event["tenantId"] for event in feed} == {tenant.tenant_id}
        await catch_up(client.app.state.cells.of("c").engine, ROLLUPS)  # type: ignore[attr-defined]
        stats = await tasks.list("/v1/tasks/stats")
        assert stats["total"] == 2
        analytics = await tasks.list("/v1/tasks/analytics")
        assert analytics["completedTasks"] == 1
        removed = await tasks.call("DELETE", f"/v1/tasks/{task_id}")
        assert removed.status_code == 200, removed.text


async def test_the_commands_find_the_tenants_cell_themselves(three_cells: Cells) -> None:
    tenant = await placed_tenant(three_cells, "b")
    async with served(three_cells) as client:
        task = await api(client, tenant).create(title="Exported")
        created = await cli_in_thread(three_cells, "key", "create", tenant.tenant_id, "--json")
        assert created.exit_code == 0, created.output
        key = json.loads(created.stdout)
        second = api(client, type(tenant)(tenant.tenant_id, key["apiKey"], "b"))
        assert (await second.get(task["_id"]))["title"] == "Exported"
        revoked = await cli_in_thread(three_cells, "key", "revoke", key["keyId"])
        assert revoked.exit_code == 0, revoked.output
        assert (await second.call("GET", f"/v1/tasks/{task['_id']}")).status_code == 401

    exported = await cli_in_thread(three_cells, "audit", "export", "--tenant", tenant.tenant_id)
    assert exported.exit_code == 0, exported.output
    assert [json.loads(line)["taskId"] for line in exported.stdout.splitlines()] == [task["_id"]]
    replayed = await cli_in_thread(
        three_cells, "audit", "replay", "--tenant", tenant.tenant_id, "--task", task["_id"],
        "--at", "2100-01-01T00:00:00Z",
    )  # fmt: skip
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["title"] == "Exported"
    status = await cli_in_thread(three_cells, "projections", "status")
    assert status.exit_code == 0, status.output
    assert {line.split()[0] for line in status.stdout.splitlines()[1:]} == {"a", "b", "c"}
    verified = await cli_in_thread(three_cells, "projections", "verify")
    assert verified.exit_code == 0, verified.output
    assert "on every cell" in verified.stdout
    listed = await cli_in_thread(three_cells, "cell", "list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert set(rows) == {"a", "b", "c"}
    assert all(row[2] == "reachable" for row in rows.values())
    assert rows["a"][-1] == "(home)"


async def test_migrate_brings_every_cell_to_the_newest_migration(
    server_url: str, cell_servers: list[str]
) -> None:
    from app.cells import CellAddress

    urls = [await create_database(url) for url in (server_url, *cell_servers)]
    cells = tuple(CellAddress(name, url) for name, url in zip("abc", urls, strict=True))
    try:
        result = await cli_in_thread(cells, "migrate")

        assert result.exit_code == 0, result.output
        assert result.stdout.count("is at the newest migration") == 3
        for cell in cells:
            rows = await fetch(cell.url, "SELECT version_num FROM alembic_version")
            assert {row[0] for row in rows} == head_revisions()
    finally:
        for server, url in zip((server_url, *cell_servers), urls, strict=True):
            await drop_database(server, url)


async def test_ready_reports_each_cell(three_cells: Cells) -> None:
    async with served(three_cells) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["cells"]) == {"a", "b", "c"}
    assert all(cell["ok"] for cell in body["cells"].values())
    assert set(body["checks"]) == {"database", "migrations", "projections"}


@pytest.mark.parametrize(
    ("cells", "problem"),
    [
        ("a", "cell 1 is not NAME=URL"),
        ("A=postgresql://h/d", "cell 1: a name is 1 to 40 lowercase letters"),
        ("a=mysql://h/d", "cell a: its URL must start postgresql://"),
        ("a=postgresql://h/d,a=postgresql://h/e", "cell a is named twice"),
    ],
)
def test_a_malformed_cells_setting_stops_every_command_naming_it(cells: str, problem: str) -> None:
    from click.testing import CliRunner

    from app.cli import main

    result = CliRunner().invoke(main, ["cell", "list"], env={"TASKS_CELLS": cells})

    assert result.exit_code == 2
    assert f"invalid setting: TASKS_CELLS: {problem}" in result.output


async def test_a_scrape_reports_each_cells_projections(three_cells: Cells) -> None:
    async with served(three_cells) as client:
        scraped = (await client.get("/metrics")).text

    lag = [
        line for line in scraped.splitlines() if line.startswith("tasks_projection_lag_seconds{")
    ]
    assert {line.split('cell="')[1].split('"')[0] for line in lag} == {"a", "b", "c"}
