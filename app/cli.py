"""The `tasks-api` command: serve the API, apply the migrations, manage tenants and their keys.

With DATABASE_URL unset every command works on the embedded PostgreSQL under TASKS_DATA_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
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

import click
import msgspec
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import clock, tenants
from app.cell_migrations import migrate_those_that_answer, migrating_when_they_answer
from app.cells import HOME_CELL, REACHABLE, CellAddress, cell_addresses, reachability
from app.database import DATABASE_ERRORS, create_engine, engine_of, first_line
from app.embedded import EmbeddedPostgres, EmbeddedPostgresError
from app.migrate import applied_revisions, head_revisions, upgrade_to_head
from app.settings import (
    ENV_NAMES,
    Settings,
    SettingsError,
    effective_configuration,
    load_settings,
    mask_password,
)
from domain.commands import parse_instant, parse_instant_or_day
from projections.log_digest import DIGEST_BYTES, Digest
from projections.projector import Projector
from projections.registry import PROJECTORS

T = TypeVar("T")

APP_FACTORY = "app.http.app:create_app"
# uvicorn's httptools protocol, sending an answer's head and body in one write.
ONE_WRITE_PROTOCOL = "app.http.one_write:OneWriteHttpTools"
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


class CreatedTenantOnCell(msgspec.Struct, rename="camel"):
    tenant_id: str
    api_key: str
    cell: str


@dataclass(frozen=True)
class Deployment:
    """The cells the commands work on, the home cell (which holds the directory) first."""

    cells: tuple[CellAddress, ...]
    embedded: bool
    # TASKS_CELLS is set: the commands name the cells they work on.
    several: bool = False

    @property
    def url(self) -> str:
        """The home cell's database: the directory's."""
        return self.cells[0].url

    @property
    def home(self) -> CellAddress:
        return self.cells[0]

    def named(self, name: str | None) -> CellAddress:
        """The cell of that name (None: the home cell)."""
        if name is None:
            return self.home
        for cell in self.cells:
            if cell.name == name:
                return cell
        known = ", ".join(cell.name for cell in self.cells)
        raise click.ClickException(f"no cell is named {name}; the cells are {known}")


@click.group()
def main() -> None:
    """Tasks API: an event-sourced, multi-tenant task service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API (starting the embedded PostgreSQL when DATABASE_URL is unset)."""
    from app.http import workers as uvicorn_workers
    from app.logs import uvicorn_log_config

    settings = _settings()
    with _database(settings, migrate=False) as database, _metrics_directory():
        waiting = _migrate_for_serving(database)
        # Worker processes build the app from the environment.
        if database.embedded:
            os.environ[ENV_NAMES["database_url"]] = database.url
            _create_demo_tenant(database.url)
        with (
            _background_beside_the_workers(settings),
            _stop_signals_end_normally(),
            migrating_when_they_answer(waiting),
        ):
            uvicorn_workers.run(
                app=APP_FACTORY,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level=settings.log_level.lower(),
                log_config=uvicorn_log_config(settings.log_level),
                access_log=False,
                http=ONE_WRITE_PROTOCOL,
                # On SIGTERM or SIGINT: stop accepting, let requests in flight finish within
                # this bound, then shut the app down (its runners stop at a batch boundary).
                timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
                # A worker still importing the app on a busy host is not a hung one: uvicorn's
                # default of 5 s had busy hosts killing workers before they ever served.
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            )


def _migrate_for_serving(database: Deployment) -> list[CellAddress]:
    """The home cell migrated, without which nothing is served, and each other cell that
    answers; those that do not, each named on stderr."""
    home, *others = database.cells
    with _database_errors():
        if not database.embedded:  # which _database has migrated
            upgrade_to_head(home.url)
        waiting = migrate_those_that_answer(others)
    for cell, why in waiting.items():
        click.echo(
            f"Cell {cell.name} does not answer ({why}): its tenants are answered 503 until "
            "it does, and it is migrated then.",
            err=True,
        )
    return list(waiting)


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
    """Apply the database migrations, on every cell."""
    with _database(_settings(), migrate=True) as database:
        for cell in database.cells:
            described = _describe(database, cell)
            click.echo(
                f"Cell {cell.name}: {described[0].lower()}{described[1:]} is at the newest "
                "migration."
                if database.several
                else f"{described} is at the newest migration."
            )


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
@click.option("--cell", "cell_name", help="The cell to place it on (default: the one with fewest).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_tenant(
    name: str, tier: str, rate_limit: int | None, cell_name: str | None, as_json: bool
) -> None:
    """Create a tenant and its first API key, on the cell with fewest tenants unless --cell
    names one."""
    if not name.strip():
        raise click.BadParameter("a tenant's name must not be blank", param_hint="NAME")
    with _database(_settings(), migrate=False) as database:
        cell = database.named(cell_name) if cell_name else _fewest_tenants(database)
        issued = _transact(
            database.url, lambda conn: _create_on(database, cell, conn, name, tier, rate_limit)
        )
    if as_json:
        _echo_json(
            CreatedTenantOnCell(tenant_id=issued.tenant_id, api_key=issued.api_key, cell=cell.name)
            if database.several
            else CreatedTenant(tenant_id=issued.tenant_id, api_key=issued.api_key)
        )
    else:
        on = f", on cell {cell.name}" if database.several else ""
        click.echo(f"Created tenant {name} (id {issued.tenant_id}, tier {tier}{on}).")
        _echo_key(issued)


@tenant.command("move")
@click.argument("tenant_id")
@click.option("--to", "to", required=True, help="The cell to move it to.")
def move_tenant(tenant_id: str, to: str) -> None:
    """Move a tenant to another cell while it is in use: its events are appended again on
    the target, its writes pause for the switch (the API answers 503 with Retry-After), its
    projections there are checked against a replay, the directory leads its keys to the
    target, and its rows are removed from the source. A move that fails before the switch,
    its checks included, leaves the tenant on its cell. Run again on the same cell, it
    removes the rows an unfinished move left on the source."""
    from app.moves import MoveRefused
    from app.moves import move_tenant as move

    async def work() -> Any:
        engines = {cell.name: create_engine(cell.url, pool_size=2) for cell in database.cells}
        try:
            return await move(
                engines,
                database.home.name,
                tenant_id,
                to,
                lambda line: click.echo(line, err=True),
            )
        finally:
            for engine in engines.values():
                await engine.dispose()

    with _database(_settings(), migrate=False) as database:
        database.named(to)
        try:
            with _database_errors():
                moved = asyncio.run(work())
        except MoveRefused as failed:
            raise click.ClickException(str(failed)) from None
    click.echo(
        f"Moved tenant {moved.tenant_id} from cell {moved.source} to cell {moved.target}: "
        f"{moved.events} events; its writes paused {moved.paused_seconds:.2f} s."
    )


async def _create_on(
    database: Deployment,
    cell: CellAddress,
    directory: AsyncConnection,
    name: str,
    tier: str,
    rate_limit: int | None,
) -> tenants.IssuedKey:
    """The tenant in the directory, and on its cell when that is not the home: the cell's
    row committed first, so the directory never leads to a cell that lacks the tenant."""
    home = cell == database.home
    issued = await tenants.create_tenant(
        directory, name, tier, rate_limit, cell=None if home else cell.name
    )
    if not home:
        await _on_cell(
            cell.url, lambda conn: tenants.copy_tenant(directory, conn, issued.tenant_id)
        )
    return issued


def _fewest_tenants(database: Deployment) -> CellAddress:
    """The cell the directory places fewest tenants on; the first named of those tied."""
    counts = _transact(database.url, tenants.tenants_by_cell)
    placed = _counts_by_cell(database, counts)
    return min(database.cells, key=lambda cell: placed[cell.name])


def _counts_by_cell(database: Deployment, counts: dict[str | None, int]) -> dict[str, int]:
    placed = {cell.name: counts.get(cell.name, 0) for cell in database.cells}
    placed[database.home.name] += counts.get(None, 0)
    return placed


@main.group()
def cell() -> None:
    """The cells: PostgreSQL servers that tenants are placed on (TASKS_CELLS)."""


@cell.command("list")
def list_cells() -> None:
    """Each cell, the home (which holds the directory) first: the tenants the directory
    places on it, whether it answers, and its URL (password masked). Exits 1 when one does
    not answer."""
    with _database(_settings(), migrate=False) as database:
        counts = _counts_by_cell(database, _transact(database.url, tenants.tenants_by_cell))
        answers = asyncio.run(reachability(database.cells))
    names = max(len("cell"), *(len(cell.name) for cell in database.cells))
    click.echo(f"{'cell':<{names}}  {'tenants':>7}  {'state':<24}  url")
    for each, answer in zip(database.cells, answers, strict=True):
        home = " (home)" if each == database.home else ""
        click.echo(
            f"{each.name:<{names}}  {counts[each.name]:>7}  {answer:<24}  "
            f"{mask_password(each.url)}{home}"
        )
    if any(answer != REACHABLE for answer in answers):
        raise SystemExit(1)


@main.group()
def stream() -> None:
    """The NATS JetStream stream the relays publish the log to (docs/stream.md)."""


DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
SECONDS_PER = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str) -> float:
    match = DURATION.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration such as 90s, 15m, 12h or 7d")
    return float(match[1]) * SECONDS_PER[match[2]]


@stream.command("setup")
@click.option("--max-age", default="0", show_default=True, help="Oldest kept (0: no limit).")
@click.option("--max-bytes", type=int, default=-1, show_default=True, help="-1: no limit.")
@click.option("--max-messages", type=int, default=-1, show_default=True, help="-1: no limit.")
@click.option(
    "--retention",
    type=click.Choice(["limits", "interest", "workqueue"]),
    default="limits",
    show_default=True,
)
@click.option("--replicas", type=click.IntRange(1, 5), default=1, show_default=True)
@click.option(
    "--duplicate-window",
    default="2m",
    show_default=True,
    help="How long a message id is remembered, to drop a republish.",
)
@click.option("--storage", type=click.Choice(["file", "memory"]), default="file", show_default=True)
def set_up_stream(
    max_age: str,
    max_bytes: int,
    max_messages: int,
    retention: str,
    replicas: int,
    duplicate_window: str,
    storage: str,
) -> None:
    """Create the stream NATS_STREAM on NATS_URL, holding the subjects
    NATS_SUBJECT_PREFIX.>, or bring an existing one to these limits."""
    from app.relay import StreamLimits, stream_address
    from app.relay import set_up_stream as set_up

    settings = _settings()
    address = stream_address(settings)
    if address is None:
        raise BadSetting(f"{ENV_NAMES['nats_url']} is not set: there is no stream to set up")
    limits = StreamLimits(
        max_age_seconds=_duration(max_age),
        max_bytes=max_bytes,
        max_messages=max_messages,
        retention=retention,
        replicas=replicas,
        duplicate_window_seconds=_duration(duplicate_window),
        storage=storage,
    )
    try:
        created = asyncio.run(set_up(address, limits))
    except Exception as error:
        raise click.ClickException(f"NATS: {error or type(error).__name__}") from None
    done = "Created" if created else "Updated"
    click.echo(
        f"{done} stream {address.stream} on {mask_password(address.url)}: subjects "
        f"{address.subject_prefix}.>, {retention} retention, duplicate window "
        f"{limits.duplicate_window_seconds:g} s."
    )


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
        cell = _cell_of(database, tenant_id) if tenant_id is not None else database.home
        created = _transact(cell.url, work)
    url = _url_as(cell.url, name, created.password)
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
        found = [(cell, _transact(cell.url, listed)) for cell in database.cells]
    on = f"{'cell':<16} " if database.several else ""
    click.echo(f"{'role':<32} {on}{'reads':<32} created")
    for cell, analysts in found:
        on = f"{cell.name:<16} " if database.several else ""
        for each in analysts:
            reads = f"tenant {each.tenant_id}" if each.tenant_id else "every tenant"
            click.echo(f"{each.role_name:<32} {on}{reads:<32} {_shown_time(each.created_at)}")


@analyst.command("revoke")
@click.argument("name")
def revoke_analyst(name: str) -> None:
    """Take an analyst's reach away and drop its role."""
    from app.analysts import AnalystRefused, list_analysts
    from app.analysts import revoke_analyst as revoke

    async def work(conn: AsyncConnection) -> None:
        try:
            await revoke(conn, name)
        except AnalystRefused as refused:
            raise click.ClickException(str(refused)) from None

    async def listed_here(conn: AsyncConnection) -> bool:
        return any(each.role_name == name for each in await list_analysts(conn))

    with _database(_settings(), migrate=False) as database:
        # The cell that has it; the home cell's refusal names one that none has.
        holders = [cell for cell in database.cells[1:] if _transact(cell.url, listed_here)]
        for cell in holders or [database.home]:
            _transact(cell.url, work)
    click.echo(f"Revoked analyst {name}: its role is dropped.")


@main.group()
def projections() -> None:
    """Run, inspect, rebuild and verify the projections."""


@projections.command("run")
def run_projections() -> None:
    """Run the projection runners (the tenants' log digests' too) and the auto-complete sweep
    until stopped, on every cell; with NATS_URL set, each cell's relay too."""
    from app import background_process

    settings = _settings()
    with _database(settings, migrate=False) as database, _database_errors():
        # Its runners retry what fails, forever: on a schema they do not know, say so instead.
        heads = head_revisions()
        for cell in database.cells:
            applied = _with_engine(cell.url, _applied_revisions)
            if applied != heads:
                at = ", ".join(sorted(applied)) or "no migration"
                raise click.ClickException(
                    f"{_describe(database, cell)} is at {at}; the newest is "
                    f"{', '.join(sorted(heads))}: run `tasks-api migrate` first"
                )
        background_process.run(settings, database.cells)


@projections.command("status")
def projections_status() -> None:
    """Each projection's checkpoint, events behind the head and lag; the task view, projected
    in each command's transaction, stands at the head."""
    from projections.status import every_projection_status

    with _database(_settings(), migrate=False) as database:
        by_cell = [
            (
                cell,
                _with_engine(cell.url, lambda engine: every_projection_status(engine, clock.now())),
            )
            for cell in database.cells
        ]
    on = f"{'cell':<16} " if database.several else ""
    click.echo(
        f"{on}{'projection':<16} {'applied':<12} {'checkpoint (txid.position)':<28} "
        f"{'behind':>8} {'lag ms':>8}"
    )
    for cell, statuses in by_cell:
        on = f"{cell.name:<16} " if database.several else ""
        for status in statuses:
            point = f"{status.checkpoint.transaction_id}.{status.checkpoint.position}"
            applied = "inline" if status.inline else "by a runner"
            click.echo(
                f"{on}{status.name:<16} {applied:<12} {point:<28} "
                f"{status.events_behind:>8} {status.lag_ms:>8}"
            )


@projections.command("rebuild")
@click.argument("names", nargs=-1)
def rebuild_projections(names: tuple[str, ...]) -> None:
    """Replay the log into fresh tables and swap them in (all projections by default)."""
    chosen = _projectors(names)
    with _database(_settings(), migrate=False) as database:
        for cell in database.cells:
            if database.several:
                click.echo(f"Cell {cell.name}:", err=True)
            _with_engine(cell.url, lambda engine: _rebuild_showing_progress(engine, chosen))


@projections.command("verify")
def verify_projections() -> None:
    """Replay the log in memory and report every stored row that differs, by table, key and
    column with both values; exit 1 if any does."""
    from projections.verify import verify

    async def work(engine: AsyncEngine) -> list[Any]:
        return [difference for p in PROJECTORS.values() for difference in await verify(engine, p)]

    with _database(_settings(), migrate=False) as database:
        by_cell = [(cell, _with_engine(cell.url, work)) for cell in database.cells]
    for cell, differences in by_cell:
        on = f"cell {cell.name}: " if database.several else ""
        for difference in differences:
            for mismatch in difference.mismatches():
                click.echo(f"{on}{mismatch}")
    if any(differences for _, differences in by_cell):
        raise SystemExit(1)
    on = " on every cell" if database.several else ""
    click.echo(f"Every projection equals a replay of the log{on}.")


@main.group()
def audit() -> None:
    """Export a tenant's events, import them into another database; replay a task; verify
    that the log was not altered."""


@audit.command("verify")
@click.option("--tenant", "tenant_id", help="Only this tenant's events and digest.")
def verify_log(tenant_id: str | None) -> None:
    """Recompute every task's hash chain and every tenant's log digest; name the first broken
    link of the chains and each tenant whose digest no longer matches, exit 1 if any."""
    from app.log_verification import verify_log as verify

    with _database(_settings(), migrate=False) as database:
        cells = database.cells if tenant_id is None else [_cell_of(database, tenant_id)]
        by_cell = [
            (cell, _with_engine(cell.url, lambda engine: verify(engine, tenant_id)))
            for cell in cells
        ]
    for cell, verdict in by_cell:
        on = f"cell {cell.name}: " if database.several else ""
        for broken in verdict.broken:
            click.echo(f"{on}broken: {broken}")
    if any(verdict.broken for _, verdict in by_cell):
        raise SystemExit(1)
    for cell, verdict in by_cell:
        on = f"cell {cell.name}: " if database.several else ""
        click.echo(
            f"{on}The log is whole: {verdict.events} events of {verdict.tasks} tasks chain; "
            f"{verdict.digested_events} of them, behind the runner, match the digests of "
            f"{verdict.digested_tenants} tenant(s)."
        )


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
    """The tenant's events as NDJSON on stdout, in commit order; then, on stderr, how many
    and their hashes folded in that order, the digest `audit import --digest` checks."""
    from app.audit import export_events as export
    from app.audit import export_line

    since_at, until_at = _time_option("--since", since), _time_option("--until", until)

    async def work(engine: AsyncEngine) -> Digest:
        out, digest = sys.stdout.buffer, Digest()
        async for event in export(engine, tenant_id, since_at, until_at, task_id):
            out.write(export_line(event))
            digest = digest.extended([event])
        out.flush()
        return digest

    with _database(_settings(), migrate=False) as database:
        digest = _with_engine(_cell_of(database, tenant_id).url, work)
    click.echo(
        f"Exported {digest.events} events; their digest is {digest.value.hex()} "
        "(`tasks-api audit import --digest` checks an import has them all, in order).",
        err=True,
    )


@audit.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--tenant-name", help="The name of a tenant the import creates (default: its id).")
@click.option(
    "--cell",
    "cell_name",
    help="The cell to import a tenant the directory lacks into (default: the one with fewest).",
)
@click.option(
    "--digest",
    "expected_digest",
    help="The digest `audit export` printed: the import is refused unless its events fold to it.",
)
def import_events(
    file: BinaryIO, tenant_name: str | None, cell_name: str | None, expected_digest: str | None
) -> None:
    """Append the events of FILE, an NDJSON export of `tasks-api audit export` (- for stdin),
    to this database's log, then rebuild every projection.

    The events get new positions and transaction ids here; their tenant, task ids, versions,
    data, metadata and recorded times are kept. A tenant this database lacks is created with
    the same id, without API keys: there is no need to create it first (`tenant create`
    would give it another id); issue its keys with `tasks-api key create TENANT_ID`.

    The import is one transaction. It is refused whole, exit 1, at an event that is not
    valid or whose task here already has that version (or lacks the one before it), and
    with --digest when the events do not fold to it (one removed, added or moved).

    With several cells, the events go to the cell of their tenant; a tenant the directory
    lacks is placed on --cell, else on the cell with fewest tenants."""
    from app.audit import Imported, ImportRefused
    from app.audit import import_events as append_export

    expected = None if expected_digest is None else _digest_option(expected_digest)
    first, lines = _first_line(file)

    async def work(engine: AsyncEngine) -> Imported:
        imported = await append_export(engine, lines, tenant_name, expected)
        click.echo(
            f"Imported {imported.events} events, whose digest is "
            f"{imported.digest.value.hex()}; rebuilding the projections.",
            err=True,
        )
        await _rebuild_showing_progress(engine, list(PROJECTORS.values()))
        return imported

    with _database(_settings(), migrate=False) as database:
        cell = _import_cell(database, _tenant_of_line(first), cell_name)
        try:
            imported = _with_engine(cell.url, work)
        except ImportRefused as refused:
            raise click.ClickException(f"import refused, nothing imported: {refused}") from None
        if cell != database.home:
            for tenant_id in imported.created_tenants:
                _transact(
                    cell.url,
                    lambda conn, tenant_id=tenant_id: _register(database, conn, tenant_id, cell),
                )
    for tenant_id in imported.created_tenants:
        click.echo(
            f"Created tenant {tenant_id}, without API keys: "
            f"issue one with `tasks-api key create {tenant_id}`."
        )
    click.echo(f"Imported {imported.events} events and rebuilt the projections.")


@audit.command("replay")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--task", "task_id", required=True)
@click.option(
    "--at",
    "moment",
    required=True,
    help="RFC 3339 time with its offset, or a date (its first instant, UTC), as ?asOf= takes.",
)
def replay_task(tenant_id: str, task_id: str, moment: str) -> None:
    """The task as it stood at a moment, as JSON. Exits 1 saying why there was none: the
    tenant has no such task, it was not created yet, or it had been deleted."""
    from app.audit import task_at

    at = _time_option("--at", moment, parse_instant_or_day)
    assert at is not None

    with _database(_settings(), migrate=False) as database:
        cell = _cell_of(database, tenant_id)
        found = _with_engine(cell.url, lambda engine: task_at(engine, tenant_id, task_id, at))
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


def _first_line(file: BinaryIO) -> tuple[bytes, Iterator[bytes]]:
    """The first line that is not blank, and every line, that one included."""
    lines = iter(file)
    for line in lines:
        if line.strip():
            return line, itertools.chain([line], lines)
    return b"", iter(())


def _tenant_of_line(line: bytes) -> str | None:
    try:
        tenant_id = msgspec.json.decode(line).get("tenantId")
    except (msgspec.DecodeError, AttributeError):
        return None
    return tenant_id if isinstance(tenant_id, str) else None


def _import_cell(database: Deployment, tenant_id: str | None, cell_name: str | None) -> CellAddress:
    """The cell of the tenant, if the directory has it; else --cell, or the fewest's."""
    if tenant_id is not None:
        found, placed = _transact(database.url, lambda conn: tenants.tenant_cell(conn, tenant_id))
        if found:
            cell = database.named(placed)
            if cell_name is not None and cell_name != cell.name:
                raise click.ClickException(
                    f"tenant {tenant_id} is on cell {cell.name}; "
                    f"`tasks-api tenant move {tenant_id} --to {cell_name}` moves it"
                )
            return cell
    return database.named(cell_name) if cell_name else _fewest_tenants(database)


async def _register(
    database: Deployment, cell_conn: AsyncConnection, tenant_id: str, cell: CellAddress
) -> None:
    """A tenant an import created on a cell, entered in the directory."""

    async def enter(directory: AsyncConnection) -> None:
        await tenants.copy_tenant(cell_conn, directory, tenant_id, cell=cell.name)

    await _on_cell(database.url, enter)


def _cell_of(database: Deployment, tenant_id: str) -> CellAddress:
    """The cell the directory places the tenant on; exit 1 when it has no such tenant."""
    found, placed = _transact(database.url, lambda conn: tenants.tenant_cell(conn, tenant_id))
    if not found:
        raise click.ClickException(f"no tenant has the id {tenant_id}")
    return database.named(placed)


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


def _time_option(
    name: str, value: str | None, parse: Callable[[str, str], datetime] = parse_instant
) -> datetime | None:
    if value is None:
        return None
    try:
        return parse(value, name)
    except ValueError as problem:
        raise click.BadParameter(str(problem)) from None


def _digest_option(value: str) -> bytes:
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        digest = b""
    if len(digest) != DIGEST_BYTES:
        raise click.BadParameter(f"--digest must be {DIGEST_BYTES * 2} hex digits")
    return digest


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
def _database(settings: Settings, *, migrate: bool) -> Iterator[Deployment]:
    """The configured cells (TASKS_CELLS, else the one on DATABASE_URL), else the embedded
    server for as long as the block runs.

    Migrated when asked, every cell, and always when embedded: the commands must find their
    tables there."""
    with contextlib.ExitStack() as stack:
        if settings.cells is not None:
            database = Deployment(cell_addresses(settings.cells, None), False, several=True)
        elif settings.database_url is None:
            stack.enter_context(_sigterm_exits())
            server = stack.enter_context(EmbeddedPostgres(Path(settings.data_dir)))
            try:
                url = server.start()
            except EmbeddedPostgresError as error:
                raise click.ClickException(str(error)) from None
            click.echo(f"Embedded PostgreSQL in {server.pgdata}", err=True)
            database = Deployment((CellAddress(HOME_CELL, url),), embedded=True)
        else:
            database = Deployment((CellAddress(HOME_CELL, settings.database_url),), False)
        if migrate or database.embedded:
            for cell in database.cells:
                with _database_errors():
                    upgrade_to_head(cell.url)
        yield database


@contextlib.contextmanager
def _background_beside_the_workers(settings: Settings) -> Iterator[None]:
    """The runners and the sweep in a process of their own, the workers told to run none."""
    from app.background_process import beside_the_workers

    if not settings.run_projections:
        yield
        return
    name = ENV_NAMES["run_projections"]
    given = os.environ.get(name)
    os.environ[name] = "false"
    try:
        with beside_the_workers(settings.shutdown_timeout_seconds):
            yield
    finally:
        if given is None:
            del os.environ[name]
        else:
            os.environ[name] = given


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
    except DATABASE_ERRORS as error:
        message = f"database: {first_line(error)}"
        cause = getattr(error, "orig", None) or error
        if getattr(cause, "sqlstate", None) == UNDEFINED_TABLE:
            message += " (run `tasks-api migrate` first)"
        raise click.ClickException(message) from None


def _transact(url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run work in one transaction on the database, from outside any event loop."""
    with _database_errors():
        return asyncio.run(_on_cell(url, work))


async def _on_cell(url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run work in one transaction on a cell, from inside an event loop."""
    async with engine_of(url) as engine, engine.begin() as conn:
        return await work(conn)


async def _applied_revisions(engine: AsyncEngine) -> frozenset[str]:
    async with engine.connect() as conn:
        return await applied_revisions(conn)


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


def _describe(database: Deployment, cell: CellAddress) -> str:
    if database.embedded:
        return "The embedded database"
    url = make_url(cell.url)
    return f"Database {url.database} on {url.host or 'localhost'}"
