"""The registry view's batch fold equals its one-event-at-a-time fold, on real PostgreSQL.

Why this exists: the projector runner applies whole batches through `apply_batch` (item events
folded in memory, written as one upsert) and falls back to `apply` per event; the two must leave
the same tables, whatever the batch boundaries, or a rebuild or a retried batch would drift.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from registry_sync import projector
from registry_sync.views import bodies, item_history, items, ledger, products
from shared.clock import SystemClock
from shared.db import create_engine, session_factory
from shared.events.base import Event
from shared.events.envelope import RecordedEvent
from shared.events.equipment import (
    ItemBundled,
    ItemDetailsCorrected,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferDispatched,
    ItemUnbundled,
    ItemWithdrawn,
    ProductMerged,
    ProductProposed,
)
from shared.events.units import UnitMerged
from shared.eventstore import EventStore
from shared.migrate import service_versions_dir, upgrade
from tests.conftest import DatabaseFactory
from tests.integration.registry_sync.kit import item, now, unit

pytestmark = pytest.mark.infra

ON = date(2026, 11, 2)


def scenario() -> list[tuple[str, list[Event]]]:
    """Units, items and every kind of item change, in an order with runs and interruptions."""
    appends: list[tuple[str, list[Event]]] = [
        (f"unit:{code}", [unit(code, f"ΣΧΟΛΕΙΟ {code}")]) for code in ("0557001", "0557002")
    ]
    laptop = item("0557001", "laptop", "HP", "ProBook 450", year=2020)
    printer = item("0557001", "printer", "Brother", "HL-1", year=2019)
    desk = item("0557001", "workstation", "Dell", "OptiPlex", year=2021)
    screen = item("0557001", "monitor", "Dell", "P2422H", year=2021)
    product = uuid4()
    survivor = uuid4()
    appends += [(str(i.item_id), [i]) for i in (laptop, printer, desk, screen)]
    appends += [
        (str(printer.item_id), [
            ItemStatusChanged(item_id=printer.item_id, unit_id="0557001",
                              from_status=ItemStatus.IN_USE, to_status=ItemStatus.UNDER_REPAIR,
                              reason="", performed_on=ON),
            ItemStatusChanged(item_id=printer.item_id, unit_id="0557001",
                              from_status=ItemStatus.UNDER_REPAIR, to_status=ItemStatus.IN_USE,
                              reason="", performed_on=ON),
        ]),
        (str(screen.item_id), [
            ItemBundled(item_id=screen.item_id, unit_id="0557001", bundle_item_id=desk.item_id,
                        performed_on=ON),
        ]),
        (f"product:{product}", [
            ProductProposed(product_id=survivor, category_id="laptop", manufacturer="Lenovo",
                            model="ThinkPad E14", proposed_at=now()),
        ]),
        (str(laptop.item_id), [
            ItemDetailsCorrected(item_id=laptop.item_id, unit_id="0557001", reason="",
                                 performed_on=ON, model="ProBook 450 G8",
                                 cleared_fields=("acquisition",)),
            ItemTransferDispatched(item_id=laptop.item_id, unit_id="0557001", transfer_id=product,
                                   to_unit_id="0557002", from_location_id="L1", performed_on=ON),
            ItemTransferAccepted(item_id=laptop.item_id, unit_id="0557002", transfer_id=product,
                                 from_unit_id="0557001", to_location_id="L2", performed_on=ON),
        ]),
        ("unit:0557003", [unit("0557003", "ΣΧΟΛΕΙΟ 0557003")]),
        (str(screen.item_id), [
            ItemUnbundled(item_id=screen.item_id, unit_id="0557001", bundle_item_id=desk.item_id,
                          performed_on=ON),
        ]),
        (f"product:{laptop.product_id}", [
            ProductMerged(product_id=laptop.product_id, into_product_id=survivor, merged_at=now()),
        ]),
        (str(desk.item_id), [
            ItemWithdrawn(item_id=desk.item_id, unit_id="0557001", from_status=ItemStatus.IN_USE,
                          decision_reference="Π1", decided_on=ON, performed_on=ON),
        ]),
        ("unit:0557002", [UnitMerged(unit_id="0557002", into_unit_id="0557003", merged_on=ON)]),
    ]  # fmt: skip
    extra = [item("0557003", "tablet", "Apple", f"iPad {n}", year=2024) for n in range(30)]
    appends += [(str(i.item_id), [i]) for i in extra]
    return appends


async def fold(engine: AsyncEngine, events: list[RecordedEvent], *, batch: int | None) -> None:
    async with session_factory(engine)() as session:
        if batch is None:
            for event in events:
                await projector.apply(event, session)
        else:
            for start in range(0, len(events), batch):
                await projector.apply_batch(events[start : start + batch], session)
        await session.commit()


async def tables(engine: AsyncEngine) -> dict[str, list[Any]]:
    async with engine.connect() as connection:
        return {
            "items": list(await connection.execute(select(items).order_by(items.c.item_id))),
            "history": list(
                await connection.execute(
                    select(item_history).order_by(
                        item_history.c.item_id, item_history.c.stream_version
                    )
                )
            ),
            "bodies": list(await connection.execute(select(bodies).order_by(bodies.c.unit_id))),
            "products": list(await connection.execute(select(products))),
            "pending": list(
                await connection.execute(
                    select(ledger.c.body_code, ledger.c.wanted_seq > ledger.c.built_seq).order_by(
                        ledger.c.body_code
                    )
                )
            ),
        }


@pytest.mark.parametrize("batch", [1, 7, 500])
async def test_batches_of_any_size_fold_like_single_events(
    fresh_database: DatabaseFactory, batch: int
) -> None:
    source = fresh_database(f"rs_batch_src_{batch}")
    await asyncio.to_thread(upgrade, source, None)
    store = await EventStore.open(source, source="/tests", clock=SystemClock())
    try:
        for stream_id, events in scenario():
            await store.append(stream_id, events, expected_version=None)
        recorded = await store.read_all(after_position=0, limit=10_000)
    finally:
        await store.close()
    engines = []
    for name in ("single", "batch"):
        url = fresh_database(f"rs_batch_{name}_{batch}")
        await asyncio.to_thread(upgrade, url, service_versions_dir("registry_sync"))
        engines.append(create_engine(url, pool_size=2))
    single, batched = engines
    try:
        await fold(single, recorded, batch=None)
        await fold(batched, recorded, batch=batch)
        expected, got = await tables(single), await tables(batched)
        assert len(expected["items"]) == 4 + 30
        assert len(expected["history"]) > len(expected["items"])
        for name, rows in expected.items():
            assert got[name] == rows, f"{name} differ for batches of {batch}"
    finally:
        for engine in engines:
            await engine.dispose()
