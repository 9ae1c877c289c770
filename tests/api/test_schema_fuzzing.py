"""Schemathesis against the OpenAPI document the API serves, with every check: no request makes
the server fail, every answer has a status and a shape the document promises, a request the
document forbids is refused, a created task can be reached until it is deleted and not after.

Each operation gets generated requests (examples, coverage and fuzzing phases), and a state
machine chains them through the links schemathesis infers (create, then act on the task).
The state machine alone sends at least MIN_REQUESTS requests, deterministically."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from schemathesis.python import asgi

from app import tenants
from app.database import create_engine
from app.http.app import create_app
from app.settings import Settings
from tests.conftest import Tenant

CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
)
MIN_REQUESTS = 1_000
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 4,
        # A slow machine must not turn into a failure: the run is bounded by max-examples.
        "suppress-health-check": ["too_slow"],
        "generation": {
            "max-examples": 60,
            "deterministic": True,
            "database": "none",
            # The tenant's key is sent with every request; a generated one only answers 401.
            "with-security-parameters": False,
        },
        "checks": {"enabled": False, **{check: {"enabled": True} for check in CHECKS}},
        "operations": [
            {
                # A deleted task keeps its audit history, readable by design.
                "include-operation-id": "getTaskEvents",
                "checks": {"use_after_free": {"enabled": False}},
            }
        ],
    }
)
STATEFUL = settings(
    max_examples=200,
    stateful_step_count=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# The document depends on the routes alone: this app serves it without reaching a database.
schema = schemathesis.openapi.from_asgi(
    "/schema/openapi.json",
    create_app(Settings(database_url="postgresql://127.0.0.1:9/unused", run_projections=False)),
    config=CONFIG,
)


@pytest.fixture(scope="module")
def live_app(database_url: str) -> Iterator[Litestar]:
    yield create_app(Settings(database_url=database_url, run_projections=False))
    # Schemathesis runs the apps' lifespans in its own thread: end them, closing the pool.
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def fuzzing_tenant(database_url: str) -> Tenant:
    return asyncio.run(unthrottled_tenant(database_url))


async def unthrottled_tenant(database_url: str) -> Tenant:
    """A new tenant with a rate limit no run reaches: throttling is tested on its own."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            issued = await tenants.create_tenant(conn, "fuzzing", "enterprise", rate_limit=10**9)
    finally:
        await engine.dispose()
    return Tenant(issued.tenant_id, issued.key_id, issued.api_key)


@schema.parametrize()
def test_every_operation_keeps_its_documented_contract(
    case: schemathesis.Case, live_app: Litestar, fuzzing_tenant: Tenant
) -> None:
    case.call_and_validate(app=live_app, headers=fuzzing_tenant.headers)


def test_chains_of_operations_keep_their_documented_contract(
    live_app: Litestar, database_url: str
) -> None:
    sent: Counter[str] = Counter()

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from an empty tenant: the same steps meet the same state,
            # as Hypothesis requires to replay them.
            self.tenant = asyncio.run(unthrottled_tenant(database_url))

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            sent["requests"] += 1
            return {"app": live_app, "headers": self.tenant.headers}

    Scenarios.run(settings=STATEFUL)
    assert sent["requests"] >= MIN_REQUESTS, sent
