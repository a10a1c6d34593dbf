"""Test kit for the compliance projection, reports and API on real PostgreSQL and Kafka.

A `World` holds: two source event stores (standing in for the units and equipment services, each
in its own database, relayed by the kernel's outbox relay to its own run-unique topic), the
compliance database (migrated; its own store relayed to a third topic), the compliance
projections run by the kernel's `ProjectorRunner`, and the compliance app on a `FixedClock`, with
tokens from the development issuer. Events are built in the tests; their `recorded_at` is the
source store's clock, which the tests move.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from compliance.main import create_app, projections
from compliance.settings import Settings
from shared.clock import FixedClock
from shared.consumer import ProjectorRunner, wait_for_position
from shared.devissuer import DevIssuer, load_or_create
from shared.events.base import Event
from shared.events.units import GlobalRole
from shared.eventstore import EventStore
from shared.migrate import service_versions_dir, upgrade
from shared.outbox import OutboxRelay

PARTITIONS = 3
PROJECTION = "compliance.unit-status"


@dataclass
class World:
    """The compliance service with its inputs, as the tests drive them."""

    client: httpx.AsyncClient
    issuer: DevIssuer
    settings: Settings
    clock: FixedClock  # the compliance app's clock ("now" of the reports)
    source_clock: FixedClock  # when source events are recorded
    units: EventStore
    equipment: EventStore
    app: Any
    _appended: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def token(self, user_id: str, *roles: GlobalRole) -> dict[str, str]:
        """Return an Authorization header for `user_id` holding the global `roles`."""
        # The app checks token times on its own (fixed) clock.
        minted = self.issuer.mint(user_id, now=self.clock.now(), roles=roles)
        return {"Authorization": f"Bearer {minted}"}

    async def emit(self, store: EventStore, stream_id: str, events: Sequence[Event],
                   *, at: datetime) -> None:  # fmt: skip
        """Append `events` to a source stream as recorded at `at`."""
        self.source_clock.set(at)
        result = await store.append(stream_id, list(events), expected_version=None)
        topic = self.settings.units_topic if store is self.units else self.settings.equipment_topic
        self._appended.setdefault(topic, []).append((stream_id, result.last_position))

    async def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until the unit-status projection applied every event emitted so far."""
        for topic, appended in self._appended.items():
            last: dict[str, int] = {}
            for stream_id, position in appended:
                last[stream_id] = max(position, last.get(stream_id, 0))
            for stream_id, position in last.items():
                await wait_for_position(
                    self.app.state.engine, PROJECTION, topic=topic, stream_id=stream_id,
                    position=position, partitions=PARTITIONS, timeout_s=timeout_s,
                )  # fmt: skip
        self._appended.clear()

    async def wait_compliance(self, stream_id: str, position: int) -> None:
        """Wait until the projection applied a write of the compliance service itself."""
        await wait_for_position(
            self.app.state.engine, PROJECTION, topic=self.settings.compliance_topic,
            stream_id=stream_id, position=position, partitions=PARTITIONS, timeout_s=30,
        )  # fmt: skip


async def _source_store(url: str, clock: FixedClock, source: str) -> EventStore:
    await asyncio.to_thread(upgrade, url, None)  # the kernel's tables only
    return await EventStore.open(url, source=source, clock=clock)


@contextlib.asynccontextmanager
async def running_world(
    *,
    urls: tuple[str, str, str],
    topics: tuple[str, str, str],
    bootstrap_servers: str,
    issuer_dir: Path,
    now: datetime,
) -> AsyncIterator[World]:
    """Start the sources, the compliance database, its projections, relays and app."""
    units_url, equipment_url, compliance_url = urls
    await asyncio.to_thread(upgrade, compliance_url, service_versions_dir("compliance"))
    source_clock = FixedClock(now)
    units = await _source_store(units_url, source_clock, "/ictcadastre/units")
    equipment = await _source_store(equipment_url, source_clock, "/ictcadastre/equipment")
    issuer = load_or_create(issuer_dir)
    settings = Settings(
        database_url=compliance_url,
        kafka_bootstrap_servers=bootstrap_servers,
        units_topic=topics[0],
        equipment_topic=topics[1],
        compliance_topic=topics[2],
        compliance_topic_partitions=PARTITIONS,
        port=0,
        auth_issuer=issuer.issuer,
        auth_audience=issuer.audience,
        auth_jwks_file=issuer_dir / "jwks.json",
    )
    clock = FixedClock(now)
    app = create_app(settings, clock=clock)
    stop = asyncio.Event()
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        relays = [
            OutboxRelay(url, topic=topic, bootstrap_servers=bootstrap_servers, source=source)
            for url, topic, source in zip(
                urls,
                topics,
                ("/ictcadastre/units", "/ictcadastre/equipment", "/ictcadastre/compliance"),
                strict=True,
            )
        ]
        tasks = [asyncio.create_task(relay.run(stop)) for relay in relays]
        tasks += [
            asyncio.create_task(
                ProjectorRunner(p, engine=engine, bootstrap_servers=bootstrap_servers).run(stop)
            )
            for p in projections(settings)
        ]
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://compliance"
            ) as client:
                yield World(client, issuer, settings, clock, source_clock, units, equipment, app)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await units.close()
            await equipment.close()
