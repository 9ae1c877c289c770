"""The documentation pages, /schema (Scalar) and /schema/swagger (Swagger UI), as a browser
shows them: a headless Chromium renders the operations with no network beyond 127.0.0.1, the
pages' scripts and styles coming from the service itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.fault.served_api import ServedApi

CHROMIUM = "chromium"
# Some operations' summaries, as each page shows them once it has read the document.
SUMMARIES = [
    "Create a task",
    "List tasks with filtering and pagination",
    "Get tasks for a specific customer",
    "Snooze a task",
    "Get task statistics",
]
RENDER_SECONDS = 120
# Debian's package index is read once before the install, as a fresh machine has none.
APT_UPDATE_SECONDS = 120
APT_INSTALL_SECONDS = 420


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless browser: Debian's Chromium, installed here when the machine lacks it, as
    the suite provides its other servers itself."""
    found = shutil.which(CHROMIUM)
    if found is None and shutil.which("apt-get") is not None and os.geteuid() == 0:
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=apt, timeout=APT_UPDATE_SECONDS)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", CHROMIUM],
            env=apt,
            capture_output=True,
            timeout=APT_INSTALL_SECONDS,
            check=True,
        )
        found = shutil.which(CHROMIUM)
    if found is None:
        pytest.fail(f"no {CHROMIUM} on PATH: install Debian's package (apt-get install chromium)")
    return found


def rendered(chromium: str, url: str, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM once its scripts have run, and the URLs of the requests the page made.
    Every request Chromium makes goes to a proxy that does not answer, but those to 127.0.0.1."""
    net_log = profile / "net-log.json"
    shown = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            f"--log-net-log={net_log}",
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=RENDER_SECONDS,
        check=True,
    )
    return shown.stdout, requested_by_the_page(net_log)


def requested_by_the_page(net_log: Path) -> list[str]:
    """The URLs the page's own documents and scripts asked for (the browser's own requests,
    for updates and the like, have no page as their initiator)."""
    log = json.loads(net_log.read_text())
    started = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        params["url"]
        for event in log["events"]
        if event["type"] == started
        and (params := event.get("params", {})).get("initiator", "").startswith("http")
    ]


@pytest.mark.parametrize(
    ("page", "loaded"),
    [
        ("/schema", ["/schema/assets/scalar/standalone.js", "/schema/openapi.json"]),
        ("/schema/swagger", ["/schema/assets/swagger-ui/swagger-ui-bundle.js"]),
    ],
)
def test_the_documentation_page_renders_the_operations_from_the_service_alone(
    served_api: ServedApi, chromium: str, tmp_path: Path, page: str, loaded: list[str]
) -> None:
    dom, requests = rendered(chromium, f"{served_api.url}{page}", tmp_path)

    assert [summary for summary in SUMMARIES if summary not in dom] == []
    assert {f"{served_api.url}{path}" for path in loaded} <= set(requests)
    assert [url for url in requests if not url.startswith(f"{served_api.url}/")] == []


@pytest.mark.parametrize(
    ("asset", "licence"),
    [
        ("/schema/assets/scalar/standalone.js", "MIT License"),
        ("/schema/assets/swagger-ui/swagger-ui-bundle.js", "Apache License"),
        ("/schema/assets/swagger-ui/swagger-ui-standalone-preset.js", "Apache License"),
        ("/schema/assets/swagger-ui/swagger-ui.css", "Apache License"),
    ],
)
def test_the_pages_assets_are_served_beside_their_licences(
    served_api: ServedApi, asset: str, licence: str
) -> None:
    folder = asset.rsplit("/", 1)[0]

    served = httpx.get(f"{served_api.url}{asset}", timeout=10)
    licensed = httpx.get(f"{served_api.url}{folder}/LICENSE", timeout=10)

    assert served.status_code == 200
    assert len(served.content) > 100_000
    assert licensed.status_code == 200
    assert licence in licensed.text
