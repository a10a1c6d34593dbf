"""The units read-model projection on real PostgreSQL: replay-safe, order-tolerant, batch-exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import SystemClock
from shared.db import create_engine, session_factory
from shared.events.base import Event
from shared.events.envelope import RecordedEvent
from shared.events.units import UnitRegistered
from shared.eventstore import EventStore
from shared.migrate import service_versions_dir, upgrade
from tests.conftest import DatabaseFactory
from units import projector
from units.commands import MergeUnit, RegisterUnit
from units.domain import merge, register, replay
from units.views import locations_view, units_view

pytestmark = pytest.mark.infra

ON = date(2026, 9, 1)
TABLES = "units_view, unit_locations_view, unit_serving_view"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def setup(fresh_database: DatabaseFactory) -> AsyncIterator[tuple[AsyncEngine, EventStore]]:
    url = fresh_database("units_projector")
    await asyncio.to_thread(upgrade, url, service_versions_dir("units"))
    engine = create_engine(url, pool_size=2)
    store = await EventStore.open(url, source="/tests", clock=SystemClock())
    yield engine, store
    await store.close()
    await engine.dispose()


def command(unit_id: str, parent_id: str | None) -> RegisterUnit:
    return RegisterUnit(unit_id, parent_id, f"ΜΟΝΑΔΑ {unit_id}", "ΓΥΜΝΑΣΙΟ", ON)


async def recorded(store: EventStore, *appends: tuple[str, list[Event]]) -> list[RecordedEvent]:
    start = await store.last_position()
    for stream_id, events in appends:
        await store.append(stream_id, events, expected_version=None)
    return await store.read_all(after_position=start, limit=10_000)


async def fold(engine: AsyncEngine, events: list[RecordedEvent], *, batch: bool) -> None:
    async with session_factory(engine)() as session:
        if batch:
            await projector.apply_batch(events, session)
        else:
            for event in events:
                await projector.apply(event, session)
        await session.commit()


async def snapshot(engine: AsyncEngine) -> list[list[Any]]:
    async with engine.connect() as connection:
        units = await connection.execute(select(units_view).order_by(units_view.c.unit_id))
        locations = await connection.execute(
            select(locations_view).order_by(locations_view.c.location_id)
        )
        return [[tuple(r) for r in units], [tuple(r) for r in locations]]


async def truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES}"))


async def history(store: EventStore, prefix: str) -> list[RecordedEvent]:
    a, b, c = f"{prefix}1", f"{prefix}2", f"{prefix}3"
    root = register(None, None, command(a, None))
    parent = replay(root)
    school_b = register(None, parent, command(b, a))
    school_c = register(None, parent, command(c, a))
    decision = merge(replay(school_c), replay(school_b), [b, a], MergeUnit(c, b, ON))
    return await recorded(
        store,
        (a, root),
        (b, school_b),
        (c, school_c),
        (c, decision.merged),
        (b, decision.absorbing),
    )


async def test_applying_every_event_twice_changes_nothing(
    setup: tuple[AsyncEngine, EventStore],
) -> None:
    engine, store = setup
    await truncate(engine)
    events = await history(store, "111000")
    await fold(engine, events, batch=False)
    once = await snapshot(engine)

    await fold(engine, events, batch=False)

    assert await snapshot(engine) == once


async def test_the_batch_path_folds_like_the_per_event_path(
    setup: tuple[AsyncEngine, EventStore],
) -> None:
    engine, store = setup
    await truncate(engine)
    events = await history(store, "222000")
    await fold(engine, events, batch=False)
    per_event = await snapshot(engine)
    await truncate(engine)

    await fold(engine, events, batch=True)

    assert await snapshot(engine) == per_event


async def test_a_unit_registered_under_a_merged_parent_hangs_under_the_absorbing_unit(
    setup: tuple[AsyncEngine, EventStore],
) -> None:
    engine, store = setup
    await truncate(engine)
    events = await history(store, "333000")
    # Registered before the merge was decided; the projection may still see the merge first.
    registration = UnitRegistered(
        unit_id="3330009", parent_id="3330003", name="Χ", unit_type="ΓΥΜΝΑΣΙΟ", registered_on=ON
    )
    child = await recorded(store, ("3330009", [registration]))
    # The merge of 3330003 is projected before its child's registration (other partitions).
    await fold(engine, events + child, batch=False)

    async with engine.connect() as connection:
        parent = await connection.scalar(
            select(units_view.c.effective_parent_id).where(units_view.c.unit_id == "3330009")
        )
        moved = await connection.scalar(
            select(locations_view.c.unit_id).where(locations_view.c.location_id == "3330003-L1")
        )
    assert parent == "3330002"
    assert moved == "3330002"
