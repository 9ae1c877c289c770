"""The `tasks-api` command, run in-process against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from app import tenants
from app.cli import main
from app.database import open_database
from app.settings import ENV_NAMES, mask_password
from tests.database import create_database, drop_database, migrated_database


def run(args: list[str], env: dict[str, str | None]) -> Result:
    return CliRunner().invoke(main, args, env=env)


def authenticates(database_url: str, api_key: str) -> bool:
    async def check() -> bool:
        async with open_database(database_url, pool_size=1) as db:
            return await tenants.authenticate(db.pool, api_key) is not None

    return asyncio.run(check())


@pytest.fixture
def env(database_url: str) -> dict[str, str | None]:
    return {"DATABASE_URL": database_url}


@pytest.fixture
def tenant_id(env: dict[str, str | None]) -> str:
    result = run(["tenant", "create", "acme", "--json"], env)
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["tenantId"])


def test_tenant_create_with_json_prints_exactly_one_json_object(
    env: dict[str, str | None], database_url: str
) -> None:
    result = run(
        ["tenant", "create", "acme", "--tier", "growth", "--rate-limit", "120", "--json"], env
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    created = json.loads(result.stdout)
    assert set(created) == {"tenantId", "apiKey"}
    assert created["apiKey"].startswith("tk_")
    assert authenticates(database_url, created["apiKey"])


def test_tenant_create_without_json_names_the_tenant_and_its_key(
    env: dict[str, str | None], database_url: str
) -> None:
    result = run(["tenant", "create", "acme"], env)

    assert result.exit_code == 0, result.output
    assert "acme" in result.stdout
    assert "API key" in result.stdout
    api_key = result.stdout.split()[-1]
    assert authenticates(database_url, api_key)


@pytest.mark.parametrize(
    "option", [["--tier", "platinum"], ["--rate-limit", "0"], ["--rate-limit", "many"]]
)
def test_tenant_create_rejects_an_invalid_option(
    env: dict[str, str | None], option: list[str]
) -> None:
    result = run(["tenant", "create", "acme", *option, "--json"], env)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert option[0] in result.stderr


@pytest.mark.parametrize("name", ["", "   "])
def test_tenant_create_refuses_a_blank_name(env: dict[str, str | None], name: str) -> None:
    result = run(["tenant", "create", name, "--json"], env)

    assert result.exit_code == 2
    assert "a tenant's name must not be blank" in result.stderr
    assert result.stdout == ""


def test_key_create_issues_another_working_key(
    env: dict[str, str | None], database_url: str, tenant_id: str
) -> None:
    result = run(["key", "create", tenant_id, "--json"], env)

    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)
    assert set(issued) == {"tenantId", "keyId", "apiKey"}
    assert issued["tenantId"] == tenant_id
    assert authenticates(database_url, issued["apiKey"])


def test_key_create_for_an_unknown_tenant_fails(env: dict[str, str | None]) -> None:
    result = run(["key", "create", "000000000000000000000000"], env)

    assert result.exit_code == 1
    assert "no tenant" in result.stderr


def test_a_revoked_key_no_longer_authenticates(
    env: dict[str, str | None], database_url: str, tenant_id: str
) -> None:
    issued = json.loads(run(["key", "create", tenant_id, "--json"], env).stdout)

    result = run(["key", "revoke", issued["keyId"]], env)

    assert result.exit_code == 0, result.output
    assert not authenticates(database_url, issued["apiKey"])
    assert run(["key", "revoke", issued["keyId"]], env).exit_code == 1


def test_revoking_an_unknown_key_fails(env: dict[str, str | None]) -> None:
    result = run(["key", "revoke", "000000000000000000000000"], env)

    assert result.exit_code == 1
    assert "no live API key" in result.stderr


def test_an_sslmode_in_the_database_url_is_taken(database_url: str) -> None:
    url = make_url(database_url).update_query_dict({"sslmode": "disable"})
    env = {"DATABASE_URL": url.render_as_string(hide_password=False)}

    created = run(["tenant", "create", "acme", "--json"], env)

    assert created.exit_code == 0, created.output
    assert authenticates(database_url, json.loads(created.stdout)["apiKey"])


def test_migrate_on_a_migrated_database_changes_nothing(env: dict[str, str | None]) -> None:
    result = run(["migrate"], env)

    assert result.exit_code == 0, result.output
    assert "newest migration" in result.stdout


def test_processes_migrating_one_empty_database_at_once_all_succeed(server_url: str) -> None:
    # Replicas of a deployment each migrate as they start, often in the same second.
    empty = asyncio.run(create_database(server_url))
    command = [str(Path(sys.executable).with_name("tasks-api")), "migrate"]
    env = {**os.environ, "DATABASE_URL": empty}
    try:
        migrating = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        outcomes = [(*each.communicate(timeout=120), each.returncode) for each in migrating]
        at_head = run(["migrate"], {"DATABASE_URL": empty})
    finally:
        asyncio.run(drop_database(server_url, empty))

    assert [code for _, _, code in outcomes] == [0, 0, 0], outcomes
    assert all(b"newest migration" in out for out, _, _ in outcomes)
    assert at_head.exit_code == 0, at_head.output


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TASKS_DB_POOL_SIZE", "ten"),
        ("TASKS_DB_POOL_SIZE", "0"),
        ("TASKS_LOG_LEVEL", "loud"),
        ("TASKS_SHUTDOWN_TIMEOUT_SECONDS", "-1"),
        ("TASKS_RUN_PROJECTIONS", "maybe"),
        ("DATABASE_URL", "mysql://app:s3cret@db/tasks"),
        ("REDIS_URL", "http://cache:6379"),
        # Beyond what PostgreSQL takes for statement_timeout.
        ("TASKS_STATEMENT_TIMEOUT_MS", "3000000000"),
    ],
)
def test_a_bad_setting_exits_2_naming_the_variable(
    env: dict[str, str | None], variable: str, value: str
) -> None:
    result = run(["tenant", "create", "acme", "--json"], {**env, variable: value})

    assert result.exit_code == 2
    assert f"invalid setting: {variable}" in result.stderr
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""


def config_lines(result: Result) -> dict[str, list[str]]:
    """Each printed variable's value and source."""
    return {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}


def test_config_prints_every_setting_with_its_value_and_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".env").write_text("TASKS_LOG_LEVEL=debug\nTASKS_DB_POOL_SIZE=3\n")
    env: dict[str, str | None] = {variable: None for variable in ENV_NAMES.values()}

    result = run(["config"], {**env, "TASKS_DB_POOL_SIZE": "5"})

    assert result.exit_code == 0, result.output
    printed = config_lines(result)
    assert set(printed) == set(ENV_NAMES.values())
    assert printed["TASKS_DB_POOL_SIZE"] == ["5", "environment"]  # the environment wins
    assert printed["TASKS_LOG_LEVEL"] == ["debug", ".env"]
    assert printed["TASKS_SHUTDOWN_TIMEOUT_SECONDS"] == ["20.0", "default"]
    assert printed["DATABASE_URL"] == ["-", "default"]


def test_config_masks_the_passwords_of_the_server_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".env").write_text("REDIS_URL=rediss://:cache-s3cret@cache:6380/0\n")

    result = run(["config"], {"DATABASE_URL": "postgresql://app:db-s3cret@db:5432/tasks"})

    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    printed = config_lines(result)
    assert printed["DATABASE_URL"] == ["postgresql://app:***@db:5432/tasks", "environment"]
    assert printed["REDIS_URL"] == ["rediss://:***@cache:6380/0", ".env"]


def test_config_refuses_a_bad_value_from_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".env").write_text("TASKS_STATEMENT_TIMEOUT_MS=soon\n")

    result = run(["config"], {"TASKS_STATEMENT_TIMEOUT_MS": None})

    assert result.exit_code == 2
    assert "TASKS_STATEMENT_TIMEOUT_MS='soon'" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:p%40ss@db/tasks", "postgresql://app:***@db/tasks"),
        ("postgresql+asyncpg://app@db/tasks?password=pw&ssl=on", None),
        ("postgresql://db/tasks", "postgresql://db/tasks"),
        ("postgresql:///tasks", "postgresql:///tasks"),
        ("postgresql:///tasks?password=pw&ssl=on", "postgresql:///tasks?password=***&ssl=on"),
    ],
)
def test_a_password_in_a_url_is_masked_wherever_it_is(url: str, shown: str | None) -> None:
    masked = mask_password(url)

    assert "pw" not in masked and "ss@" not in masked
    if shown is not None:
        assert masked == shown
    else:
        assert "password=***" in masked and "ssl=on" in masked


def test_without_database_url_the_embedded_server_is_started_and_reused(tmp_path: Path) -> None:
    env: dict[str, str | None] = {"DATABASE_URL": None, "TASKS_DATA_DIR": str(tmp_path / "data")}
    pgdata = tmp_path / "data" / "pgdata"

    first = run(["migrate"], env)
    assert first.exit_code == 0, first.output
    assert (pgdata / "PG_VERSION").exists()
    created = run(["tenant", "create", "acme", "--json"], env)
    assert created.exit_code == 0, created.output
    tenant_id = json.loads(created.stdout)["tenantId"]

    # A later start finds the tenant created by the earlier one.
    again = run(["key", "create", tenant_id], env)

    assert again.exit_code == 0, again.output
    assert not (pgdata / "postmaster.pid").exists(), "the embedded server was left running"


RUNNER_START_SECONDS = 20


def test_projections_run_on_a_database_not_migrated_says_to_migrate(server_url: str) -> None:
    empty = asyncio.run(create_database(server_url))
    try:
        result = run(["projections", "run"], {"DATABASE_URL": empty})
    finally:
        asyncio.run(drop_database(server_url, empty))

    assert result.exit_code == 1
    assert "is at no migration" in result.stderr
    assert "run `tasks-api migrate` first" in result.stderr
    assert "Traceback" not in result.output


def test_projections_run_logs_json_lines_and_stops_on_sigterm(server_url: str) -> None:
    # A database of its own: no other runner holds the projections' locks.
    with migrated_database(server_url) as url:
        command = [str(Path(sys.executable).with_name("tasks-api")), "projections", "run"]
        env = {**os.environ, "DATABASE_URL": url}
        with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as runner:
            assert runner.stderr is not None
            # A runner that never says it is active is stopped, and the test fails.
            deadline = threading.Timer(RUNNER_START_SECONDS, runner.terminate)
            deadline.start()
            lines = []
            for line in runner.stderr:
                lines.append(json.loads(line))
                if lines[-1]["message"] == "projection task_rollups active":
                    break
            deadline.cancel()
            runner.send_signal(signal.SIGTERM)
            assert runner.wait(timeout=RUNNER_START_SECONDS) == 0

    assert lines and lines[-1]["message"] == "projection task_rollups active"
    assert lines[-1]["logger"] == "tasks_api.projections"
    assert {"time", "level", "pid"} <= set(lines[-1])


def test_exporting_the_log_of_no_tenant_fails(env: dict[str, str | None]) -> None:
    result = run(["audit", "export", "--tenant", "6b0000000000000000000000"], env)

    assert result.exit_code == 1
    assert "no tenant has the id 6b0000000000000000000000" in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_exporting_from_a_time_without_an_offset_exits_2_naming_the_option(
    env: dict[str, str | None], tenant_id: str, option: str
) -> None:
    result = run(["audit", "export", "--tenant", tenant_id, option, "2030-01-01T09:00:00"], env)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{option} must give its offset from UTC" in result.stderr


def test_exporting_since_a_time_with_its_offset_succeeds(
    env: dict[str, str | None], tenant_id: str
) -> None:
    result = run(
        ["audit", "export", "--tenant", tenant_id, "--since", "2030-01-01T09:00:00+02:00"], env
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
