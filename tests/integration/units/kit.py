"""Test kit for the units API tests: the real app over real PostgreSQL and Kafka, with its worker.

One app per session: a migrated database, a topic of 6 partitions, the outbox relay and both of
the worker's projections running as tasks, tokens from the development issuer. Tests pass
`min_position` (from a write's answer) to read their own writes, as clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from shared.clock import SystemClock
from shared.consumer import ProjectorRunner
from shared.devissuer import DevIssuer, load_or_create
from shared.events.units import GlobalRole
from shared.migrate import service_versions_dir, upgrade
from shared.outbox import OutboxRelay
from units.main import create_app, projections
from units.settings import Settings

PARTITIONS = 6


@dataclass
class Api:
    """A client on the units app, and the issuer that signs its tokens."""

    client: httpx.AsyncClient
    issuer: DevIssuer
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

    async def register(self, unit_id: str, parent_id: str | None, name: str, unit_type: str,
                       **more: Any) -> dict[str, Any]:  # fmt: skip
        """Register a unit and wait until the read model shows it; return the write's answer."""
        answer = await self.write(
            "POST",
            "/units",
            {"unit_id": unit_id, "parent_id": parent_id, "name": name, "unit_type": unit_type,
             "registered_on": "2020-09-01", **more},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        await self.seen(unit_id, answer.json()["position"])
        body: dict[str, Any] = answer.json()
        return body

    async def seen(self, unit_id: str, position: int) -> None:
        """Wait until the unit read model shows the write at `position` of `unit_id`."""
        read = await self.read(f"/units/{unit_id}", min_position=position)
        assert read.status_code == 200, read.text

    async def grants_seen(self, user_id: str, position: int) -> None:
        """Wait until the authorization projection shows the grant write at `position`."""
        read = await self.read(f"/users/{user_id}/grants", min_position=position)
        assert read.status_code == 200, read.text


@contextlib.asynccontextmanager
async def running_units_service(
    url: str, bootstrap_servers: str, topic: str, issuer_dir: Path
) -> AsyncIterator[Api]:
    """Migrate `url`, run the units worker's loops and app on it, and yield a client."""
    await asyncio.to_thread(upgrade, url, service_versions_dir("units"))
    issuer = load_or_create(issuer_dir)
    settings = Settings(
        database_url=url,
        kafka_bootstrap_servers=bootstrap_servers,
        units_topic=topic,
        units_topic_partitions=PARTITIONS,
        read_wait_timeout_s=60,
        port=0,
        auth_issuer=issuer.issuer,
        auth_audience=issuer.audience,
        auth_jwks_file=issuer_dir / "jwks.json",
    )
    app = create_app(settings, clock=SystemClock())
    stop = asyncio.Event()
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        tasks = [
            asyncio.create_task(
                OutboxRelay(
                    url,
                    topic=topic,
                    bootstrap_servers=bootstrap_servers,
                    source="/ictcadastre/units",
                ).run(stop)
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
            async with httpx.AsyncClient(transport=transport, base_url="http://units") as client:
                yield Api(client, issuer)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
