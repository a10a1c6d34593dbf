"""The inventory of a unit as it was at past instants, folded from the real event store.

A history with registrations, moves, a transfer out and one in, and a withdrawal; the as-of
inventory is checked at five instants (one exactly at an event's time, two either side of midnight
in Athens on a day whose UTC date is the same), with and without checkpoints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import psycopg
import pytest
import pytest_asyncio

from equipment import asof
from shared.clock import FixedClock
from shared.eventstore import EventStore, libpq_url
from tests.integration.equipment.cert_kit import History, athens, migrated_store

pytestmark = pytest.mark.infra

A = "0551040"
B = "0551050"
A_LAB, A_OFFICE, A_CLASS = f"{A}-L1", f"{A}-L2", f"{A}-L3"
B_LAB = f"{B}-L1"


@pytest_asyncio.fixture(loop_scope="session")
async def store(fresh_database: Callable[[str], str]) -> AsyncIterator[EventStore]:
    clock = FixedClock(athens("2020-01-01T00:00"))
    opened = await migrated_store(fresh_database("equipment_asof"), clock)
    async with opened.pool.connection() as connection:
        await connection.execute("TRUNCATE events, outbox, unit_inventory_checkpoints")
        await connection.execute("UPDATE event_positions SET last_position = 0")
    yield opened
    await opened.close()


async def build(store: EventStore) -> dict[str, UUID]:
    """Write the story and return its items by name."""
    assert isinstance(store.clock, FixedClock)
    history = History(store, store.clock)
    y1 = await history.register(athens("2023-05-10T11:00"), B, B_LAB, serial="YSERIAL1")
    await history.move(athens("2023-06-01T12:00"), y1, B, B_LAB, f"{B}-L2")
    x1 = await history.register(athens("2024-09-02T09:00"), A, A_LAB, serial="XSERIAL1")
    x2 = await history.register(athens("2024-09-02T09:05"), A, A_OFFICE, serial="XSERIAL2")
    await history.move(athens("2024-10-01T10:00"), x1, A, A_LAB, A_CLASS)
    # 00:30 on 1 January in Athens is still 31 December in UTC (22:30Z).
    x3 = await history.register(athens("2025-01-01T00:30"), A, A_LAB, serial="XSERIAL3")
    out = await history.dispatch(athens("2025-02-10T10:00"), x2, A, B, A_OFFICE)
    await history.accept(athens("2025-02-12T10:00"), x2, out, source=A, target=B, location=B_LAB)
    into = await history.dispatch(athens("2025-03-01T10:00"), y1, B, A, f"{B}-L2")
    await history.accept(
        athens("2025-03-03T09:00"), y1, into, source=B, target=A, location=A_OFFICE
    )
    await history.withdraw(athens("2025-06-15T12:00"), x1, A)
    return {"x1": x1, "x2": x2, "x3": x3, "y1": y1}


def listing(inventory: asof.UnitInventory, names: dict[str, UUID]) -> list[tuple[str, str]]:
    by_id = {str(item): name for name, item in names.items()}
    return sorted((by_id[row["item_id"]], row["location_id"]) for row in inventory.items)


async def as_of(store: EventStore, unit: str, text: str | None) -> asof.UnitInventory:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(store_url(store)), autocommit=True
    ) as connection:
        return await asof.inventory_as_of(connection, unit, at=athens(text) if text else None)


def store_url(store: EventStore) -> str:
    return str(store.pool.conninfo)


EXPECTED: list[tuple[str, list[tuple[str, str]], list[str]]] = [
    # one hour after the first registrations
    ("2024-09-02T10:00", [("x1", A_LAB), ("x2", A_OFFICE)], []),
    # one second before midnight in Athens: x3 (00:30 Athens, same UTC date) not yet there
    ("2024-12-31T23:59:59", [("x1", A_CLASS), ("x2", A_OFFICE)], []),
    # after midnight in Athens and after the dispatch of x2: x2 in transit, in neither list
    ("2025-02-11T00:00", [("x1", A_CLASS), ("x3", A_LAB)], ["x2"]),
    # exactly at the acceptance of y1: it is in, with its history from unit B
    ("2025-03-03T09:00", [("x1", A_CLASS), ("x3", A_LAB), ("y1", A_OFFICE)], []),
    # after the withdrawal of x1
    ("2025-06-15T12:00:01", [("x3", A_LAB), ("y1", A_OFFICE)], []),
]


async def test_inventory_as_of_five_instants_matches_the_story(store: EventStore) -> None:
    names = await build(store)
    by_id = {str(item): name for name, item in names.items()}
    for instant, expected, in_transit in EXPECTED:
        inventory = await as_of(store, A, instant)
        assert listing(inventory, names) == expected, instant
        assert sorted(by_id[row["item_id"]] for row in inventory.in_transit) == in_transit
    # y1 came in with its earlier history: registered in B with its serial, then moved there.
    arrived = await as_of(store, A, "2025-03-03T09:00")
    y1 = next(row for row in arrived.items if row["item_id"] == str(names["y1"]))
    assert y1["serial_number"] == "YSERIAL1"
    assert y1["registered_on"] == "2023-05-10"
    assert y1["unit_id"] == A
    # One microsecond earlier it was still in transit (dispatched by B, not yet A's).
    earlier = await as_of(store, A, "2025-03-03T08:59:59.999999")
    assert str(names["y1"]) not in {row["item_id"] for row in earlier.items}
    # The destination of the transfer out holds x2, with its history from A.
    b_after = await as_of(store, B, "2025-02-12T10:00")
    x2 = next(row for row in b_after.items if row["item_id"] == str(names["x2"]))
    assert (x2["serial_number"], x2["location_id"]) == ("XSERIAL2", B_LAB)


async def test_checkpoints_change_no_answer(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = await build(store)
    monkeypatch.setattr(asof, "CHECKPOINT_EVERY", 2)
    async with await psycopg.AsyncConnection.connect(
        libpq_url(store_url(store)), autocommit=True
    ) as connection:
        plain = [
            await asof.fold_unit(
                connection, A, at=athens(instant), use_checkpoints=False, save_checkpoints=False
            )
            for instant, _, _ in EXPECTED
        ]
        cursor = await connection.execute("SELECT count(*) FROM unit_inventory_checkpoints")
        none: Any = await cursor.fetchone()
    assert none[0] == 0
    first = [await as_of(store, A, instant) for instant, _, _ in EXPECTED]
    again = [await as_of(store, A, instant) for instant, _, _ in EXPECTED]
    async with store.pool.connection() as connection:
        cursor = await connection.execute("SELECT count(*) FROM unit_inventory_checkpoints")
        saved: Any = await cursor.fetchone()
    assert saved[0] > 0
    for (state, full_read), before, after, (instant, expected, _) in zip(
        plain, first, again, EXPECTED, strict=True
    ):
        assert listing(after, names) == listing(before, names) == expected, instant
        assert after.items == before.items == sorted(state.items.values(), key=asof.sort_key)
        assert after.events_folded <= full_read
    assert again[-1].events_folded < plain[-1][1]


async def test_inventory_now_and_before_anything(store: EventStore) -> None:
    names = await build(store)
    now = await as_of(store, A, None)
    assert listing(now, names) == EXPECTED[-1][1]
    before = await as_of(store, A, "2020-01-01T00:00")
    assert before.items == []
    assert before.position == 0
    assert now.at is None
