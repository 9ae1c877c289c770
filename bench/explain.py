"""EXPLAIN (ANALYZE, BUFFERS) of every statement that the lists, stats and analytics run, as
the tenant's role runs them (row-level security included): the statements are captured from
the real read functions, then explained with the same parameters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from projections import figures, queries
from store.pool import open_pool
from store.tenant import tenant_transaction

Read = Callable[[asyncpg.Connection], Awaitable[Any]]


def list_reads(tenant_id: str, now: datetime) -> dict[str, Read]:
    """The list filters and searches that bench/__main__.py sends, as read functions."""

    def listing(page: queries.PageRequest | None = None, **criteria: Any) -> Read:
        task_filter = queries.TaskFilter(tenant_id=tenant_id, now=now, **criteria)
        return lambda conn: queries.list_tasks(conn, task_filter, page or queries.PageRequest())

    return {
        "status=in_progress&priority=high": listing(statuses=["in_progress"], priorities=["high"]),
        "ownerId=agent_007": listing(owner_id="agent_007"),
        "ownerId&status=..&sort=priority desc": listing(
            queries.PageRequest(sort="priority", descending=True),
            owner_id="agent_012",
            statuses=["not_started", "in_progress"],
        ),
        "relatedCustomerId=cust_123": listing(related_customer_id="cust_123"),
        "overdue=true&limit=50": listing(queries.PageRequest(limit=50), overdue=True),
        "dueAfter&dueBefore (a week)": listing(due_after=now, due_before=now + timedelta(days=7)),
        "status=completed&sort=updated_at desc&page=3": listing(
            queries.PageRequest(page=3, sort="updated_at", descending=True),
            statuses=["completed"],
        ),
        "search=refund": listing(search="refund"),
        "search=customer 1234": listing(search="customer 1234"),
        "search=escalation&status=not_started": listing(
            search="escalation", statuses=["not_started"]
        ),
        "search=no-such-words": listing(search="no-such-words"),
    }


def figure_reads(tenant_id: str, now: datetime) -> dict[str, Read]:
    month_ago = now - timedelta(days=30)
    week_ago = now - timedelta(days=7)
    return {
        "stats": lambda conn: figures.task_stats(conn, tenant_id, now),
        "stats?ownerId": lambda conn: figures.task_stats(conn, tenant_id, now, "agent_005"),
        "analytics": lambda conn: figures.task_analytics(conn, tenant_id, now, None, None, None),
        "analytics?startDate": lambda conn: figures.task_analytics(
            conn, tenant_id, now, month_ago, None, None
        ),
        "analytics?startDate&endDate, off whole days": lambda conn: figures.task_analytics(
            conn,
            tenant_id,
            now,
            month_ago.replace(hour=13, minute=45, second=10),
            week_ago.replace(hour=8, minute=12, second=33),
            None,
        ),
        "analytics?ownerId": lambda conn: figures.task_analytics(
            conn, tenant_id, now, None, None, "agent_009"
        ),
    }


async def explain_reads(database_url: str, lists_tenant: str, stats_tenant: str) -> str:
    """The plans, as text, of every statement each read runs."""
    now = datetime.now(UTC)
    pool = await open_pool(database_url, size=1, statement_timeout_ms=60_000)
    out: list[str] = []
    try:
        for tenant_id, reads in (
            (lists_tenant, list_reads(lists_tenant, now)),
            (stats_tenant, figure_reads(stats_tenant, now)),
        ):
            for name, read in reads.items():
                out.append(f"### {name}\n")
                for statement, parameters in await _statements_of(pool, tenant_id, read):
                    out.append(await _explain(pool, tenant_id, statement, parameters))
    finally:
        await pool.close()
    return "\n".join(out)


async def _statements_of(pool: asyncpg.Pool, tenant_id: str, read: Read) -> list[tuple[str, Any]]:
    """The statements a read runs."""
    captured: list[tuple[str, Any]] = []

    def capture(query: asyncpg.connection.LoggedQuery) -> None:
        captured.append((query.query, query.args))

    async with tenant_transaction(pool, tenant_id, "REPEATABLE READ") as conn:
        conn.add_query_logger(capture)
        try:
            await read(conn)
        finally:
            conn.remove_query_logger(capture)
    # Not the transaction's own statements (entering the tenant, COMMIT): the reads.
    return [
        (statement, parameters)
        for statement, parameters in captured
        if statement.startswith("SELECT")
    ]


async def _explain(pool: asyncpg.Pool, tenant_id: str, statement: str, parameters: Any) -> str:
    async with tenant_transaction(pool, tenant_id, "REPEATABLE READ") as conn:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *parameters)
    sql = " ".join(statement.split())
    plan = "\n".join(row[0] for row in rows)
    return f"```\n{sql[:400]}{' …' if len(sql) > 400 else ''}\n\n{plan}\n```\n"
