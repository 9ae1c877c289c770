"""Rebuilding a projection: replay the whole log into fresh tables beside the live ones, then
swap them in within one transaction, so reads keep working throughout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.log import Checkpoint, checkpoint_of, read_after, read_by_stream
from projections.projector import Loader, Projector
from projections.registry import INLINE
from projections.runner import read_checkpoint, save_checkpoint
from projections.tables import events

REBUILD_SCHEMA = "projection_rebuild"
BATCH_SIZE = 5000
# Connections building the fresh tables' indexes at once.
INDEX_BUILDERS = 2

# Called with the number of events applied so far.
Progress = Callable[[int], None]


async def count_events(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(events)) or 0


async def rebuild(engine: AsyncEngine, projector: Projector, progress: Progress) -> int:
    """Replay the log into fresh copies of the projection's tables and swap them in."""
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {REBUILD_SCHEMA}"))
        for table in projector.tables:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {REBUILD_SCHEMA}.{table.name}"))
            await conn.execute(
                sa.text(
                    f"CREATE TABLE {REBUILD_SCHEMA}.{table.name} "
                    f"(LIKE public.{table.name} INCLUDING ALL)"
                )
            )
            await _copy_storage_parameters(conn, table.name)
        deferred = await _drop_secondary_indexes(conn, projector)
    loader = projector.loader()
    checkpoint, applied = await _load_log(engine, loader, progress)
    while True:
        # What committed since the first pass's snapshot, in commit order.
        async with engine.begin() as conn:
            checkpoint, count = await _replay_batch(conn, projector, checkpoint)
        applied += count
        progress(applied)
        if count < BATCH_SIZE:
            break
    await _pack(engine, loader.summed)
    await _build_indexes(engine, deferred)
    await _vacuum(engine, projector)
    async with engine.begin() as conn:
        await _hold_writers(conn, projector)
        while True:
            # An inline projection's writers are held back, and what they have not committed
            # yet they will project onto the fresh tables themselves: read all that is there.
            checkpoint, count = await _replay_batch(
                conn, projector, checkpoint, horizon=projector not in INLINE
            )
            applied += count
            if count < BATCH_SIZE:
                break
        await _swap_in(conn, projector)
        if projector not in INLINE:
            await save_checkpoint(conn, projector.name, checkpoint)
    progress(applied)
    return applied


async def _copy_storage_parameters(conn: AsyncConnection, table: str) -> None:
    """Give the fresh copy the live table's storage parameters (its fillfactor), which
    CREATE TABLE … LIKE does not copy."""
    options = await conn.scalar(
        sa.text("SELECT reloptions FROM pg_class WHERE oid = CAST(:table AS regclass)"),
        {"table": f"public.{table}"},
    )
    if options:
        await conn.execute(
            sa.text(f"ALTER TABLE {REBUILD_SCHEMA}.{table} SET ({', '.join(options)})")
        )


async def _drop_secondary_indexes(conn: AsyncConnection, projector: Projector) -> list[str]:
    """Drop the fresh tables' indexes that no upsert needs; their definitions, to build once
    the log is replayed: one build over every row costs a fraction of keeping them up to
    date row by row (a trigram index most of all)."""
    rows = await conn.execute(
        sa.text(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = :schema AND t.relname = ANY(:tables) AND NOT i.indisunique"
        ),
        {"schema": REBUILD_SCHEMA, "tables": [table.name for table in projector.tables]},
    )
    definitions = []
    for name, definition in rows.all():
        await conn.execute(sa.text(f"DROP INDEX {name}"))
        definitions.append(definition)
    return definitions


async def _load_log(
    engine: AsyncEngine, loader: Loader, progress: Progress
) -> tuple[Checkpoint, int]:
    """The first pass: the log up to the horizon, read stream by stream from one snapshot
    and written by the projector's loader, each row once in its final state, with nothing
    read back; the checkpoint it ends at, from which the rest follows in commit order."""
    applied = 0
    async with engine.connect() as reading:
        await reading.execution_options(isolation_level="REPEATABLE READ")
        async with reading.begin():
            # Reading for as long as the log takes, idle while each batch is written.
            await reading.execute(sa.text("SET LOCAL statement_timeout = 0"))
            await reading.execute(sa.text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            checkpoint, streams = await read_by_stream(reading, BATCH_SIZE)
            async for batch in streams:
                async with engine.begin() as conn, _fresh_tables(conn):
                    await loader.add(conn, batch)
                applied += len(batch)
                progress(applied)
    async with engine.begin() as conn, _fresh_tables(conn):
        await loader.finish(conn)
    return checkpoint, applied


async def _pack(engine: AsyncEngine, tables: tuple[sa.Table, ...]) -> None:
    """Rewrite the fresh tables the load summed into, in the order of their key. Each sum
    left its row's newest version wherever there was room: a daily rollup's rows lay on as
    many pages as rows, seven times the pages they fill. Packed in key order, a period's
    days, or an owner's, are read from a few pages each."""
    async with engine.begin() as conn:
        await conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
        for table in tables:
            key = await conn.scalar(
                sa.text(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE i.indrelid = CAST(:table AS regclass) AND i.indisunique "
                    "ORDER BY i.indisprimary DESC LIMIT 1"
                ),
                {"table": f"{REBUILD_SCHEMA}.{table.name}"},
            )
            await conn.execute(sa.text(f"CLUSTER {REBUILD_SCHEMA}.{table.name} USING {key}"))


async def _build_indexes(engine: AsyncEngine, definitions: list[str]) -> None:
    """Build the indexes side by side on as many connections as builders, the slowest (the
    trigram ones, several times a B-tree's time) first."""
    waiting = sorted(definitions, key=lambda definition: " USING gin " not in definition)

    async def builder() -> None:
        async with engine.begin() as conn:
            # Enough memory that a trigram index is built in one pass, and as long as it takes.
            await conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
            await conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
            while waiting:
                await conn.execute(sa.text(waiting.pop(0)))

    await asyncio.gather(*(builder() for _ in range(INDEX_BUILDERS)))


async def _vacuum(engine: AsyncEngine, projector: Projector) -> None:
    """Statistics for the planner, which must not guess at the fresh tables, and their pages
    marked all-visible, so that a count is answered from an index from the first read on
    rather than once autovacuum has come by."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("SET statement_timeout = 0"))
        try:
            for table in projector.tables:
                await conn.execute(sa.text(f"VACUUM (ANALYZE) {REBUILD_SCHEMA}.{table.name}"))
        finally:
            await conn.execute(sa.text("RESET statement_timeout"))


@asynccontextmanager
async def _fresh_tables(conn: AsyncConnection) -> AsyncIterator[None]:
    """Unqualified table names resolve to the fresh copies within the block."""
    await conn.execute(sa.text(f"SET LOCAL search_path TO {REBUILD_SCHEMA}, public"))
    yield
    await conn.execute(sa.text("SET LOCAL search_path TO public"))


async def _replay_batch(
    conn: AsyncConnection, projector: Projector, checkpoint: Checkpoint, *, horizon: bool = True
) -> tuple[Checkpoint, int]:
    batch = await read_after(conn, checkpoint, BATCH_SIZE, horizon=horizon)
    if batch:
        async with _fresh_tables(conn):
            await projector.apply(conn, batch)
        checkpoint = checkpoint_of(batch[-1])
    return checkpoint, len(batch)


async def _hold_writers(conn: AsyncConnection, projector: Projector) -> None:
    """Keep the live tables from moving while the last events are replayed and the swap made."""
    if projector in INLINE:
        # A command writes the task view last in the transaction that appends its events:
        # with the view locked, each one has either committed (its events are replayed now)
        # or waits, then projects its own events onto the fresh table. Holding appends back
        # instead would deadlock with a command that has read the view and waits to append.
        for table in projector.tables:
            await conn.execute(sa.text(f"LOCK TABLE public.{table.name} IN ACCESS EXCLUSIVE MODE"))
    else:
        # The runner applies a batch under a lock on its checkpoint row.
        await read_checkpoint(conn, projector.name)


async def _swap_in(conn: AsyncConnection, projector: Projector) -> None:
    for table in projector.tables:
        index_names = await _index_names(conn, "public", table.name)
        security = await _row_security(conn, table.name)
        await conn.execute(sa.text(f"DROP TABLE public.{table.name}"))
        await conn.execute(sa.text(f"ALTER TABLE {REBUILD_SCHEMA}.{table.name} SET SCHEMA public"))
        for statement in security:
            await conn.execute(sa.text(statement))
        # The copies' indexes got generated names; give them back the migrations' names.
        for definition, name in (await _index_names(conn, "public", table.name)).items():
            wanted = index_names.get(definition)
            if wanted is not None and wanted != name:
                await conn.execute(sa.text(f"ALTER INDEX public.{name} RENAME TO {wanted}"))


async def _index_names(conn: AsyncConnection, schema: str, table: str) -> dict[str, str]:
    """Index names by their definition with the name left out."""
    rows = await conn.execute(
        sa.text(
            "SELECT indexname, replace(indexdef, indexname, '') FROM pg_indexes "
            "WHERE schemaname = :schema AND tablename = :table"
        ),
        {"schema": schema, "table": table},
    )
    return {definition: name for name, definition in rows}


async def _row_security(conn: AsyncConnection, table: str) -> list[str]:
    """The statements that give a fresh copy the live table's row-level security, policies
    and grants, none of which CREATE TABLE … LIKE copies."""
    enabled = await conn.scalar(
        sa.text("SELECT relrowsecurity FROM pg_class WHERE oid = CAST(:table AS regclass)"),
        {"table": f"public.{table}"},
    )
    statements = [f"ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY"] if enabled else []
    policies = await conn.execute(
        sa.text(
            "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public' AND tablename = :table"
        ),
        {"table": table},
    )
    for name, permissive, roles, command, using, check in policies:
        statement = (
            f"CREATE POLICY {name} ON public.{table} AS {permissive} FOR {command} "
            f"TO {', '.join(roles)}"
        )
        statement += f" USING ({using})" if using else ""
        statement += f" WITH CHECK ({check})" if check else ""
        statements.append(statement)
    grants = await conn.execute(
        sa.text(
            "SELECT grantee, string_agg(privilege_type, ', ') "
            "FROM information_schema.role_table_grants "
            "WHERE table_schema = 'public' AND table_name = :table "
            "AND grantee <> (SELECT tableowner FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename = :table) GROUP BY grantee"
        ),
        {"table": table},
    )
    statements += [f"GRANT {rights} ON public.{table} TO {grantee}" for grantee, rights in grants]
    return statements
