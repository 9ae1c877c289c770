"""PostgreSQL stopped and started again under load: an embedded server this test starts in a
folder of its own, never the machine's shared one. While it is down the API answers every
request 503 ServiceUnavailableError with Retry-After, never 500 and never silence; within
5 seconds of its return the same API process serves again, and the log keeps every command
it acknowledged, whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.database import engine_of
from app.embedded import EmbeddedPostgres
from app.migrate import upgrade_to_head
from tests.conftest import Tenant
from tests.fault.conftest import unthrottled_tenant
from tests.fault.event_log import assert_log_keeps_what_was_answered
from tests.fault.served_api import ServedApi
from tests.fault.write_load import WriteLoad

WORKERS = 4
UP_SECONDS = 0.5
DOWN_SECONDS = 2
RECOVERY_SECONDS = 5


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    server = EmbeddedPostgres(tmp_path / "postgres")
    url = await asyncio.to_thread(server.start)
    yield server, url
    await asyncio.to_thread(server.stop)


async def migrated_with_a_tenant(url: str) -> Tenant:
    await asyncio.to_thread(upgrade_to_head, url)
    async with engine_of(url) as engine:
        return await unthrottled_tenant(engine)


async def test_the_api_answers_503_while_postgres_is_down_and_serves_once_it_is_back(
    own_postgres: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    postgres, url = own_postgres
    tenant = await migrated_with_a_tenant(url)
    with ServedApi(url, tmp_path / "server.log") as api:
        load = WriteLoad(api.url, tenant.api_key)
        stop = asyncio.Event()
        writing = asyncio.create_task(load.run(WORKERS, stop, seconds=30))
        await asyncio.sleep(UP_SECONDS)
        down_at = time.monotonic()
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(DOWN_SECONDS)
        assert await asyncio.to_thread(postgres.start) == url
        back_at = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS + 1)
        stop.set()
        await writing

    statuses = {sent.status for sent in load.sent}
    assert statuses <= {200, 201, 503}, statuses
    refused = [sent for sent in load.sent if sent.status == 503]
    assert any(down_at <= sent.sent_at <= back_at for sent in refused), "the outage went unseen"
    assert all(
        sent.retry_after and sent.error_code == "ServiceUnavailableError" for sent in refused
    )
    after_return = [sent for sent in load.acknowledged() if sent.sent_at >= back_at]
    assert after_return, "nothing was served after postgres came back"
    assert min(sent.answered_at for sent in after_return) - back_at <= RECOVERY_SECONDS
    late = [sent for sent in load.sent if sent.sent_at >= back_at + RECOVERY_SECONDS]
    assert late and all(sent.acknowledged for sent in late)
    async with engine_of(url) as engine:
        await assert_log_keeps_what_was_answered(engine, load.sent)
