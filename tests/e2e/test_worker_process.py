"""A service worker as a real process: it migrates its database, relays its outbox to Kafka,
projects the topic back into its authorization view, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from shared import authz
from shared.auth import Principal
from shared.clock import SystemClock
from shared.events.units import RoleGranted, UnitRegistered, UnitRole
from shared.eventstore import EventStore
from shared.migrate import script_directory, service_versions_dir
from shared.web import CheckFailedError, check_schema
from tests.conftest import DatabaseFactory, TopicFactory

ROOT = Path(__file__).resolve().parents[2]


async def migrated(engine: AsyncEngine, service: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the worker has brought the database to every head of `service` (what /readyz
    checks), failing if the worker dies or a minute passes."""
    script = script_directory(service_versions_dir(service))
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            await check_schema(engine, script)
            return
        except CheckFailedError:
            assert process.poll() is None, "the worker died"
            assert asyncio.get_running_loop().time() < deadline, "never migrated"
            await asyncio.sleep(0.2)


async def test_units_worker_migrates_relays_projects_and_stops_on_sigterm(
    fresh_database: DatabaseFactory, kafka_bootstrap: str, unique_topic: TopicFactory
) -> None:
    url = fresh_database("units_worker")
    topic = await unique_topic("units-events", partitions=6)
    env = {
        **os.environ,
        "UNITS_DATABASE_URL": url,
        "UNITS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "UNITS_UNITS_TOPIC": topic,
    }
    process = subprocess.Popen(  # noqa: ASYNC220  (a long-lived child, polled without blocking)
        [str(ROOT / ".venv" / "bin" / "units-worker")], env=env, cwd=ROOT
    )
    engine = create_async_engine(url)
    store: EventStore | None = None
    try:
        await migrated(engine, "units", process)
        store = await EventStore.open(url, source="/ictcadastre/units", clock=SystemClock())
        await store.append(
            "0551198",
            [
                UnitRegistered(
                    unit_id="0551198",
                    parent_id=None,
                    name="1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ",
                    unit_type="ΓΕΝΙΚΟ ΛΥΚΕΙΟ",
                    registered_on=date(2026, 9, 1),
                )
            ],
            expected_version=0,
        )
        await store.append(
            "grants:teacher-1",
            [
                RoleGranted(
                    user_id="teacher-1",
                    unit_id="0551198",
                    role=UnitRole.ENTRY,
                    granted_at=datetime(2026, 9, 2, tzinfo=UTC),
                )
            ],
            expected_version=0,
        )
        principal = Principal("teacher-1")
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            async with AsyncSession(engine) as session:
                if await authz.may(session, principal, authz.Action.RECORD_EQUIPMENT, "0551198"):
                    break
            assert process.poll() is None, "the worker died"
            assert asyncio.get_running_loop().time() < deadline, "never projected"
            await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        if store is not None:
            await store.close()
        await engine.dispose()


@pytest.mark.parametrize(
    ("service", "prefix"),
    [("equipment", "EQUIPMENT"), ("compliance", "COMPLIANCE"), ("registry-sync", "REGISTRY_SYNC")],
)
async def test_every_worker_migrates_its_database_and_stops_on_sigterm(
    service: str,
    prefix: str,
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    unique_topic: TopicFactory,
) -> None:
    url = fresh_database(f"{prefix.lower()}_worker")
    env = {
        **os.environ,
        f"{prefix}_DATABASE_URL": url,
        f"{prefix}_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
    }
    for kind in ("units", "equipment", "compliance"):
        env[f"{prefix}_{kind.upper()}_TOPIC"] = await unique_topic(f"{kind}-events", partitions=6)
    process = subprocess.Popen(  # noqa: ASYNC220  (a long-lived child, polled without blocking)
        [str(ROOT / ".venv" / "bin" / f"{service}-worker")], env=env, cwd=ROOT
    )
    try:
        engine = create_async_engine(url)
        await migrated(engine, service.replace("-", "_"), process)
        await engine.dispose()
        store = await EventStore.open(url, source="/tests", clock=SystemClock())
        position = await store.last_position()
        await store.close()
        assert position == 0
        await asyncio.sleep(1.0)  # let its loops start, so SIGTERM stops running work
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
