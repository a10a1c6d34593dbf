"""The as-of fold of item events, on stored JSON payloads (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args
from uuid import uuid4

from equipment import asof
from shared.events.equipment import (
    ItemEvent,
    ItemMoved,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemWithdrawn,
)

UNIT = "0551040"
WHEN = datetime(2025, 1, 1, tzinfo=UTC)


def test_every_item_event_type_has_a_fold() -> None:
    types = {cls.model_fields["type"].default for cls in get_args(ItemEvent)}
    assert types == set(asof.ITEM_FOLD) == asof.ITEM_EVENT_TYPES


def stored(version: int, event: Any) -> tuple[Any, ...]:
    return (
        version,
        str(event.item_id),
        version,
        event.type,
        1,
        event.payload(),
        WHEN,
        f"h{version}",
    )


def test_fold_item_follows_registration_move_status_and_withdrawal() -> None:
    item = uuid4()
    day = WHEN.date()
    events = [
        ItemRegistered(
            item_id=item, unit_id=UNIT, product_id=uuid4(), category_id="laptop",
            manufacturer="Dell", model="Latitude", serial_number="SN1", asset_number="A1",
            location_id=f"{UNIT}-L1", performed_on=day,
        ),
        ItemMoved(item_id=item, unit_id=UNIT, from_location_id=f"{UNIT}-L1",
                  to_location_id=f"{UNIT}-L2", performed_on=day),
        ItemStatusChanged(item_id=item, unit_id=UNIT, from_status=ItemStatus.IN_USE,
                          to_status=ItemStatus.UNDER_REPAIR, reason="οθόνη", performed_on=day),
    ]  # fmt: skip
    row = asof.fold_item([stored(v, e) for v, e in enumerate(events, start=1)])
    assert row is not None
    assert (row["location_id"], row["status"], row["version"], row["hash"]) == (
        f"{UNIT}-L2", "under_repair", 3, "h3",
    )  # fmt: skip
    withdrawn = ItemWithdrawn(
        item_id=item, unit_id=UNIT, from_status=ItemStatus.UNDER_REPAIR,
        decision_reference="Πρακτικό 3/2025", decided_on=day, performed_on=day,
    )  # fmt: skip
    events.append(withdrawn)
    row = asof.fold_item([stored(v, e) for v, e in enumerate(events, start=1)])
    assert row is not None
    assert row["status"] == "withdrawn"
    assert asof.fold_item([]) is None


def test_rows_sort_by_asset_number_numbers_by_value() -> None:
    rows = [{"asset_number": "10", "item_id": "b"}, {"asset_number": "9", "item_id": "a"},
            {"asset_number": "ΠΑΛ-1", "item_id": "c"}]  # fmt: skip
    assert [r["asset_number"] for r in sorted(rows, key=asof.sort_key)] == ["9", "10", "ΠΑΛ-1"]
