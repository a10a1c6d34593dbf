"""Composition root of the equipment service: builds its HTTP app and runs its processes.

Why this exists: nothing happens at import time (STYLE.md habit 5). `create_app` builds the FastAPI
app; its lifespan opens the database engine, the event store, the token verifier and the Kafka
probe and keeps them on ``app.state``. `serve` is the ``equipment-api`` console script
(`EQUIPMENT_WORKERS` uvicorn worker processes, one by default); `run_worker_cli` is
``equipment-worker`` (migrations, the outbox relay, the authz, units and read-model projections).

Usage::

    app = create_app(Settings(database_url=..., kafka_bootstrap_servers=..., port=0))
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from equipment import projector
from equipment.api import install_domain_problems, router
from equipment.cert_api import router as cert_router
from equipment.settings import Settings
from shared import authz
from shared.auth import TokenVerifier, use_token_verifier
from shared.clock import Clock, clock_from_env
from shared.consumer import Projection
from shared.db import session_factory
from shared.eventstore import EventStore
from shared.web import create_service_app, open_infrastructure
from shared.worker import worker_main

DESCRIPTION = "Owns the equipment catalogue, items, transfers and certifications."
SOURCE = "/ictcadastre/equipment"


async def open_store(settings: Settings, clock: Clock) -> EventStore:
    """Open the event store without waiting for the database (readiness reports it if down)."""
    return await EventStore.from_settings(settings, source=SOURCE, clock=clock)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Return the equipment HTTP app; settings come from the environment unless given."""
    resolved = settings if settings is not None else Settings()
    # The wall clock unless ICTC_CLOCK_FILE sets the time (end-to-end tests and demos only).
    clock = clock if clock is not None else clock_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = resolved
        app.state.clock = clock
        async with open_infrastructure(
            app, resolved, resolved, topics=resolved.readiness_topics(), service="equipment"
        ):
            app.state.sessions = session_factory(app.state.engine)
            store = await open_store(resolved, clock)
            verifier = TokenVerifier(resolved, clock=clock)
            app.state.store = store
            use_token_verifier(app, verifier)
            # Everything built so far (modules, the app, its routes and schemas) lives as long as
            # the process: out of the collector's sight, a full collection scans only what
            # requests made. A bulk import of 20,000 rows spent 0.9 s of its 3.2 s of CPU in eight
            # full collections that walked the whole heap again and again. (Collected first: the
            # start-up's garbage is freed, not kept for ever.)
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                await verifier.aclose()
                await store.close()

    app = create_service_app(
        title="ICT Cadastre: equipment", description=DESCRIPTION, lifespan=lifespan
    )
    install_domain_problems(app)
    app.include_router(router)
    app.include_router(cert_router)  # certification, as-of inventory, bulk import (cert_api)
    return app


def app_factory() -> FastAPI:
    """Return the app with settings from the environment (uvicorn's factory in each worker)."""
    return create_app(Settings())


def serve() -> None:
    """Run the HTTP API on the configured host and port (the ``equipment-api`` script).

    With more than one worker (`EQUIPMENT_WORKERS`, default 1) uvicorn starts that many processes
    on the same socket, each building its own app through `app_factory`.
    """
    settings = Settings()
    workers = settings.worker_count()
    uvicorn.run(
        "equipment.main:app_factory" if workers > 1 else create_app(settings),
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=settings.host,
        port=settings.port,
        log_level="info",
        # Ctrl-C under honcho: finish in-flight requests, but never hang the shutdown of `make up`.
        timeout_graceful_shutdown=5,
        # A spawned worker re-imports this script's module (the whole app) before it can answer
        # the supervisor's health check; on a busy machine that takes longer than uvicorn's 5 s.
        timeout_worker_healthcheck=60,
    )


def projections(settings: Settings) -> list[Projection]:
    """Return the read models this service folds from Kafka (run by its worker)."""
    return [
        Projection(
            "equipment.authz", [settings.units_topic], apply=authz.apply, metadata=authz.metadata
        ),
        Projection(
            projector.UNITS_PROJECTION,
            [settings.units_topic],
            apply=projector.apply_units,
            metadata=projector.metadata,
        ),
        Projection(
            projector.PROJECTION,
            [settings.equipment_topic],
            apply=projector.apply,
            apply_batch=projector.apply_batch,
            metadata=projector.metadata,
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
