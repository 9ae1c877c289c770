"""`tasks-api tenant move`: a tenant moved to another cell while it is in use loses, repeats
and mixes nothing, its /v1/events cursor keeps working, and a move that fails leaves it whole
on the source."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from typing import Any

import httpx
import nats
import pytest

from app import moves
from app.database import create_engine
from app.relay import Publisher, Relay, StreamAddress
from projections.registry import ROLLUPS
from projections.runner import catch_up
from projections.verify import Difference
from tests.cells.support import (
    Cells,
    PlacedTenant,
    cli_in_thread,
    events_by_cell,
    fetch,
    placed_tenant,
    served,
)
from tests.cells.test_relay import NATS_URL, logged_ids, stored

WRITERS = 8
WRITING_SECONDS = 4.0
UNTHROTTLED = {"tier": "enterprise", "rate_limit": str(10**9)}
PAUSE_BOUND_SECONDS = 5.0
CATCH_UP_SECONDS = 10.0


async def until_answered(
    client: httpx.AsyncClient, method: str, path: str, tenant: PlacedTenant, body: Any = None
) -> httpx.Response:
    """A command sent with an Idempotency-Key, and sent again with it after each 503, as a
    client that retries does; the first answer that is not a 503."""
    headers = {**tenant.headers, "Idempotency-Key": secrets.token_hex(12)}
    while True:
        response = await client.request(method, path, json=body, headers=headers)
        if response.status_code != 503:
            return response
        assert response.headers["Retry-After"], response.text
        await asyncio.sleep(0.05)


async def writer(
    client: httpx.AsyncClient, tenant: PlacedTenant, until: float, versions: dict[str, int]
) -> None:
    """Create a task, then change it with a command of three events, until `until`; each
    acknowledged task's version as its last answer gave it."""
    while time.monotonic() < until:
        created = await until_answered(client, "POST", "/v1/tasks", tenant, {"title": "Moving"})
        assert created.status_code == 201, created.text
        task_id = created.json()["task"]["_id"]
        versions[task_id] = 1
        change = {"title": "Moved", "ownerId": "agent_3", "status": "completed"}
        changed = await until_answered(client, "PATCH", f"/v1/tasks/{task_id}", tenant, change)
        assert changed.status_code == 200, changed.text
        versions[task_id] = int(changed.headers["ETag"].strip('W/"'))


async def follow(
    client: httpx.AsyncClient,
    tenant: PlacedTenant,
    stop: asyncio.Event,
    versions: dict[str, int],
    seen: list[str],
) -> None:
    """Read the feed page after page until `stop`, then until every acknowledged event has
    been read or CATCH_UP_SECONDS have passed; every event read goes to `seen`, as
    tenant/task/version.

    An empty page does not mean caught up: the feed reads behind the cell's horizon, which
    any transaction still open there (a projection runner's, say) holds back."""
    cursor = None
    deadline = None
    while True:
        if deadline is None and stop.is_set():
            deadline = time.monotonic() + CATCH_UP_SECONDS
        params = {"limit": 50, **({"after": cursor} if cursor else {})}
        page = await client.get("/v1/events", params=params, headers=tenant.headers)
        if page.status_code == 503:
            await asyncio.sleep(0.05)
            continue
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [f"{e['tenantId']}/{e['taskId']}/{e['version']}" for e in body["events"]]
        cursor = body["next"]
        if not body["events"]:
            if deadline is not None and (
                len(seen) >= sum(versions.values()) or time.monotonic() > deadline
            ):
                return
            await asyncio.sleep(0.02)


async def stats(client: httpx.AsyncClient, tenant: PlacedTenant) -> dict[str, Any]:
    response = await client.get("/v1/tasks/stats", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_tenant_moved_under_writers_and_a_follower_loses_and_repeats_nothing(
    three_cells: Cells,
) -> None:
    tenant = await placed_tenant(three_cells, "b", **UNTHROTTLED)
    versions: dict[str, int] = {}
    seen: list[str] = []
    async with served(three_cells, run_projections=True) as client:
        until = time.monotonic() + WRITING_SECONDS
        stop = asyncio.Event()
        writing = asyncio.gather(*(writer(client, tenant, until, versions) for _ in range(WRITERS)))
        following = asyncio.create_task(follow(client, tenant, stop, versions, seen))
        await asyncio.sleep(1.0)
        moved = await cli_in_thread(three_cells, "tenant", "move", tenant.tenant_id, "--to", "c")
        await writing
        stop.set()
        await following
        assert moved.exit_code == 0, moved.output
        await catch_up(client.app.state.cells.of("c").engine, ROLLUPS)  # type: ignore[attr-defined]
        before_rebuild = await stats(client, tenant)
        rebuilt = await cli_in_thread(three_cells, "projections", "rebuild")
        assert rebuilt.exit_code == 0, rebuilt.output
        after_rebuild = await stats(client, tenant)

    paused = float(re.search(r"paused ([\d.]+) s", moved.stdout)[1])  # type: ignore[index]
    assert paused < PAUSE_BOUND_SECONDS
    acknowledged = sum(versions.values())
    assert await events_by_cell(three_cells, tenant.tenant_id) == {
        "a": 0,
        "b": 0,
        "c": acknowledged,
    }
    logged = await logged_ids(three_cells[2].url, tenant.tenant_id)
    assert sorted(logged) == sorted(
        f"{tenant.tenant_id}/{task}/{version}"
        for task, last in versions.items()
        for version in range(1, last + 1)
    )
    assert seen == logged, "the follower missed, repeated or reordered events"
    assert before_rebuild == after_rebuild
    assert before_rebuild["total"] == len(versions)
    verified = await cli_in_thread(three_cells, "projections", "verify")
    assert verified.exit_code == 0, verified.output
    # The copies chain on the target as on the source, and the source keeps no digest of
    # the events it gave away.
    whole = await cli_in_thread(three_cells, "audit", "verify")
    assert whole.exit_code == 0, whole.output
    source = await fetch(
        three_cells[1].url,
        "SELECT moved_to FROM tenant_fences WHERE tenant_id = $1",
        tenant.tenant_id,
    )
    assert [row[0] for row in source] == ["c"]


async def test_a_tenant_moves_back_and_its_cursor_still_reads_on(three_cells: Cells) -> None:
    tenant = await placed_tenant(three_cells, "a", **UNTHROTTLED)
    async with served(three_cells) as client:
        for title in ("one", "two"):
            await until_answered(client, "POST", "/v1/tasks", tenant, {"title": title})
        first = (await client.get("/v1/events", headers=tenant.headers)).json()
        old_form = "{transactionId}.{position}".format(**first["events"][-1])
        for cell in ("b", "a"):
            moved = await cli_in_thread(
                three_cells, "tenant", "move", tenant.tenant_id, "--to", cell
            )
            assert moved.exit_code == 0, moved.output
        await until_answered(client, "POST", "/v1/tasks", tenant, {"title": "three"})
        rest = await client.get(
            "/v1/events", params={"after": first["next"]}, headers=tenant.headers
        )
        outdated = await client.get(
            "/v1/events", params={"after": old_form}, headers=tenant.headers
        )

    assert rest.status_code == 200, rest.text
    assert [e["data"]["task"]["title"] for e in rest.json()["events"]] == ["three"]
    assert outdated.status_code == 400
    assert "before the tenant moved" in outdated.json()["error"]["details"][0]


@pytest.mark.parametrize("failing_at", ["the copy", "the check", "the switch"])
async def test_a_move_that_fails_leaves_the_tenant_whole_on_its_cell(
    three_cells: Cells, failing_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await placed_tenant(three_cells, "b", **UNTHROTTLED)
    engines = {cell.name: create_engine(cell.url, pool_size=2) for cell in three_cells}

    class Failed(Exception):
        pass

    def say(line: str) -> None:
        if failing_at == "the copy" and line.startswith("Copied"):
            raise Failed(line)

    async def failing_place(*_: Any) -> None:
        raise Failed("the directory")

    async def differing(projector: Any) -> list[Difference]:
        """The rollups on the target lack a row a replay has."""
        if projector.name != "task_rollups":
            return []
        row = (tenant.tenant_id,)
        return [
            Difference(projector.name, "task_totals", {row}, set(), ("tenant_id",), ("tenant_id",))
        ]

    if failing_at == "the check":
        monkeypatch.setattr(moves, "verify", lambda _, projector, __: differing(projector))
    if failing_at == "the switch":
        monkeypatch.setattr(moves, "_place", failing_place)
    try:
        async with served(three_cells) as client:
            task = await until_answered(client, "POST", "/v1/tasks", tenant, {"title": "Stays"})
            with pytest.raises(moves.MoveRefused if failing_at == "the check" else Failed):
                await moves.move_tenant(engines, "a", tenant.tenant_id, "c", say)
            after = await until_answered(
                client,
                "PATCH",
                f"/v1/tasks/{task.json()['task']['_id']}",
                tenant,
                {"title": "Still"},
            )
    finally:
        for engine in engines.values():
            await engine.dispose()

    assert after.status_code == 200, after.text
    assert await events_by_cell(three_cells, tenant.tenant_id) == {"a": 0, "b": 2, "c": 0}
    directory = await fetch(
        three_cells[0].url,
        "SELECT cell, placement FROM tenants WHERE tenant_id = $1",
        tenant.tenant_id,
    )
    assert tuple(directory[0]) == ("b", 0)
    verified = await cli_in_thread(three_cells, "projections", "verify")
    assert verified.exit_code == 0, verified.output


async def test_the_target_relay_does_not_publish_again_what_the_source_relay_had(
    three_cells: Cells,
) -> None:
    name = f"move{secrets.token_hex(4)}"
    address = StreamAddress(NATS_URL, name.upper(), f"{name}.tasks.events")
    from app.relay import StreamLimits, set_up_stream

    await set_up_stream(address, StreamLimits())
    tenant = await placed_tenant(three_cells, "b", **UNTHROTTLED)
    publisher = Publisher(address)
    source, target = (create_engine(cell.url, pool_size=2) for cell in three_cells[1:])
    try:
        await catch_up(target, Relay(publisher))
        async with served(three_cells) as client:
            for title in ("before", "also before"):
                await until_answered(client, "POST", "/v1/tasks", tenant, {"title": title})
            await catch_up(source, Relay(publisher))
            await until_answered(client, "POST", "/v1/tasks", tenant, {"title": "unpublished"})
            moved = await cli_in_thread(
                three_cells, "tenant", "move", tenant.tenant_id, "--to", "c"
            )
            assert moved.exit_code == 0, moved.output
            await until_answered(client, "POST", "/v1/tasks", tenant, {"title": "after"})
        relay = Relay(publisher)
        await catch_up(target, relay)
        messages = await stored(address)
    finally:
        await publisher.close()
        await source.dispose()
        await target.dispose()
        client_ = await nats.connect(NATS_URL)
        await client_.jetstream().delete_stream(address.stream)
        await client_.close()

    assert relay.duplicates == 0
    titles = [
        json.loads(m.data)["data"]["task"]["title"]
        for m in messages
        if json.loads(m.data)["tenantId"] == tenant.tenant_id
    ]
    assert titles == ["before", "also before", "unpublished", "after"]
