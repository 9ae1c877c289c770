"""Analysts: PostgreSQL login roles that read the analytics tables and write nothing.

Each analyst is a role of its own, granted SELECT on the tables and views docs/analytics.md
documents and on nothing else (never the API keys, idempotency records, rate-limit counts or
checkpoints). Its rows are bound by a row-level security policy on each table, made for the
role itself: `tenant_id = '<tenant>'` for a tenant's analyst, every row for a platform
analyst. No setting the analyst can change enters into it (unlike the service's tenant
role, which reads `tasks.tenant_id`). The `analysts` table records each one.

A migration that adds a table to the analysts' reach grants it, with the same policy, to each
role `analysts` lists, and adds it to ANALYST_TABLES."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app import clock

# The tables an analyst reads, each holding tenants' rows under a policy of the analyst's.
ANALYST_TABLES = (
    "events",
    "task_view",
    "task_totals",
    "tasks_by_created_day",
    "tasks_by_created_week",
    "completions_by_day",
    "open_tasks_by_due_day",
    "open_tasks_by_created_day",
    "owner_names",
    "completions_history",
    "snoozes_history",
    "reassignments_history",
)
# Views that keep to the analyst's reach themselves.
ANALYST_VIEWS = ("projection_lag",)
# A name PostgreSQL takes as it is, that leaves room for the policy's prefix in 63 bytes.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,54}")
POLICY_PREFIX = "analyst_"
# Defaults the analyst may change in a session; they keep a forgotten query from running on.
SESSION_DEFAULTS = {
    "default_transaction_read_only": "on",
    "statement_timeout": "'5min'",
    "idle_in_transaction_session_timeout": "'10min'",
}
SCRAM_ITERATIONS = 4096

analysts = sa.Table(
    "analysts",
    sa.MetaData(),
    sa.Column("role_name", sa.Text, primary_key=True),
    sa.Column("scope_tenant_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class AnalystRefused(Exception):
    """The analyst cannot be created or revoked as asked; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Analyst:
    role_name: str
    # None: a platform analyst, who reads every tenant's rows.
    tenant_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedAnalyst:
    analyst: Analyst
    password: str


async def create_analyst(
    conn: AsyncConnection, role_name: str, tenant_id: str | None
) -> CreatedAnalyst:
    """A login role with a new password that reads the analytics tables: `tenant_id`'s rows,
    or every tenant's when None."""
    if not ROLE_NAME.fullmatch(role_name) or role_name.startswith("pg_"):
        raise AnalystRefused(
            f"{role_name!r} is not a role name: 1 to 55 lowercase letters, digits and "
            "underscores, not starting with a digit or pg_"
        )
    exists = sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name")
    if await conn.scalar(exists, {"name": role_name}):
        raise AnalystRefused(f"a role named {role_name} exists already")
    password = secrets.token_urlsafe(24)
    # The server gets the password's SCRAM verifier, never the password itself, so no log
    # or statistics view of statements can hold it.
    # DDL takes no parameters: the statements go to the driver as they are written.
    await conn.exec_driver_sql(
        f"CREATE ROLE {role_name} LOGIN PASSWORD '{scram_verifier(password)}' "
        "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    )
    for setting, value in SESSION_DEFAULTS.items():
        await conn.exec_driver_sql(f"ALTER ROLE {role_name} SET {setting} = {value}")
    reach = "true" if tenant_id is None else f"tenant_id = {_literal(tenant_id)}"
    for table in ANALYST_TABLES:
        await conn.exec_driver_sql(f"GRANT SELECT ON {table} TO {role_name}")
        await conn.exec_driver_sql(
            f"CREATE POLICY {POLICY_PREFIX}{role_name} ON {table} FOR SELECT "
            f"TO {role_name} USING ({reach})"
        )
    for view in ANALYST_VIEWS:
        await conn.exec_driver_sql(f"GRANT SELECT ON {view} TO {role_name}")
    analyst = Analyst(role_name, tenant_id, clock.now())
    await conn.execute(
        analysts.insert().values(
            role_name=role_name, scope_tenant_id=tenant_id, created_at=analyst.created_at
        )
    )
    return CreatedAnalyst(analyst, password)


async def list_analysts(conn: AsyncConnection) -> list[Analyst]:
    rows = await conn.execute(sa.select(analysts).order_by(analysts.c.role_name))
    return [Analyst(row.role_name, row.scope_tenant_id, row.created_at) for row in rows]


async def revoke_analyst(conn: AsyncConnection, role_name: str) -> None:
    """Take the analyst's grants and policies away and drop its role: from the next
    statement on, a session it still has open reads nothing."""
    deleted = await conn.execute(analysts.delete().where(analysts.c.role_name == role_name))
    if not deleted.rowcount:
        raise AnalystRefused(f"no analyst is named {role_name}")
    for table in ANALYST_TABLES:
        await conn.exec_driver_sql(f"DROP POLICY IF EXISTS {POLICY_PREFIX}{role_name} ON {table}")
    for relation in (*ANALYST_TABLES, *ANALYST_VIEWS):
        await conn.exec_driver_sql(f"REVOKE ALL ON {relation} FROM {role_name}")
    await conn.exec_driver_sql(f"DROP ROLE {role_name}")


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802, RFC 7677)."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    encoded = [base64.b64encode(part).decode() for part in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{encoded[0]}${encoded[1]}:{encoded[2]}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
