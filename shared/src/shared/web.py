"""The HTTP shell every service shares: app factory, `/healthz`, and a `/readyz` that really checks.

Why this exists: a load balancer, `make up` and the e2e tests must know when a process can serve,
and "the process runs" is not that. `/readyz` runs ``SELECT 1`` on the service's own database and
asks the brokers for the metadata of the topics the service needs, each under a short timeout, and
answers 503 problem+json naming the failing check. `/healthz` is liveness only: it touches nothing.

Usage (in a service's ``main.py``)::

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_infrastructure(app, settings, settings, topics=(settings.units_topic,)):
            yield

    app = create_service_app(title="units", description="...", lifespan=lifespan)
    app.include_router(router)          # the service's api.py router, which includes health_router

Notes: the engine and the Kafka admin client are built in the lifespan, never at import time, and
kept on ``app.state`` (``engine``, ``readiness``). A service that cannot reach Kafka at start-up
still starts and reports not-ready; the admin client reconnects on the next probe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Literal

from aiokafka.admin import AIOKafkaAdminClient
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.clock import Clock
from shared.db import create_engine
from shared.eventstore import EventStore
from shared.migrate import script_directory, service_versions_dir
from shared.problems import Problem, install_problem_handlers, problem_response
from shared.settings import DatabaseSettings, KafkaSettings

DATABASE_TIMEOUT_S = 2.0
KAFKA_TIMEOUT_S = 3.0
UNKNOWN_TOPIC_OR_PARTITION = 3

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class CheckFailedError(Exception):
    """A readiness check did not pass; the message says why, for the operator."""


class Health(BaseModel):
    """Liveness answer."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Readiness answer when every check passed."""

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


async def check_database(engine: AsyncEngine, timeout_s: float = DATABASE_TIMEOUT_S) -> None:
    """Run ``SELECT 1`` on `engine` within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except TimeoutError as exc:
        raise CheckFailedError(f"no answer within {timeout_s:g}s") from exc
    except Exception as exc:
        raise CheckFailedError(f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc


class KafkaProbe:
    """A lazily connected admin client that asks the brokers whether the given topics are served."""

    def __init__(self, bootstrap_servers: str, timeout_s: float = KAFKA_TIMEOUT_S) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None
        # One probe at a time: concurrent readiness calls must not race to build two clients.
        self._lock = asyncio.Lock()

    async def check(self, topics: Sequence[str]) -> None:
        """Raise `CheckFailedError` unless a metadata request shows every topic with a leader."""
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout_s):
                    described = await self._describe(topics)
            except TimeoutError as exc:
                await self._reset()
                raise CheckFailedError(f"no metadata within {self._timeout_s:g}s") from exc
            except CheckFailedError:
                raise
            except Exception as exc:
                await self._reset()
                raise CheckFailedError(f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
        missing = [
            name
            for name in topics
            if name not in described or described[name]["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
        ]
        if missing:
            raise CheckFailedError(f"missing topics: {', '.join(missing)}")
        leaderless = [
            name
            for name in topics
            if described[name]["error_code"] != 0
            or any(partition["leader"] < 0 for partition in described[name]["partitions"])
        ]
        if leaderless:
            raise CheckFailedError(f"topics without a leader: {', '.join(leaderless)}")

    async def _describe(self, topics: Sequence[str]) -> dict[str, dict[str, Any]]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap_servers,
                client_id="readiness-probe",
                request_timeout_ms=int(self._timeout_s * 1000),
            )
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
            self._admin = admin
        return {t["topic"]: t for t in await self._admin.describe_topics(list(topics))}

    async def _reset(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            # A half-broken client must not stop the next probe from starting afresh.
            with contextlib.suppress(Exception):
                await admin.close()

    async def close(self) -> None:
        """Close the admin client, if one was opened."""
        async with self._lock:
            await self._reset()


async def check_schema(
    engine: AsyncEngine, script: ScriptDirectory, timeout_s: float = DATABASE_TIMEOUT_S
) -> None:
    """Pass when the database is at every Alembic head of the service (its worker migrated)."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            applied = {str(row[0]) for row in rows}
    except TimeoutError as exc:
        raise CheckFailedError(f"no answer within {timeout_s}s") from exc
    except DBAPIError as exc:
        raise CheckFailedError("not migrated yet (no alembic_version table)") from exc
    try:
        # A revision that another depends on is not stored in alembic_version once that one is
        # applied: count everything reachable from what is stored.
        reached = {
            revision.revision
            for revision in script.revision_map.iterate_revisions(tuple(applied), "base")
        }
    except (CommandError, RevisionError) as exc:
        raise CheckFailedError(f"unknown revision in the database: {exc}") from exc
    missing = sorted(set(script.get_heads()) - reached)
    if missing:
        raise CheckFailedError(f"not migrated to {', '.join(missing)} yet")


class ReadinessChecks:
    """The checks `/readyz` runs: the service's database (reachable, and migrated when the
    service's Alembic heads are known) and the Kafka topics it needs."""

    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaProbe,
        topics: Sequence[str],
        *,
        schema: ScriptDirectory | None = None,
    ) -> None:
        self.engine = engine
        self.kafka = kafka
        self.topics = tuple(topics)
        self.schema = schema

    async def run(self) -> dict[str, str | None]:
        """Run every check concurrently; map each name to None (passed) or the reason it failed."""
        checks: dict[str, Awaitable[None]] = {
            "database": check_database(self.engine),
            "kafka": self.kafka.check(self.topics),
        }
        if self.schema is not None:
            # An API in front of an unmigrated database would answer 500s: not ready.
            checks["schema"] = check_schema(self.engine, self.schema)
        results = await asyncio.gather(*checks.values(), return_exceptions=True)
        outcome: dict[str, str | None] = {}
        for name, result in zip(checks, results, strict=True):
            if isinstance(result, CheckFailedError):
                outcome[name] = str(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                outcome[name] = None
        return outcome


@asynccontextmanager
async def open_infrastructure(
    app: FastAPI,
    settings: DatabaseSettings,
    kafka_settings: KafkaSettings,
    *,
    topics: Sequence[str],
    service: str | None = None,
) -> AsyncIterator[None]:
    """Build the engine and the Kafka probe, put them on `app.state`, dispose of them at exit.

    With `service` (e.g. ``"registry_sync"``), `/readyz` also waits for its migrations.
    """
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    kafka = KafkaProbe(kafka_settings.kafka_bootstrap_servers)
    app.state.engine = engine
    script = script_directory(service_versions_dir(service)) if service is not None else None
    app.state.readiness = ReadinessChecks(engine, kafka, topics, schema=script)
    try:
        yield
    finally:
        await kafka.close()
        await engine.dispose()


health_router = APIRouter(tags=["operations"])


@health_router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    """Answer 200 while the process runs; checks nothing else on purpose."""
    return Health()


@health_router.get(
    "/readyz",
    summary="Readiness: the database and the Kafka topics answer",
    response_model=Readiness,
    responses={503: {"description": "A check failed (problem+json naming it)"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Answer 200 when the database and Kafka answer, else 503 naming each failing check."""
    checks: ReadinessChecks = request.app.state.readiness
    outcome = await checks.run()
    failed = {name: reason for name, reason in outcome.items() if reason is not None}
    if failed:
        problem = Problem(
            503,
            "not-ready",
            "Service not ready",
            "; ".join(f"{name}: {reason}" for name, reason in failed.items()),
            checks={name: reason or "ok" for name, reason in outcome.items()},
            failing=sorted(failed),
        )
        return problem_response(problem, request.url.path)
    return JSONResponse(Readiness(checks=dict.fromkeys(outcome, "ok")).model_dump())


def create_service_app(*, title: str, description: str, lifespan: Lifespan) -> FastAPI:
    """Return a FastAPI app with problem+json errors and OpenAPI docs at ``/docs``.

    The service's own router includes `health_router`, so that its API module lists every route.
    """
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    return app


# ---------------------------------------------------------------------------------------------
# Dependencies every service's API uses. The service's lifespan puts `store` (EventStore),
# `clock` (Clock) and `sessions` (async_sessionmaker) on `app.state`; these aliases read them.


# `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread, two thread
# hand-offs per request for an attribute read.
async def _store(request: Request) -> EventStore:
    store: EventStore = request.app.state.store
    return store


async def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with factory() as session:
        yield session


StoreDep = Annotated[EventStore, Depends(_store)]
ClockDep = Annotated[Clock, Depends(_clock)]
SessionDep = Annotated[AsyncSession, Depends(_session)]
MinPosition = Annotated[
    int | None, Query(ge=0, description="wait (bounded) until the read model shows this write")
]
