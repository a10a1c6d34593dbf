"""Composition root of the compliance service: builds its HTTP app and runs its processes.

Why this exists: nothing happens at import time (STYLE.md habit 5). `create_app` builds the FastAPI
app; its lifespan opens the database engine, the event store, the token verifier and the Kafka
probe and keeps them on ``app.state``. `serve` is the ``compliance-api`` console script;
`run_worker_cli` is ``compliance-worker`` (`compliance.worker`: migrations, the outbox relay, the
authz and unit-status projections, and the publisher of UnitComplianceChanged).

Usage::

    app = create_app(Settings(database_url=..., kafka_bootstrap_servers=..., port=0))
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from compliance import projector
from compliance.api import install_domain_problems, router
from compliance.settings import Settings
from shared import authz
from shared.auth import TokenVerifier, use_token_verifier
from shared.clock import Clock, clock_from_env
from shared.consumer import Projection
from shared.db import create_engine, session_factory
from shared.eventstore import EventStore
from shared.web import create_service_app, open_infrastructure

DESCRIPTION = "Owns campaigns, windows, deadline extensions and the public compliance reports."
SOURCE = "/ictcadastre/compliance"


async def open_store(settings: Settings, clock: Clock) -> EventStore:
    """Open the event store without waiting for the database (readiness reports it if down)."""
    return await EventStore.from_settings(settings, source=SOURCE, clock=clock)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Return the compliance HTTP app; settings come from the environment unless given."""
    resolved = settings if settings is not None else Settings()
    # The wall clock unless ICTC_CLOCK_FILE sets the time (end-to-end tests and demos only).
    clock = clock if clock is not None else clock_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = resolved
        app.state.clock = clock
        async with open_infrastructure(
            app, resolved, resolved, topics=resolved.readiness_topics(), service="compliance"
        ):
            app.state.sessions = session_factory(app.state.engine)
            # The public reports read in autocommit (each statement its own snapshot, as under
            # READ COMMITTED before) and without a pre-ping: no BEGIN, ROLLBACK or ping round
            # trips around their statements (`compliance.api._read_report` retries a stale one).
            report_engine = create_engine(
                resolved.database_url, pool_size=resolved.database_pool_size, pre_ping=False
            )
            app.state.report_sessions = session_factory(
                report_engine.execution_options(isolation_level="AUTOCOMMIT")
            )
            store = await open_store(resolved, clock)
            verifier = TokenVerifier(resolved, clock=clock)
            app.state.store = store
            use_token_verifier(app, verifier)
            # Everything loaded so far (modules, compiled queries, settings) lives as long as the
            # process: move it out of the collector's reach, so the full collections that used to
            # pause a report request for 140-230 ms scan only what requests allocate.
            gc.freeze()
            try:
                yield
            finally:
                await verifier.aclose()
                await store.close()
                await report_engine.dispose()

    app = create_service_app(
        title="ICT Cadastre: compliance", description=DESCRIPTION, lifespan=lifespan
    )
    install_domain_problems(app)
    app.include_router(router)
    return app


def serve() -> None:
    """Run the HTTP API on the configured host and port (the ``compliance-api`` script)."""
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
            "compliance.authz", [settings.units_topic], apply=authz.apply, metadata=authz.metadata
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
    """Run migrations, relay, projectors and publisher (the ``compliance-worker`` script)."""
    from compliance.worker import worker_cli  # noqa: PLC0415  (the worker imports this module)

    raise SystemExit(worker_cli(Settings()))
