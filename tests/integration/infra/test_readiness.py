"""`/readyz` on the real PostgreSQL and Kafka: 200 when both serve and the database is migrated,
503 naming a missing topic or a database its worker has not migrated yet."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.migrate import service_versions_dir, upgrade
from tests.conftest import DatabaseFactory
from tests.unit.test_service_shell import MAINS, client_for

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("name", sorted(MAINS))
async def test_ready_when_database_and_topics_answer(
    name: str, kafka_bootstrap: str, fresh_database: DatabaseFactory
) -> None:
    module = MAINS[name]
    url = fresh_database(f"readiness_{name.replace('-', '_')}")
    settings = module.Settings(database_url=url, kafka_bootstrap_servers=kafka_bootstrap, port=0)
    async with client_for(module.create_app(settings)) as client:
        before = await client.get("/readyz")
        assert before.status_code == 503, before.text
        assert before.json()["failing"] == ["schema"]  # the worker has not migrated yet
        await asyncio.to_thread(upgrade, url, service_versions_dir(name.replace("-", "_")))
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "kafka": "ok", "schema": "ok"},
    }


async def test_not_ready_names_the_missing_topic(
    kafka_bootstrap: str, fresh_database: DatabaseFactory, run_id: str
) -> None:
    module = MAINS["units"]
    missing = f"missing.{run_id}"
    settings = module.Settings(
        database_url=fresh_database("readiness"),
        kafka_bootstrap_servers=kafka_bootstrap,
        units_topic=missing,
        port=0,
    )
    async with client_for(module.create_app(settings)) as client:
        response: httpx.Response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert "kafka" in body["failing"]
    assert body["checks"]["database"] == "ok"
    assert missing in body["checks"]["kafka"]
