"""Composition root of the registry-sync service: builds its HTTP app and runs its processes.

Why this exists: nothing happens at import time (STYLE.md habit 5). `create_app` builds the FastAPI
app; its lifespan opens the database engine and the Kafka probe and keeps them on ``app.state``.
`serve` is the ``registry-sync-api`` console script; `run_worker_cli` is ``registry-sync-worker``.

Usage::

    app = create_app(Settings(database_url=..., kafka_bootstrap_servers=..., port=0))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from registry_sync.api import router
from registry_sync.settings import Settings
from shared import authz
from shared.clock import Clock, SystemClock
from shared.consumer import Projection
from shared.web import create_service_app, open_infrastructure
from shared.worker import worker_main

DESCRIPTION = (
    "Owns the delivery ledger of pushes to the national registry of digital infrastructure."
)


def create_app(settings: Settings | None = None, *, clock: Clock = SystemClock()) -> FastAPI:  # noqa: B008  (the clock is immutable; a default instance is shared safely)
    """Return the registry-sync HTTP app; settings come from the environment unless given."""
    resolved = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = resolved
        app.state.clock = clock
        async with open_infrastructure(
            app, resolved, resolved, topics=resolved.readiness_topics(), service="registry_sync"
        ):
            yield

    app = create_service_app(
        title="ICT Cadastre: registry-sync", description=DESCRIPTION, lifespan=lifespan
    )
    app.include_router(router)
    return app


def serve() -> None:
    """Run the HTTP API on the configured host and port (the ``registry-sync-api`` script)."""
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
            "registry-sync.authz",
            [settings.units_topic],
            apply=authz.apply,
            metadata=authz.metadata,
        ),
    ]


def run_worker_cli() -> None:
    """Run the worker: migrations and projectors (the ``registry-sync-worker`` script)."""
    settings = Settings()
    raise SystemExit(
        worker_main("registry-sync", settings, topic=None, projections=projections(settings))
    )
