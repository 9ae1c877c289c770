"""The `tasks-api` command: serve the API, apply the migrations, manage tenants and their keys.

With DATABASE_URL unset every command works on the embedded PostgreSQL under TASKS_DATA_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, NoReturn, TypeVar

import asyncpg
import click
import msgspec
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import clock, tenants
from app.database import create_engine, open_database
from app.embedded import EmbeddedPostgres, EmbeddedPostgresError
from app.migrate import upgrade_to_head
from app.settings import (
    ENV_NAMES,
    Settings,
    SettingsError,
    effective_configuration,
    load_settings,
)
from domain.commands import parse_instant
from projections.projector import Projector
from projections.registry import PROJECTORS

T = TypeVar("T")

APP_FACTORY = "app.http.app:create_app"
WORKER_HEALTHCHECK_SECONDS = 30
DEMO_TENANT = "demo"
UNDEFINED_TABLE = "42P01"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Read by prometheus-client; app.metrics names it too, but importing it here would start
# prometheus-client before the variable is set.
METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


class BadSetting(click.ClickException):
    exit_code = 2


class CreatedTenant(msgspec.Struct, rename="camel"):
    tenant_id: str
    api_key: str


class CreatedKey(msgspec.Struct, rename="camel"):
    tenant_id: str
    key_id: str
    api_key: str


class CreatedRole(msgspec.Struct, rename="camel"):
    role: str
    tenant_id: str | None
    password: str
    url: str


@dataclass(frozen=True)
class Database:
    url: str
    embedded: bool


@click.group()
def main() -> None:
    """Tasks API: an event-sourced, multi-tenant task service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API (starting the embedded PostgreSQL when DATABASE_URL is unset)."""
    import uvicorn

    from app.logs import uvicorn_log_config

    settings = _settings()
    with _database(settings, migrate=True) as database, _metrics_directory():
        # Worker processes build the app from the environment.
        os.environ[ENV_NAMES["database_url"]] = database.url
        if database.embedded:
            _create_demo_tenant(database.url)
        with _stop_signals_end_normally():
            uvicorn.run(
                APP_FACTORY,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level=settings.log_level.lower(),
                log_config=uvicorn_log_config(settings.log_level),
                access_log=False,
                # On SIGTERM or SIGINT: stop accepting, let requests in flight finish within
                # this bound, then shut the app down (its runners stop at a batch boundary).
                timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
                # A worker still importing the app on a busy host is not a hung one: uvicorn's
                # default of 5 s had busy hosts killing workers before they ever served.
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            )


@main.command()
def config() -> None:
    """Print the effective configuration: each variable, its value (passwords masked) and
    where it came from (default, .env or environment); exit 2 naming a bad value."""
    try:
        settings = effective_configuration()
    except SettingsError as error:
        raise BadSetting(str(error)) from None
    names = max(len(setting.variable) for setting in settings)
    values = max(len(setting.shown) for setting in settings)
    for setting in settings:
        click.echo(f"{setting.variable:<{names}}  {setting.shown:<{values}}  {setting.source}")


@main.command()
def migrate() -> None:
    """Apply the database migrations."""
    with _database(_settings(), migrate=True) as database:
        click.echo(f"{_describe(database)} is at the newest migration.")


@main.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("name")
@click.option("--tier", type=click.Choice(tenants.TIERS), default="starter", show_default=True)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    metavar="PER_MINUTE",
    help="Requests per minute allowed to the tenant (default: the tier's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_tenant(name: str, tier: str, rate_limit: int | None, as_json: bool) -> None:
    """Create a tenant and its first API key."""
    with _database(_settings(), migrate=False) as database:
        issued = _transact(
            database.url, lambda conn: tenants.create_tenant(conn, name, tier, rate_limit)
        )
    if as_json:
        _echo_json(CreatedTenant(tenant_id=issued.tenant_id, api_key=issued.api_key))
    else:
        click.echo(f"Created tenant {name} (id {issued.tenant_id}, tier {tier}).")
        _echo_key(issued)


@main.group()
def key() -> None:
    """Manage API keys."""


@key.command("create")
@click.argument("tenant_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_key(tenant_id: str, as_json: bool) -> None:
    """Create another API key for a tenant."""

    async def create(conn: AsyncConnection) -> tenants.IssuedKey | None:
        if not await tenants.tenant_exists(conn, tenant_id):
            return None
        return await tenants.create_key(conn, tenant_id)

    with _database(_settings(), migrate=False) as database:
        issued = _transact(database.url, create)
    if issued is None:
        raise click.ClickException(f"no tenant has the id {tenant_id}")
    if as_json:
        _echo_json(CreatedKey(tenant_id=tenant_id, key_id=issued.key_id, api_key=issued.api_key))
    else:
        _echo_key(issued)


@key.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke an API key; requests with it are refused from now on."""
    with _database(_settings(), migrate=False) as database:
        revoked = _transact(database.url, lambda conn: tenants.revoke_key(conn, key_id))
    if not revoked:
        raise click.ClickException(f"no live API key has the id {key_id}")
    click.echo(f"Revoked key {key_id}.")


@main.group()
def analyst() -> None:
    """Manage analysts: login roles that read the analytics tables (docs/analytics.md)."""


@analyst.command("create")
@click.argument("name")
@click.option("--tenant", "tenant_id", help="Read this tenant's rows only (default: every one's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_analyst(name: str, tenant_id: str | None, as_json: bool) -> None:
    """Create a PostgreSQL login role NAME that can SELECT the analytics tables and views and
    write nothing: with --tenant, that tenant's rows only, bound by row-level security to the
    role itself; without, every tenant's. Its password is printed once. The configured
    database role needs CREATEROLE."""
    from app.analysts import AnalystRefused, CreatedAnalyst
    from app.analysts import create_analyst as create

    async def work(conn: AsyncConnection) -> CreatedAnalyst:
        if tenant_id is not None and not await tenants.tenant_exists(conn, tenant_id):
            raise click.ClickException(f"no tenant has the id {tenant_id}")
        try:
            return await create(conn, name, tenant_id)
        except AnalystRefused as refused:
            raise click.ClickException(str(refused)) from None

    with _database(_settings(), migrate=False) as database:
        created = _transact(database.url, work)
    url = _url_as(database.url, name, created.password)
    if as_json:
        _echo_json(CreatedRole(role=name, tenant_id=tenant_id, password=created.password, url=url))
        return
    reach = f"tenant {tenant_id}'s rows" if tenant_id else "every tenant's rows"
    click.echo(f"Created analyst {name}, reading {reach}.")
    click.echo(f"Password, shown once: {created.password}")
    click.echo(f"Connect with: {url}")


@analyst.command("list")
def list_analysts() -> None:
    """Every analyst: its role, the tenant it reads (or every tenant) and when it was made."""
    from app.analysts import list_analysts as listed

    with _database(_settings(), migrate=False) as database:
        found = _transact(database.url, listed)
    click.echo(f"{'role':<32} {'reads':<32} created")
    for each in found:
        reads = f"tenant {each.tenant_id}" if each.tenant_id else "every tenant"
        click.echo(f"{each.role_name:<32} {reads:<32} {_shown_time(each.created_at)}")


@analyst.command("revoke")
@click.argument("name")
def revoke_analyst(name: str) -> None:
    """Take an analyst's reach away and drop its role."""
    from app.analysts import AnalystRefused
    from app.analysts import revoke_analyst as revoke

    async def work(conn: AsyncConnection) -> None:
        try:
            await revoke(conn, name)
        except AnalystRefused as refused:
            raise click.ClickException(str(refused)) from None

    with _database(_settings(), migrate=False) as database:
        _transact(database.url, work)
    click.echo(f"Revoked analyst {name}: its role is dropped.")


@main.group()
def projections() -> None:
    """Run, inspect, rebuild and verify the projections."""


@projections.command("run")
def run_projections() -> None:
    """Run the projection runners (and the auto-complete sweep) until stopped."""
    from app.background import run_background
    from app.logs import logging_config

    settings = _settings()
    # The same JSON lines as `serve`: the runners' state and the audit lines of the events
    # the sweep appends.
    logging_config(settings.log_level).configure()

    async def work(engine: AsyncEngine) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_database(database.url, pool_size=1) as db:
            await run_background(engine, db, stop)

    with _database(settings, migrate=False) as database:
        _with_engine(database.url, work)


@projections.command("status")
def projections_status() -> None:
    """Each projection's checkpoint, events behind the head and lag; the task view, projected
    in each command's transaction, stands at the head."""
    from projections.status import every_projection_status

    with _database(_settings(), migrate=False) as database:
        statuses = _with_engine(
            database.url, lambda engine: every_projection_status(engine, clock.now())
        )
    click.echo(
        f"{'projection':<16} {'applied':<12} {'checkpoint (txid.position)':<28} "
        f"{'behind':>8} {'lag ms':>8}"
    )
    for status in statuses:
        point = f"{status.checkpoint.transaction_id}.{status.checkpoint.position}"
        applied = "inline" if status.inline else "by a runner"
        click.echo(
            f"{status.name:<16} {applied:<12} {point:<28} "
            f"{status.events_behind:>8} {status.lag_ms:>8}"
        )


@projections.command("rebuild")
@click.argument("names", nargs=-1)
def rebuild_projections(names: tuple[str, ...]) -> None:
    """Replay the log into fresh tables and swap them in (all projections by default)."""
    chosen = _projectors(names)
    with _database(_settings(), migrate=False) as database:
        _with_engine(database.url, lambda engine: _rebuild_showing_progress(engine, chosen))


@projections.command("verify")
def verify_projections() -> None:
    """Replay the log in memory and report every stored row that differs, by table, key and
    column with both values; exit 1 if any does."""
    from projections.verify import verify

    async def work(engine: AsyncEngine) -> list[Any]:
        return [difference for p in PROJECTORS.values() for difference in await verify(engine, p)]

    with _database(_settings(), migrate=False) as database:
        differences = _with_engine(database.url, work)
    for difference in differences:
        for mismatch in difference.mismatches():
            click.echo(str(mismatch))
    if differences:
        raise SystemExit(1)
    click.echo("Every projection equals a replay of the log.")


@main.group()
def audit() -> None:
    """Export a tenant's events, import them into another database; replay a task."""


@audit.command("export")
@click.option("--tenant", "tenant_id", required=True)
@click.option(
    "--since", type=str, help="Events recorded at or after this time (RFC 3339, with its offset)."
)
@click.option(
    "--until", type=str, help="Events recorded at or before this time (RFC 3339, with its offset)."
)
@click.option("--task", "task_id", type=str, help="Only this task's events.")
def export_events(
    tenant_id: str, since: str | None, until: str | None, task_id: str | None
) -> None:
    """The tenant's events as NDJSON on stdout, in commit order."""
    from app.audit import export_events as export

    since_at, until_at = _time_option("--since", since), _time_option("--until", until)

    async def work(engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            if not await tenants.tenant_exists(conn, tenant_id):
                raise click.ClickException(f"no tenant has the id {tenant_id}")
        out = sys.stdout.buffer
        async for line in export(engine, tenant_id, since_at, until_at, task_id):
            out.write(line)
        out.flush()

    with _database(_settings(), migrate=False) as database:
        _with_engine(database.url, work)


@audit.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--tenant-name", help="The name of a tenant the import creates (default: its id).")
def import_events(file: BinaryIO, tenant_name: str | None) -> None:
    """Append the events of FILE, an NDJSON export of `tasks-api audit export` (- for stdin),
    to this database's log, then rebuild every projection.

    The events get new positions and transaction ids here; their tenant, task ids, versions,
    data, metadata and recorded times are kept. A tenant this database lacks is created with
    the same id, without API keys: there is no need to create it first (`tenant create`
    would give it another id); issue its keys with `tasks-api key create TENANT_ID`.

    The import is one transaction. It is refused whole, exit 1, at an event that is not
    valid or whose task here already has that version (or lacks the one before it)."""
    from app.audit import Imported, ImportRefused
    from app.audit import import_events as append_export

    async def work(engine: AsyncEngine) -> Imported:
        imported = await append_export(engine, file, tenant_name)
        click.echo(f"Imported {imported.events} events; rebuilding the projections.", err=True)
        await _rebuild_showing_progress(engine, list(PROJECTORS.values()))
        return imported

    with _database(_settings(), migrate=False) as database:
        try:
            imported = _with_engine(database.url, work)
        except ImportRefused as refused:
            raise click.ClickException(f"import refused, nothing imported: {refused}") from None
    for tenant_id in imported.created_tenants:
        click.echo(
            f"Created tenant {tenant_id}, without API keys: "
            f"issue one with `tasks-api key create {tenant_id}`."
        )
    click.echo(f"Imported {imported.events} events and rebuilt the projections.")


@audit.command("replay")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--task", "task_id", required=True)
@click.option("--at", "moment", required=True, help="RFC 3339 time, with its offset.")
def replay_task(tenant_id: str, task_id: str, moment: str) -> None:
    """The task as it stood at a moment, as JSON. Exits 1 saying why there was none: the
    tenant has no such task, it was not created yet, or it had been deleted."""
    from app.audit import TaskAt, task_at

    at = _time_option("--at", moment)
    assert at is not None

    async def work(engine: AsyncEngine) -> TaskAt:
        async with engine.connect() as conn:
            if not await tenants.tenant_exists(conn, tenant_id):
                raise click.ClickException(f"no tenant has the id {tenant_id}")
        return await task_at(engine, tenant_id, task_id, at)

    with _database(_settings(), migrate=False) as database:
        found = _with_engine(database.url, work)
    if found.created_at is None:
        raise click.ClickException(f"tenant {tenant_id} has no task {task_id}")
    if found.deleted_at is not None:
        raise click.ClickException(
            f"task {task_id} was deleted at {_shown_time(found.deleted_at)}; "
            f"its events stay in the log (`tasks-api audit export --task {task_id}`)"
        )
    if found.task is None:
        raise click.ClickException(
            f"task {task_id} was not created yet at {_shown_time(at)}: "
            f"it was created at {_shown_time(found.created_at)}"
        )
    click.echo(msgspec.json.encode(found.task).decode())


async def _rebuild_showing_progress(engine: AsyncEngine, chosen: list[Projector]) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from projections.rebuild import count_events, rebuild

    total = await count_events(engine)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_stderr_console()) as bar:
        for projector in chosen:
            started = time.monotonic()
            task = bar.add_task(projector.name, total=total, rate="")

            def advance(applied: int, task: Any = task, started: float = started) -> None:
                rate = applied / max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=applied, rate=f"{rate:,.0f} events/s")

            await rebuild(engine, projector, advance)


def _projectors(names: tuple[str, ...]) -> list[Projector]:
    if unknown := [name for name in names if name not in PROJECTORS]:
        raise click.BadParameter(
            f"unknown projection {', '.join(unknown)}; known: {', '.join(PROJECTORS)}"
        )
    return [PROJECTORS[name] for name in names] if names else list(PROJECTORS.values())


def _time_option(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, name)
    except ValueError as problem:
        raise click.BadParameter(str(problem)) from None


def _shown_time(moment: datetime) -> str:
    """A time as the API writes it (RFC 3339, UTC)."""
    return msgspec.json.encode(moment).decode().strip('"')


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        raise BadSetting(str(error)) from None


@contextlib.contextmanager
def _database(settings: Settings, *, migrate: bool) -> Iterator[Database]:
    """The configured database, else the embedded server for as long as the block runs.

    Migrated when asked, and always when embedded: the commands must find their tables there.
    """
    with contextlib.ExitStack() as stack:
        if settings.database_url is None:
            stack.enter_context(_sigterm_exits())
            server = stack.enter_context(EmbeddedPostgres(Path(settings.data_dir)))
            try:
                database = Database(server.start(), embedded=True)
            except EmbeddedPostgresError as error:
                raise click.ClickException(str(error)) from None
            click.echo(f"Embedded PostgreSQL in {server.pgdata}", err=True)
        else:
            database = Database(settings.database_url, embedded=False)
        if migrate or database.embedded:
            with _database_errors():
                upgrade_to_head(database.url)
        yield database


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """A fresh, empty folder where every worker process writes its metrics, for as long as
    the server runs (prometheus-client's multiprocess mode; the variable must be set before
    the workers import it)."""
    with tempfile.TemporaryDirectory(prefix="tasks-api-metrics-") as folder:
        os.environ[METRICS_DIRECTORY] = folder
        try:
            yield
        finally:
            del os.environ[METRICS_DIRECTORY]


class _StopAsked(Exception):
    """SIGTERM or SIGINT, raised again by uvicorn once it has shut down gracefully."""


@contextlib.contextmanager
def _stop_signals_end_normally() -> Iterator[None]:
    """uvicorn handles SIGTERM and SIGINT itself, then raises the signal again for the handler
    it found: here, one that ends the block, so that `serve` goes on to stop the embedded
    server and exits 0, as a stop that was asked for should."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop_asked(signum: int, frame: FrameType | None) -> NoReturn:
        raise _StopAsked

    previous = {number: signal.signal(number, stop_asked) for number in STOP_SIGNALS}
    try:
        with contextlib.suppress(_StopAsked):
            yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    # By default SIGTERM ends the process on the spot; exiting instead runs the cleanup that
    # stops the embedded server.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except (OSError, SQLAlchemyError, asyncpg.PostgresError, CommandError) as error:
        cause = getattr(error, "orig", None) or error
        lines = str(cause).strip().splitlines()
        message = f"database: {lines[0] if lines else type(error).__name__}"
        if getattr(cause, "sqlstate", None) == UNDEFINED_TABLE:
            message += " (run `tasks-api migrate` first)"
        raise click.ClickException(message) from None


def _transact(url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run work in one transaction on the database, from outside any event loop."""

    async def run() -> T:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    with _database_errors():
        return asyncio.run(run())


def _with_engine(url: str, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run work with an engine on the database, from outside any event loop."""

    async def run() -> T:
        engine = create_engine(url, pool_size=2)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    with _database_errors():
        return asyncio.run(run())


def _create_demo_tenant(url: str) -> None:
    """On the embedded server's first start: a tenant to try the API with."""

    async def create(conn: AsyncConnection) -> tenants.IssuedKey | None:
        if await tenants.has_tenants(conn):
            return None
        return await tenants.create_tenant(conn, DEMO_TENANT, "starter")

    issued = _transact(url, create)
    if issued is not None:
        click.echo(
            f"Created tenant {DEMO_TENANT} (id {issued.tenant_id}). "
            f"Its API key, shown once: {issued.api_key}"
        )


def _echo_key(issued: tenants.IssuedKey) -> None:
    click.echo(f"API key {issued.key_id}, shown once: {issued.api_key}")


def _echo_json(value: msgspec.Struct) -> None:
    click.echo(msgspec.json.encode(value).decode())


def _url_as(url: str, user: str, password: str) -> str:
    """The database's URL for another role."""
    as_user = make_url(url).set(drivername="postgresql", username=user, password=password)
    return as_user.render_as_string(hide_password=False)


def _describe(database: Database) -> str:
    if database.embedded:
        return "The embedded database"
    url = make_url(database.url)
    return f"Database {url.database} on {url.host or 'localhost'}"
