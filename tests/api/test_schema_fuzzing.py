"""Schemathesis against the OpenAPI document a served API answers with, with every check: no
request makes the server fail or answer slowly, every answer has a status, headers, a content
type and a shape the document promises, a request the document allows is accepted and one it
forbids refused, the API key is enforced, methods the document does not declare are refused
with Allow, and a created task can be reached until it is deleted and not after.

It runs as `st run --checks all --mode all` does, positive and negative data in all four phases
(examples, coverage, fuzzing, then stateful: chains through the links schemathesis infers,
create then act on the task), with fewer generated requests per operation than the long run.
Both read tests/api/schemathesis.toml. It leaves out one check on one operation:
use_after_free on a task's events, since a deleted task keeps its history by design. It lets
the commands whose rules depend on the task's state (or on the clock) answer a valid request
400, and those that honour If-Match answer a stale one 412."""

from __future__ import annotations

import asyncio
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import schemathesis
from schemathesis.engine import Status, events

from app import tenants
from app.database import engine_of
from tests.conftest import Tenant
from tests.fault.served_api import ServedApi

CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
PHASES = {"examples", "coverage", "fuzzing", "stateful"}
MAX_EXAMPLES = 30
MIN_CASES = 2_000
# What `--checks all` adds to the checks on by default: no answer slower than 10 seconds.
SLOWEST_ANSWER_SECONDS = 10.0


def run_config(tenant: Tenant, max_examples: int) -> schemathesis.Config:
    """The long run's configuration, as the tenant, with every check."""
    config = tomllib.loads(CONFIG_FILE.read_text())
    config["headers"] = tenant.headers
    config["continue-on-failure"] = True
    config["generation"]["max-examples"] = max_examples
    config["checks"] = {"max_response_time": SLOWEST_ANSWER_SECONDS}
    return schemathesis.Config.from_dict(config)


async def unthrottled_tenant(database_url: str) -> Tenant:
    """A new tenant with a rate limit no run reaches: throttling is tested on its own."""
    async with engine_of(database_url) as engine, engine.begin() as conn:
        issued = await tenants.create_tenant(conn, "fuzzing", "enterprise", rate_limit=10**9)
    return Tenant(issued.tenant_id, issued.key_id, issued.api_key)


@dataclass
class Run:
    """What a run did: the phases it finished, its requests, and what failed."""

    phases: dict[str, Status] = field(default_factory=dict)
    cases: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def run(url: str, config: schemathesis.Config) -> Run:
    done = Run()
    schema = schemathesis.openapi.from_url(url, config=config)
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.PhaseFinished):
            done.phases[event.phase.name.value] = event.status
        elif isinstance(event, events.ScenarioFinished):
            done.cases[event.phase.value] += len(event.recorder.cases)
            done.failures += [
                f"{event.label}: {check.name}: {failure.failure.title}\n{failure.code_sample}"
                f"\n{response.content!r}"
                for case_id, checks in event.recorder.checks.items()
                for check in checks
                if check.status == Status.FAILURE
                and (failure := check.failure_info) is not None
                and (response := event.recorder.find_response(case_id=case_id)) is not None
            ]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            done.failures.append(f"{event.label if hasattr(event, 'label') else ''}: {event}")
    return done


def test_every_check_is_on(database_url: str) -> None:
    tenant = Tenant("tenant", "key", "tk_unused")

    checks = run_config(tenant, MAX_EXAMPLES).projects.default.checks
    assert [
        name
        for name in schemathesis.checks.CHECKS.get_all_names()
        if not checks.get_by_name(name=name).enabled
    ] == []


def test_the_api_keeps_its_documented_contract_in_every_phase(
    served_api: ServedApi, database_url: str
) -> None:
    tenant = asyncio.run(unthrottled_tenant(database_url))

    done = run(f"{served_api.url}/schema/openapi.json", run_config(tenant, MAX_EXAMPLES))

    assert done.failures == []
    assert {phase: done.phases.get(phase) for phase in PHASES} == dict.fromkeys(
        PHASES, Status.SUCCESS
    )
    assert done.cases.total() >= MIN_CASES, done.cases
    assert done.cases["stateful"] > 0, done.cases
