"""A client generated from the served OpenAPI document by openapi-python-client, as a client
developer would generate one, needs nothing else: it sends the headers the API honours as
parameters of each call, reads the headers the API answers with from its typed responses, and
types a task with every field the API always sends as present."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import httpx
import pytest

from app.database import engine_of
from tests.conftest import Tenant, new_tenant
from tests.fault.served_api import ServedApi

PACKAGE = "tasks_api_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def generated(
    served_api: ServedApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The client package, generated from the served document into a temporary folder."""
    folder = tmp_path_factory.mktemp("generated")
    document = folder / "openapi.json"
    document.write_bytes(httpx.get(f"{served_api.url}/schema/openapi.json").content)
    (folder / "config.yaml").write_text("post_hooks: []\n")
    generation = subprocess.run(
        [
            *(str(GENERATOR), "generate", "--path", str(document), "--meta", "none"),
            *("--output-path", str(folder / PACKAGE), "--config", str(folder / "config.yaml")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generation.returncode == 0, generation.stderr
    # Every schema and operation made it into the client.
    assert "Warning" not in generation.stdout + generation.stderr, generation.stdout
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


async def created_tenant(database_url: str) -> Tenant:
    async with engine_of(database_url) as engine:
        return await new_tenant(engine, "generated-client")


@pytest.fixture
def client(generated: ModuleType, served_api: ServedApi) -> Any:
    """The generated client as a new tenant, its key among the headers of every call."""
    tenant = asyncio.run(created_tenant(served_api.database_url))
    return generated.Client(base_url=served_api.url, headers=tenant.headers)


def test_a_generated_client_creates_once_with_an_idempotency_key(
    generated: ModuleType, client: Any
) -> None:
    create_task = module(generated, "api.tasks.create_task")
    models = module(generated, "models")
    body = models.CreateTask(title="Call back Ada", priority=models.Priority.HIGH)

    first = create_task.sync_detailed(client=client, body=body, idempotency_key="call-ada-1")
    retried = create_task.sync_detailed(client=client, body=body, idempotency_key="call-ada-1")

    assert (first.status_code, retried.status_code) == (201, 201)
    assert isinstance(first.parsed, models.TaskResult)
    assert retried.parsed.task.field_id == first.parsed.task.field_id
    assert "Idempotent-Replayed" not in first.headers
    assert retried.headers["Idempotent-Replayed"] == "true"


def test_a_generated_client_reads_the_version_and_the_rate_limit_from_its_responses(
    generated: ModuleType, client: Any
) -> None:
    create_task, get_task = (
        module(generated, f"api.tasks.{name}") for name in ("create_task", "get_task")
    )
    models = module(generated, "models")
    created = create_task.sync_detailed(client=client, body=models.CreateTask(title="Versioned"))
    task_id = created.parsed.task.field_id

    fetched = get_task.sync_detailed(task_id, client=client)
    unchanged = get_task.sync_detailed(
        task_id, client=client, if_none_match=fetched.headers["ETag"]
    )

    assert created.headers["ETag"] == fetched.headers["ETag"] == '"1"'
    assert fetched.headers["RateLimit"].startswith('"tenant";r=')
    assert fetched.headers["RateLimit-Policy"].startswith('"tenant";q=')
    assert unchanged.status_code == 304
    assert unchanged.parsed is None


def test_a_generated_client_updates_with_if_match_and_is_refused_on_a_stale_tag(
    generated: ModuleType, client: Any
) -> None:
    create_task, update_task = (
        module(generated, f"api.tasks.{name}") for name in ("create_task", "update_task")
    )
    models = module(generated, "models")
    created = create_task.sync_detailed(client=client, body=models.CreateTask(title="Old"))
    task_id, stale = created.parsed.task.field_id, created.headers["ETag"]

    updated = update_task.sync_detailed(
        task_id, client=client, body=models.TaskChanges(title="New"), if_match=stale
    )
    refused = update_task.sync_detailed(
        task_id, client=client, body=models.TaskChanges(title="Newer"), if_match=stale
    )

    assert updated.status_code == 200
    assert updated.parsed.task.title == "New"
    assert updated.headers["ETag"] == '"2"'
    assert refused.status_code == 412
    assert isinstance(refused.parsed, models.ErrorBody)
    assert refused.parsed.error.code == "PreconditionFailedError"
    assert refused.headers["ETag"] == '"2"'


def test_a_generated_client_types_a_task_with_every_field_the_api_sends(
    generated: ModuleType, client: Any
) -> None:
    create_task, get_task = (
        module(generated, f"api.tasks.{name}") for name in ("create_task", "get_task")
    )
    models = module(generated, "models")
    created = create_task.sync_detailed(client=client, body=models.CreateTask(title="Typed"))

    task = get_task.sync(created.parsed.task.field_id, client=client)

    assert isinstance(task, models.Task)
    optional = [
        field.name
        for field in attrs.fields(models.Task)
        if field.default is not attrs.NOTHING or "Unset" in str(field.type)
    ]
    assert optional == ["additional_properties"]
    assert isinstance(task.status, models.Status)
    assert task.tags == []
    assert task.due_date is None
