"""Composition root of the registry-sync service: builds its HTTP app and runs its processes.

Why this exists: nothing happens at import time (STYLE.md habit 5). `create_app` builds the FastAPI
app; its lifespan opens the database engine, the token verifier and the Kafka probe and keeps
them on ``app.state``. `serve` is the ``registry-sync-api`` console script; `run_worker_cli` is
``registry-sync-worker`` (`registry_sync.worker`: migrations, the projections, the delivery
worker, reconciliation and window closures).

Usage::

    app = create_app(Settings(database_url=..., kafka_bootstrap_servers=..., port=0))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from registry_sync import projector
from registry_sync.api import router
from registry_sync.settings import Settings
from shared import authz
from shared.auth import TokenVerifier, use_token_verifier
from shared.clock import Clock, clock_from_env
from shared.consumer import Projection
from shared.db import session_factory
from shared.web import create_service_app, open_infrastructure

DESCRIPTION = (
    "Owns the delivery ledger of pushes to the national registry of digital infrastructure."
)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Return the registry-sync HTTP app; settings come from the environment unless given."""
    resolved = settings if settings is not None else Settings()
    clock = clock if clock is not None else clock_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = resolved
        app.state.clock = clock
        async with open_infrastructure(
            app, resolved, resolved, topics=resolved.readiness_topics(), service="registry_sync"
        ):
            app.state.sessions = session_factory(app.state.engine)
            verifier = TokenVerifier(resolved, clock=clock)
            use_token_verifier(app, verifier)
            try:
                yield
            finally:
                await verifier.aclose()

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
        Projection(
            projector.PROJECTION,
            [settings.units_topic, settings.equipment_topic, settings.compliance_topic],
            apply=projector.apply,
            apply_batch=projector.apply_batch,
            metadata=projector.metadata,
        ),
    ]


def run_worker_cli() -> None:
    """Run the worker: migrations, projectors, delivery (the ``registry-sync-worker`` script)."""
    from registry_sync.worker import worker_cli  # noqa: PLC0415  (the worker imports this module)

    raise SystemExit(worker_cli(Settings()))
