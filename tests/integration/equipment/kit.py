"""Test kit for the equipment API tests: the real app over real PostgreSQL and Kafka, its worker.

One app per session: a migrated equipment database, its outbox relay and its three projections
running as tasks, tokens from the development issuer. The units it needs come the way they come in
production: as `units.events` on a topic, written here by a small units event store (its own
database) and relayed by the kernel's outbox relay; `Api.units_seen` waits until the equipment
projections (units and authz) have folded them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from equipment.main import create_app, projections
from equipment.projector import PROJECTION, UNITS_PROJECTION
from equipment.settings import Settings
from shared.clock import SystemClock
from shared.consumer import ProjectorRunner, wait_for_position
from shared.devissuer import DevIssuer, load_or_create
from shared.events.base import Event
from shared.events.units import (
    GlobalRole,
    LocationAdded,
    LocationKind,
    RoleGranted,
    UnitRegistered,
    UnitRole,
)
from shared.eventstore import EventStore
from shared.migrate import service_versions_dir, upgrade
from shared.outbox import OutboxRelay

PARTITIONS = 6
UNITS_SOURCE = "/ictcadastre/units"
SINCE = date(2020, 9, 1)


@dataclass
class Api:
    """A client on the equipment app, the issuer of its tokens and the units event writer."""

    client: httpx.AsyncClient
    issuer: DevIssuer
    units: EventStore
    engine: AsyncEngine
    store: EventStore
    units_topic: str
    equipment_topic: str
    _tokens: dict[tuple[str, tuple[GlobalRole, ...]], str] = field(default_factory=dict)

    def token(self, user_id: str, *roles: GlobalRole) -> dict[str, str]:
        """Return an Authorization header for `user_id` holding the global `roles`."""
        key = (user_id, roles)
        if key not in self._tokens:
            self._tokens[key] = self.issuer.mint(user_id, now=datetime.now(UTC), roles=roles)
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    def admin(self) -> dict[str, str]:
        """Return the header of a ministry administrator."""
        return self.token("admin", GlobalRole.MINISTRY_ADMIN)

    async def write(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        *,
        user: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a command as `user` (the administrator by default)."""
        return await self.client.request(
            method, path, json=body, headers={**(user or self.admin()), **(headers or {})}
        )

    async def read(
        self, path: str, *, user: dict[str, str] | None = None, **params: Any
    ) -> httpx.Response:
        """Send a query as `user` (the administrator by default)."""
        return await self.client.get(path, params=params, headers=user or self.admin())

    async def units_event(self, stream_id: str, events: Sequence[Event]) -> None:
        """Append units events and wait until both equipment projections of units folded them."""
        result = await self.units.append(stream_id, events, expected_version=None)
        for projection in (UNITS_PROJECTION, "equipment.authz"):
            await wait_for_position(
                self.engine,
                projection,
                topic=self.units_topic,
                stream_id=stream_id,
                position=result.last_position,
                partitions=PARTITIONS,
                timeout_s=60,
            )

    async def unit(self, unit_id: str, parent_id: str | None, locations: Sequence[str]) -> None:
        """Register a unit with locations `<unit_id>-L<n>` named as given."""
        events: list[Event] = [
            UnitRegistered(
                unit_id=unit_id,
                parent_id=parent_id,
                name=f"ΜΟΝΑΔΑ {unit_id}",
                unit_type="ΓΥΜΝΑΣΙΟ",
                registered_on=SINCE,
            )
        ]
        events += [
            LocationAdded(
                unit_id=unit_id,
                location_id=f"{unit_id}-L{n}",
                name=name,
                kind=LocationKind.OTHER,
                added_on=SINCE,
            )
            for n, name in enumerate(locations, start=1)
        ]
        await self.units_event(unit_id, events)

    async def grant(
        self, user_id: str, unit_id: str, role: UnitRole, *, is_recursive: bool = False
    ) -> None:
        """Grant a unit role."""
        await self.units_event(
            f"grants:{user_id}",
            [
                RoleGranted(
                    user_id=user_id,
                    unit_id=unit_id,
                    role=role,
                    is_recursive=is_recursive,
                    granted_at=datetime.now(UTC),
                )
            ],
        )

    async def seen(self, stream_id: str, position: int) -> None:
        """Wait until the equipment read model shows the write at `position` of `stream_id`."""
        await wait_for_position(
            self.engine,
            PROJECTION,
            topic=self.equipment_topic,
            stream_id=stream_id,
            position=position,
            partitions=PARTITIONS,
            timeout_s=60,
        )


def _relay(url: str, topic: str, bootstrap_servers: str, source: str) -> OutboxRelay:
    return OutboxRelay(url, topic=topic, bootstrap_servers=bootstrap_servers, source=source)


@contextlib.asynccontextmanager
async def running_equipment_service(
    url: str,
    units_url: str,
    bootstrap_servers: str,
    topics: tuple[str, str],
    issuer_dir: Path,
) -> AsyncIterator[Api]:
    """Migrate both databases, run the equipment worker's loops and app, and yield a client."""
    units_topic, equipment_topic = topics
    await asyncio.to_thread(upgrade, url, service_versions_dir("equipment"))
    await asyncio.to_thread(upgrade, units_url, None)
    issuer = load_or_create(issuer_dir)
    settings = Settings(
        database_url=url,
        kafka_bootstrap_servers=bootstrap_servers,
        units_topic=units_topic,
        equipment_topic=equipment_topic,
        units_topic_partitions=PARTITIONS,
        equipment_topic_partitions=PARTITIONS,
        read_wait_timeout_s=60,
        port=0,
        auth_issuer=issuer.issuer,
        auth_audience=issuer.audience,
        auth_jwks_file=issuer_dir / "jwks.json",
    )
    app = create_app(settings, clock=SystemClock())
    units = await EventStore.open(units_url, source=UNITS_SOURCE, clock=SystemClock())
    stop = asyncio.Event()
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        tasks = [
            asyncio.create_task(
                _relay(url, equipment_topic, bootstrap_servers, "/ictcadastre/equipment").run(stop)
            ),
            asyncio.create_task(
                _relay(units_url, units_topic, bootstrap_servers, UNITS_SOURCE).run(stop)
            ),
            *(
                asyncio.create_task(
                    ProjectorRunner(p, engine=engine, bootstrap_servers=bootstrap_servers).run(stop)
                )
                for p in projections(settings)
            ),
        ]
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://equipment"
            ) as client:
                yield Api(
                    client, issuer, units, engine, app.state.store, units_topic, equipment_topic
                )
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await units.close()
