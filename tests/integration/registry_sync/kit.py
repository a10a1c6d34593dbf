"""Test kit for registry-sync on real PostgreSQL, Kafka and the reference receiver process.

A `SyncWorld` holds three source event stores (standing in for the units, equipment and compliance
services, each in its own database and relayed by the kernel's outbox relay to its own run-unique
topic), the registry-sync database (migrated), its projections run by the kernel's
`ProjectorRunner`, the delivery worker pushing to a real receiver process, and the registry-sync
app (for the operations API) with tokens from the development issuer. Events are built in the
tests with the kernel's typed contracts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import select

from registry_sync.delivery import Deliverer, DeliveryPolicy
from registry_sync.main import create_app, projections
from registry_sync.mapping import load_mapping
from registry_sync.projector import PROJECTION
from registry_sync.settings import Settings
from registry_sync.views import ledger
from shared.clock import SystemClock
from shared.consumer import ProjectorRunner, wait_for_position
from shared.devissuer import DevIssuer, load_or_create
from shared.events.base import Event
from shared.events.equipment import Acquisition, ItemRegistered, ItemStatus
from shared.events.units import GlobalRole, UnitRegistered
from shared.eventstore import EventStore
from shared.migrate import service_versions_dir, upgrade
from shared.outbox import OutboxRelay
from tests.conftest import DatabaseFactory
from tests.conftest import _create_topics as create_topics
from tests.receiver import Receiver

PARTITIONS = 3
FAST = DeliveryPolicy(
    concurrency=8,
    timeout_s=2.0,
    max_attempts=1000,
    backoff_initial_s=0.05,
    backoff_max_s=0.5,
    breaker_threshold=5,
    breaker_cooldown_s=0.2,
    breaker_max_cooldown_s=1.0,
    poll_interval_s=0.1,
)


@dataclass
class SyncWorld:
    """registry-sync with its inputs and its receiver, as the tests drive them."""

    client: httpx.AsyncClient
    issuer: DevIssuer
    settings: Settings
    units: EventStore
    equipment: EventStore
    compliance: EventStore
    app: Any
    deliverer: Deliverer
    _appended: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def engine(self) -> Any:
        """The registry-sync database engine."""
        return self.app.state.engine

    def token(self, user_id: str = "ops", *roles: GlobalRole) -> dict[str, str]:
        """Return an Authorization header for `user_id` with the global `roles` claimed."""
        minted = self.issuer.mint(user_id, now=now(), roles=roles or (GlobalRole.MINISTRY_ADMIN,))
        return {"Authorization": f"Bearer {minted}"}

    async def emit(self, store: EventStore, stream_id: str, events: Sequence[Event]) -> int:
        """Append `events` to a source stream; return the last position."""
        result = await store.append(stream_id, list(events), expected_version=None)
        topic = {
            id(self.units): self.settings.units_topic,
            id(self.equipment): self.settings.equipment_topic,
            id(self.compliance): self.settings.compliance_topic,
        }[id(store)]
        self._appended.setdefault(topic, []).append((stream_id, result.last_position))
        return result.last_position

    async def settle_projection(self, timeout_s: float = 60.0) -> None:
        """Wait until the registry view applied every event emitted so far."""
        for topic, appended in self._appended.items():
            last: dict[str, int] = {}
            for stream_id, position in appended:
                last[stream_id] = max(position, last.get(stream_id, 0))
            for stream_id, position in last.items():
                await wait_for_position(
                    self.engine, PROJECTION, topic=topic, stream_id=stream_id,
                    position=position, partitions=PARTITIONS, timeout_s=timeout_s,
                )  # fmt: skip
        self._appended.clear()

    async def settle(self, timeout_s: float = 90.0, *, ignore_parked: bool = False) -> None:
        """Wait until the view applied everything and every body's last version is acknowledged.

        With `ignore_parked`, parked bodies (waiting for an operator) do not count as pending.
        """
        await self.settle_projection(timeout_s)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            pending = (ledger.c.inflight_version.is_not(None)) | (
                ledger.c.wanted_seq > ledger.c.built_seq
            )
            if ignore_parked:
                pending &= ledger.c.parked_at.is_(None)
            async with self.engine.connect() as conn:
                waiting = (await conn.execute(select(ledger.c.body_code).where(pending))).scalars()
                left = list(waiting)
            if not left:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"deliveries still pending: {left[:10]} ({len(left)})")
            await asyncio.sleep(0.1)

    async def ledger_row(self, body_code: str) -> Any:
        """Return the ledger row of a body."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(ledger).where(ledger.c.body_code == body_code))).one()

    async def ledger_rows(self) -> dict[str, Any]:
        """Return every ledger row by body code."""
        async with self.engine.connect() as conn:
            return {row.body_code: row for row in await conn.execute(select(ledger))}

    async def own_table(self, body_code: str) -> dict[str, Any]:
        """Return our own current table of a body (GET /registry/bodies/{code}/table)."""
        answer = await self.client.get(f"/registry/bodies/{body_code}/table", headers=self.token())
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document

    async def assert_receiver_holds_our_view(
        self, receiver: Receiver, codes: Sequence[str]
    ) -> None:
        """Assert that, for every body, the receiver holds exactly our current table, under the
        version the ledger says it acknowledged, and that no key was applied twice."""
        ledger_rows = await self.ledger_rows()
        for code in codes:
            ours = await self.own_table(code)
            held = receiver.body(code)
            assert held is not None, f"the receiver holds nothing for {code}"
            assert rows_of(held) == rows_of(ours), code
            assert held["content_hash"] == ours["content_hash"], code
            row = ledger_rows[code]
            assert row.parked_at is None, (code, row.parked_reason)
            assert row.acked_version == held["registry_version"], code
            assert row.acked_hash == held["content_hash"], code
            assert row.inflight_version is None, code
            assert row.wanted_seq == row.built_seq, code
        listed = {entry["body_code"]: entry for entry in receiver.listing()}
        for code in codes:  # the listing's hash is recomputed from the held rows
            assert listed[code]["content_hash"] == ledger_rows[code].acked_hash, code
        assert_no_duplicate_application(receiver)


def rows_of(table: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Return a table's rows (a push, a held table or our own) as comparable tuples."""
    return [
        (r["line"], r["category_code"], r["manufacturer"], r["model"], r["acquisition_year"],
         r["in_operation"], r["quantity"])
        for r in table["rows"]
    ]  # fmt: skip


def assert_no_duplicate_application(receiver: Receiver) -> None:
    """Assert the receiver applied every idempotency key exactly once."""
    per_key = receiver.stats()["applied_per_key"]
    assert per_key, "the receiver applied nothing"
    assert all(count == 1 for count in per_key.values()), {
        key: count for key, count in per_key.items() if count != 1
    }


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0, what: str = "condition"
) -> None:
    """Wait (bounded) until `check()` is true, polling every 50 ms."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def unit(unit_id: str, name: str, *, parent: str | None = "ROOT") -> UnitRegistered:
    """Return a UnitRegistered for a school under `parent`."""
    return UnitRegistered(
        unit_id=unit_id,
        parent_id=parent,
        name=name,
        unit_type="ΓΥΜΝΑΣΙΟ",
        registered_on=date(2020, 1, 1),
    )


def item(
    unit_id: str,
    category: str,
    manufacturer: str,
    model: str,
    *,
    year: int | None = 2020,
    status: ItemStatus = ItemStatus.IN_USE,
    item_id: UUID | None = None,
) -> ItemRegistered:
    """Return an ItemRegistered of a product (a fresh product id per call)."""
    return ItemRegistered(
        item_id=item_id or uuid4(),
        unit_id=unit_id,
        product_id=uuid4(),
        category_id=category,
        manufacturer=manufacturer,
        model=model,
        asset_number=f"A-{uuid4().hex[:8]}",
        location_id="L1",
        acquisition=Acquisition(acquired_on=date(year, 3, 1) if year else None),
        status=status,
        performed_on=date(2026, 11, 1),
    )


def now() -> datetime:
    """Return the current instant (aware UTC)."""
    return datetime.now(UTC)


async def _source_store(url: str, source: str) -> EventStore:
    await asyncio.to_thread(upgrade, url, None)  # the kernel's tables only
    return await EventStore.open(url, source=source, clock=SystemClock())


def settings_for(
    url: str, topics: tuple[str, str, str], bootstrap: str, *, issuer: DevIssuer,
    issuer_dir: Path, receiver_url: str,
) -> Settings:  # fmt: skip
    """Return registry-sync settings for the test's database, topics, issuer and receiver."""
    return Settings(
        database_url=url,
        kafka_bootstrap_servers=bootstrap,
        units_topic=topics[0],
        equipment_topic=topics[1],
        compliance_topic=topics[2],
        port=0,
        auth_issuer=issuer.issuer,
        auth_audience=issuer.audience,
        auth_jwks_file=issuer_dir / "jwks.json",
        receiver_url=receiver_url,
    )


@contextlib.asynccontextmanager
async def running_sync(
    *,
    urls: tuple[str, str, str, str],
    topics: tuple[str, str, str],
    bootstrap_servers: str,
    issuer_dir: Path,
    receiver_url: str,
    policy: DeliveryPolicy = FAST,
    deliver: bool = True,
    project: bool = True,
) -> AsyncIterator[SyncWorld]:
    """Start the sources, registry-sync's database, projections, delivery worker and app.

    `deliver=False` / `project=False` leave the delivery worker / the projections to someone
    else (e.g. a registry-sync worker process); the sources' relays always run here.
    """
    units_url, equipment_url, compliance_url, registry_url = urls
    await asyncio.to_thread(upgrade, registry_url, service_versions_dir("registry_sync"))
    units = await _source_store(units_url, "/ictcadastre/units")
    equipment = await _source_store(equipment_url, "/ictcadastre/equipment")
    compliance = await _source_store(compliance_url, "/ictcadastre/compliance")
    issuer = load_or_create(issuer_dir)
    settings = settings_for(
        registry_url, topics, bootstrap_servers, issuer=issuer, issuer_dir=issuer_dir,
        receiver_url=receiver_url,
    )  # fmt: skip
    app = create_app(settings, clock=SystemClock())
    stop = asyncio.Event()
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        deliverer = Deliverer(
            engine,
            database_url=registry_url,
            receiver_url=receiver_url,
            clock=SystemClock(),
            mapping=load_mapping(),
            policy=policy,
        )
        relays = [
            OutboxRelay(url, topic=topic, bootstrap_servers=bootstrap_servers, source=source)
            for url, topic, source in zip(
                urls[:3],
                topics,
                ("/ictcadastre/units", "/ictcadastre/equipment", "/ictcadastre/compliance"),
                strict=True,
            )
        ]
        tasks = [asyncio.create_task(relay.run(stop)) for relay in relays]
        if project:
            tasks += [
                asyncio.create_task(
                    ProjectorRunner(p, engine=engine, bootstrap_servers=bootstrap_servers).run(stop)
                )
                for p in projections(settings)
            ]
        if deliver:
            tasks.append(asyncio.create_task(deliverer.run(stop)))
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rs") as client:
                yield SyncWorld(
                    client, issuer, settings, units, equipment, compliance, app, deliverer
                )
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            for store in (units, equipment, compliance):
                await store.close()


@contextlib.asynccontextmanager
async def fresh_world(
    name: str,
    *,
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    run_id: str,
    created_topics: list[str],
    tmp_path: Path,
    receiver_url: str,
    policy: DeliveryPolicy = FAST,
    deliver: bool = True,
    project: bool = True,
) -> AsyncIterator[SyncWorld]:
    """`running_sync` on four fresh databases and three run-unique topics named after `name`."""
    urls = (
        fresh_database(f"rs_{name}_units"),
        fresh_database(f"rs_{name}_equipment"),
        fresh_database(f"rs_{name}_compliance"),
        fresh_database(f"rs_{name}_registry"),
    )
    topics = (
        f"rs-test.{name}.units.{run_id}",
        f"rs-test.{name}.equipment.{run_id}",
        f"rs-test.{name}.compliance.{run_id}",
    )
    await create_topics(kafka_bootstrap, list(topics), PARTITIONS)
    created_topics.extend(topics)
    async with running_sync(
        urls=urls, topics=topics, bootstrap_servers=kafka_bootstrap,
        issuer_dir=tmp_path / "issuer", receiver_url=receiver_url, policy=policy,
        deliver=deliver, project=project,
    ) as built:  # fmt: skip
        yield built
