"""Composition root of the units service: builds its HTTP app and runs its processes.

Why this exists: nothing happens at import time (STYLE.md habit 5). `create_app` builds the FastAPI
app; its lifespan opens the database engine, the event store, the token verifier and the Kafka
probe and keeps them on ``app.state``. `serve` is the ``units-api`` console script;
`run_worker_cli` is ``units-worker`` (migrations, the outbox relay, the authz and read-model
projections).

Usage::

    app = create_app(Settings(database_url=..., kafka_bootstrap_servers=..., port=0))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from shared import authz
from shared.auth import TokenVerifier, use_token_verifier
from shared.clock import Clock, clock_from_env
from shared.consumer import Projection
from shared.db import session_factory
from shared.eventstore import EventStore
from shared.web import create_service_app, open_infrastructure
from shared.worker import worker_main
from units import projector
from units.api import install_domain_problems, router
from units.imports_api import router as imports_router
from units.settings import Settings

DESCRIPTION = "Owns the tree of education units, their locations and role grants."
SOURCE = "/ictcadastre/units"


async def open_store(settings: Settings, clock: Clock) -> EventStore:
    """Open the event store without waiting for the database (readiness reports it if down)."""
    return await EventStore.from_settings(settings, source=SOURCE, clock=clock)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Return the units HTTP app; settings come from the environment unless given."""
    resolved = settings if settings is not None else Settings()
    # The wall clock unless ICTC_CLOCK_FILE sets the time (end-to-end tests and demos only).
    clock = clock if clock is not None else clock_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = resolved
        app.state.clock = clock
        async with open_infrastructure(
            app, resolved, resolved, topics=resolved.readiness_topics(), service="units"
        ):
            app.state.sessions = session_factory(app.state.engine)
            store = await open_store(resolved, clock)
            verifier = TokenVerifier(resolved, clock=clock)
            app.state.store = store
            use_token_verifier(app, verifier)
            try:
                yield
            finally:
                await verifier.aclose()
                await store.close()

    app = create_service_app(
        title="ICT Cadastre: units", description=DESCRIPTION, lifespan=lifespan
    )
    install_domain_problems(app)
    app.include_router(router)
    app.include_router(imports_router)  # POST /units/imports (units.bulkimport)
    return app


def serve() -> None:
    """Run the HTTP API on the configured host and port (the ``units-api`` script)."""
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
            "units.authz", [settings.units_topic], apply=authz.apply, metadata=authz.metadata
        ),
        Projection(
            projector.PROJECTION,
            [settings.units_topic],
            apply=projector.apply,
            apply_batch=projector.apply_batch,
            metadata=projector.metadata,
        ),
    ]


def run_worker_cli() -> None:
    """Run the worker: migrations, outbox relay and projectors (the ``units-worker`` script)."""
    settings = Settings()
    raise SystemExit(
        worker_main(
            "units", settings, topic=settings.units_topic, projections=projections(settings)
        )
    )
