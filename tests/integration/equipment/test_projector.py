"""The equipment projector on real PostgreSQL: every event twice changes nothing, and the batch
path folds like the per-event path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from equipment import projector
from equipment.views import items_view
from shared.clock import FixedClock
from shared.events.base import Event
from shared.events.envelope import RecordedEvent
from shared.events.equipment import (
    BundlePartAdded,
    ItemBundled,
    ItemMoved,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferDispatched,
)
from shared.eventstore import EventStore
from shared.migrate import service_versions_dir, upgrade
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.infra

ON = date(2026, 2, 2)
SCHOOL, OTHER = "0551010", "0551020"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def database(
    fresh_database: DatabaseFactory,
) -> AsyncIterator[tuple[EventStore, AsyncEngine]]:
    url = fresh_database("equipment_projector")
    await asyncio.to_thread(upgrade, url, service_versions_dir("equipment"))
    clock = FixedClock(datetime(2026, 2, 2, 9, tzinfo=UTC))
    store = await EventStore.open(url, source="/ictcadastre/equipment", clock=clock)
    engine = create_async_engine(url)
    yield store, engine
    await engine.dispose()
    await store.close()


def registered(item_id: UUID, category_id: str, asset: str) -> ItemRegistered:
    return ItemRegistered(
        item_id=item_id, unit_id=SCHOOL, product_id=uuid4(), category_id=category_id,
        manufacturer="Dell", model="x", asset_number=asset, location_id=f"{SCHOOL}-L1",
        performed_on=ON,
    )  # fmt: skip


async def history(store: EventStore) -> list[RecordedEvent]:
    bundle, monitor = uuid4(), uuid4()
    transfer = uuid4()
    streams: list[tuple[UUID, Sequence[Event]]] = [
        (bundle, [registered(bundle, "workstation", f"A-{bundle}")]),
        (monitor, [registered(monitor, "monitor", f"B-{monitor}")]),
        (bundle, [BundlePartAdded(item_id=bundle, unit_id=SCHOOL, part_item_id=monitor,
                                  part_category_id="monitor", performed_on=ON)]),
        (monitor, [ItemBundled(item_id=monitor, unit_id=SCHOOL, bundle_item_id=bundle,
                               performed_on=ON)]),
        (bundle, [ItemMoved(item_id=bundle, unit_id=SCHOOL, from_location_id=f"{SCHOOL}-L1",
                            to_location_id=f"{SCHOOL}-L2", performed_on=ON),
                  ItemStatusChanged(item_id=bundle, unit_id=SCHOOL, from_status=ItemStatus.IN_USE,
                                    to_status=ItemStatus.OUT_OF_ORDER, reason="x",
                                    performed_on=ON),
                  ItemTransferDispatched(item_id=bundle, unit_id=SCHOOL, transfer_id=transfer,
                                         to_unit_id=OTHER, from_location_id=f"{SCHOOL}-L2",
                                         performed_on=ON),
                  ItemTransferAccepted(item_id=bundle, unit_id=OTHER, transfer_id=transfer,
                                       from_unit_id=SCHOOL, to_location_id=f"{OTHER}-L1",
                                       performed_on=ON)]),
    ]  # fmt: skip
    recorded: list[RecordedEvent] = []
    for item_id, events in streams:
        result = await store.append(str(item_id), events, expected_version=None)
        recorded += result.events
    return recorded


async def rows(engine: AsyncEngine, item_ids: set[UUID]) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            select(items_view)
            .where(items_view.c.item_id.in_(item_ids))
            .order_by(items_view.c.asset_number)
        )
        return [dict(row._mapping) for row in result]


async def test_every_event_twice_changes_nothing_and_batch_equals_one_by_one(
    database: tuple[EventStore, AsyncEngine],
) -> None:
    store, engine = database
    recorded = await history(store)
    ids = {UUID(r.stream_id) for r in recorded}
    async with engine.begin() as connection:
        session = AsyncSession(bind=connection)
        for event in recorded:
            await projector.apply(event, session)
        await session.flush()
    once = await rows(engine, ids)
    async with engine.begin() as connection:
        session = AsyncSession(bind=connection)
        for event in recorded:
            await projector.apply(event, session)
        await session.flush()
    assert await rows(engine, ids) == once
    bundle = next(row for row in once if row["category_id"] == "workstation")
    assert (bundle["inventory_unit_id"], bundle["location_id"], bundle["status"]) == (
        OTHER, f"{OTHER}-L1", "out_of_order",
    )  # fmt: skip
    assert bundle["has_missing_parts"] is True  # a monitor, but no CPU
    async with engine.begin() as connection:
        await connection.execute(delete(items_view).where(items_view.c.item_id.in_(ids)))
    async with engine.begin() as connection:
        session = AsyncSession(bind=connection)
        await projector.apply_batch(recorded, session)
        await session.flush()
    assert await rows(engine, ids) == once
