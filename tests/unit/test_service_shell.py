"""Each service's HTTP shell: liveness, readiness naming what fails, docs; its worker's projections.

Runs without infrastructure: the database and Kafka addresses point at a closed port, so /readyz
must answer 503 problem+json naming both checks (the passing path is in tests/integration/infra).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from compliance import main as compliance_main
from equipment import main as equipment_main
from registry_sync import main as registry_sync_main
from shared.problems import PROBLEM_MEDIA_TYPE
from units import main as units_main

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once
MAINS: dict[str, Any] = {
    "units": units_main,
    "equipment": equipment_main,
    "compliance": compliance_main,
    "registry-sync": registry_sync_main,
}


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (httpx's ASGI transport does not) and yield a client on it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://service"
        ) as client,
    ):
        yield client


def unreachable_app(name: str) -> FastAPI:
    module = MAINS[name]
    settings = module.Settings(
        database_url=f"postgresql+psycopg://nobody:nobody@{CLOSED}/nothing",
        kafka_bootstrap_servers=CLOSED,
        port=0,
    )
    app: FastAPI = module.create_app(settings)
    return app


@pytest.mark.parametrize("name", sorted(MAINS))
async def test_healthz_answers_without_infrastructure(name: str) -> None:
    async with client_for(unreachable_app(name)) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("name", sorted(MAINS))
async def test_readyz_names_every_failing_check(name: str) -> None:
    async with client_for(unreachable_app(name)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body = response.json()
    assert body["type"].endswith("/not-ready")
    assert body["failing"] == ["database", "kafka", "schema"]  # unreachable: not migrated either
    assert "database:" in body["detail"]
    assert "kafka:" in body["detail"]


@pytest.mark.parametrize("name", sorted(MAINS))
async def test_openapi_docs_are_served(name: str) -> None:
    async with client_for(unreachable_app(name)) as client:
        docs = await client.get("/docs")
        schema = await client.get("/openapi.json")
    assert docs.status_code == 200
    assert {"/healthz", "/readyz"} <= set(schema.json()["paths"])


@pytest.mark.parametrize("name", sorted(MAINS))
def test_worker_names_its_projections(name: str) -> None:
    projections = MAINS[name].projections(MAINS[name].Settings())
    # Every worker folds its own authorization projection first; a service adds its read models.
    assert projections[0].name == f"{name}.authz"
    assert all(p.name.startswith(f"{name}.") for p in projections)
    assert all(p.metadata is not None for p in projections)  # each can be rebuilt
