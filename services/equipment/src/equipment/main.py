"""Composition root of the equipment service: builds its HTTP app and runs its processes.

Why this exists: nothing happens at import time (STYLE.md habit 5). `create_app` builds the FastAPI
app; its lifespan opens the database engine and the Kafka probe and keeps them on ``app.state``.
`serve` is the ``equipment-api`` console script; `run_worker_cli` is ``equipment-worker``.

Usage::

    app = create_app(Settings(database_url=..., kafka_bootstrap_servers=..., port=0))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from equipment.api import router
from equipment.settings import Settings
from shared import authz
from shared.clock import Clock, SystemClock
from shared.consumer import Projection
from shared.web import create_service_app, open_infrastructure
from shared.worker import worker_main

DESCRIPTION = "Owns the equipment catalogue, items, transfers and certifications."


def create_app(settings: Settings | None = None, *, clock: Clock = SystemClock()) -> FastAPI:  # noqa: B008  (the clock is immutable; a default instance is shared safely)
    """Return the equipment HTTP app; settings come from the environment unless given."""
    resolved = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = resolved
        app.state.clock = clock
        async with open_infrastructure(app, resolved, resolved, topics=resolved.readiness_topics()):
            yield

    app = create_service_app(
        title="ICT Cadastre: equipment", description=DESCRIPTION, lifespan=lifespan
    )
    app.include_router(router)
    return app


def serve() -> None:
    """Run the HTTP API on the configured host and port (the ``equipment-api`` script)."""
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        # Ctrl-C under honcho: finish in-flight requests, but never hang the shutdown of `make up`.
        timeout_graceful_shutdown=5,
    )


def projections(settings: Settings) -> list[Projection]:
    """Return the read models this service folds from Kafka (run by its worker)."""
    return [
        Projection(
            "equipment.authz", [settings.units_topic], apply=authz.apply, metadata=authz.metadata
        ),
    ]


def run_worker_cli() -> None:
    """Run the worker: migrations, outbox relay and projectors (the ``equipment-worker`` script)."""
    settings = Settings()
    raise SystemExit(
        worker_main(
            "equipment", settings, topic=settings.equipment_topic, projections=projections(settings)
        )
    )
