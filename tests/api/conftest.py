from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from tests.api.task_api import TaskApi
from tests.conftest import Tenant


@pytest.fixture
def tasks(client: AsyncTestClient, tenant: Tenant) -> TaskApi:
    """The API as the test's tenant."""
    return TaskApi(client, tenant)


@pytest.fixture
def other_tasks(client: AsyncTestClient, other_tenant: Tenant) -> TaskApi:
    """The API as a second tenant, which must never see the first one's tasks."""
    return TaskApi(client, other_tenant)
