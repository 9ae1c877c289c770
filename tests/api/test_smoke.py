from litestar.testing import AsyncTestClient

from tests.conftest import Tenant


async def test_a_created_task_can_be_read_back(client: AsyncTestClient, tenant: Tenant) -> None:
    created = await client.post("/v1/tasks", json={"title": "Call back"}, headers=tenant.headers)
    assert created.status_code == 201
    task_id = created.json()["task"]["_id"]

    fetched = await client.get(f"/v1/tasks/{task_id}", headers=tenant.headers)

    assert fetched.status_code == 200
    assert fetched.json()["title"] == "Call back"
