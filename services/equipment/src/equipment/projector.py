"""Fold `equipment.events` and `units.events` into the equipment read models (`equipment.views`).

Why this exists: the API's queries read tables, never the event store (ARCHITECTURE.md §4). The
kernel's `ProjectorRunner` calls `apply` once per event (or `apply_batch` per batch) and commits the
changes with its offsets in one transaction. Two projections:
- `equipment.read-model` (`apply`, `apply_batch`): products and items from `equipment.events`;
- `equipment.units` (`apply_units`): the units and locations this service must know, from
  `units.events` (never from the units database).

Notes:
- Each item and product row keeps the stream version and position it last applied; updates carry
  `version < :v`, so an event applied twice changes nothing, and the API answers the version as the
  ETag and waits on the position for read-your-writes.
- `apply_batch` inserts runs of registrations (a bulk import's shape) with one multi-row statement;
  any other event is applied on its own, in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from equipment import catalogue
from equipment.views import items_view, locations_view, metadata, products_view, units_view
from shared.events.envelope import RecordedEvent
from shared.events.equipment import (
    BundlePartAdded,
    BundlePartRemoved,
    ItemBundled,
    ItemDetailsCorrected,
    ItemMoved,
    ItemRegistered,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferCancelled,
    ItemTransferDispatched,
    ItemTransferRejected,
    ItemUnbundled,
    ItemWithdrawn,
    ProductApproved,
    ProductMerged,
    ProductProposed,
    ProductRejected,
)
from shared.events.units import (
    LocationAdded,
    LocationRenamed,
    LocationRetired,
    LocationTransferred,
    UnitAbolished,
    UnitMerged,
    UnitReactivated,
    UnitRegistered,
    UnitRenamed,
    UnitReparented,
    UnitSuspended,
)

PROJECTION = "equipment.read-model"
UNITS_PROJECTION = "equipment.units"

__all__ = ["PROJECTION", "UNITS_PROJECTION", "apply", "apply_batch", "apply_units", "metadata"]


def has_missing_parts(category_id: str, part_categories: Mapping[str, str]) -> bool:
    """Return whether a bundle of `category_id` holding these parts lacks a required one."""
    category = catalogue.category(category_id)
    if category is None or not category.is_bundle:
        return False
    held = Counter(part_categories.values())
    return any(held[rule.category_id] < rule.minimum for rule in category.parts)


def _registered_row(recorded: RecordedEvent, event: ItemRegistered) -> dict[str, Any]:
    acquisition = event.acquisition
    return {
        "item_id": event.item_id,
        "unit_id": event.unit_id,
        "inventory_unit_id": event.unit_id,
        "product_id": event.product_id,
        "category_id": event.category_id,
        "manufacturer": event.manufacturer,
        "model": event.model,
        "serial_number": event.serial_number,
        "asset_number": event.asset_number,
        "is_legacy_asset_number": event.is_legacy_asset_number,
        "location_id": event.location_id,
        "status": event.status.value,
        "acquired_on": acquisition.acquired_on,
        "funding_programme": acquisition.funding_programme,
        "contract": acquisition.contract,
        "cost_eur": acquisition.cost_eur,
        "invoice": acquisition.invoice,
        "warranty_ends_on": event.warranty_ends_on,
        "is_product_pending_approval": event.is_product_pending_approval,
        "notes": event.notes,
        "bundle_item_id": None,
        "part_categories": {},
        "has_missing_parts": has_missing_parts(event.category_id, {}),
        "transfer_id": None,
        "transfer_to_unit_id": None,
        "dispatched_on": None,
        "registered_on": event.performed_on,
        "last_performed_on": event.performed_on,
        "withdrawal_decision_reference": None,
        "version": recorded.version,
        "position": recorded.position,
    }


async def _insert_items(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.execute(
        insert(items_view).on_conflict_do_nothing(index_elements=[items_view.c.item_id]), rows
    )


async def _touch(
    session: AsyncSession, recorded: RecordedEvent, item_id: Any, **values: Any
) -> bool:
    """Apply `values` to the item's row if it has not seen this event yet; False if it had."""
    result = await session.execute(
        update(items_view)
        .where(items_view.c.item_id == item_id, items_view.c.version < recorded.version)
        .values(version=recorded.version, position=recorded.position, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


async def _parts_of(session: AsyncSession, item_id: Any) -> tuple[str, dict[str, str]] | None:
    row = (
        await session.execute(
            select(
                items_view.c.category_id, items_view.c.part_categories, items_view.c.version
            ).where(items_view.c.item_id == item_id)
        )
    ).first()
    return (row[0], dict(row[1])) if row else None


def _corrections(event: ItemDetailsCorrected) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in (
        "product_id",
        "category_id",
        "manufacturer",
        "model",
        "serial_number",
        "asset_number",
        "is_legacy_asset_number",
        "warranty_ends_on",
        "is_product_pending_approval",
        "notes",
    ):
        value = getattr(event, name)
        if value is not None:
            values[name] = value
    if event.acquisition is not None:
        acquisition = event.acquisition
        values.update(
            acquired_on=acquisition.acquired_on,
            funding_programme=acquisition.funding_programme,
            contract=acquisition.contract,
            cost_eur=acquisition.cost_eur,
            invoice=acquisition.invoice,
        )
    for name in event.cleared_fields:
        if name == "acquisition":
            values.update(
                acquired_on=None, funding_programme=None, contract=None, cost_eur=None, invoice=None
            )
        elif name == "notes":
            values["notes"] = ""
        elif name in ("serial_number", "warranty_ends_on"):
            values[name] = None
    return values


async def apply(recorded: RecordedEvent, session: AsyncSession) -> None:  # noqa: PLR0912  (one case per event type)
    """Fold one equipment event into the read models; applying it twice changes nothing."""
    event = recorded.event()
    on = getattr(event, "performed_on", None)
    common = {"last_performed_on": on} if on is not None else {}
    match event:
        case ProductProposed():
            await session.execute(
                insert(products_view)
                .values(
                    product_id=event.product_id,
                    category_id=event.category_id,
                    manufacturer=event.manufacturer,
                    model=event.model,
                    part_number=event.part_number,
                    attributes=dict(event.attributes),
                    proposed_by_unit_id=event.proposed_by_unit_id,
                    status="proposed",
                    merged_into=None,
                    version=recorded.version,
                    position=recorded.position,
                )
                .on_conflict_do_nothing(index_elements=[products_view.c.product_id])
            )
        case ProductApproved():
            await _touch_product(session, recorded, event.product_id, status="approved")
        case ProductRejected():
            await _touch_product(session, recorded, event.product_id, status="rejected")
        case ProductMerged():
            await _touch_product(
                session, recorded, event.product_id, status="merged",
                merged_into=event.into_product_id,
            )  # fmt: skip
        case ItemRegistered():
            await _insert_items(session, [_registered_row(recorded, event)])
        case ItemDetailsCorrected():
            values = _corrections(event)
            if "category_id" in values:
                current = await _parts_of(session, event.item_id)
                values["has_missing_parts"] = has_missing_parts(
                    values["category_id"], current[1] if current else {}
                )
            await _touch(session, recorded, event.item_id, **common, **values)
        case ItemStatusChanged():
            await _touch(session, recorded, event.item_id, **common, status=event.to_status.value)
        case ItemMoved():
            await _touch(
                session, recorded, event.item_id, **common, location_id=event.to_location_id
            )
        case ItemWithdrawn():
            await _touch(
                session, recorded, event.item_id, **common, status="withdrawn",
                withdrawal_decision_reference=event.decision_reference,
            )  # fmt: skip
        case BundlePartAdded() | BundlePartRemoved():
            found = await _parts_of(session, event.item_id)
            if found is not None:
                category_id, held = found
                parts = dict(held)
                if isinstance(event, BundlePartAdded):
                    parts[str(event.part_item_id)] = event.part_category_id
                else:
                    parts.pop(str(event.part_item_id), None)
                await _touch(
                    session, recorded, event.item_id, **common, part_categories=parts,
                    has_missing_parts=has_missing_parts(category_id, parts),
                )  # fmt: skip
        case ItemBundled():
            await _touch(
                session, recorded, event.item_id, **common, bundle_item_id=event.bundle_item_id
            )
        case ItemUnbundled():
            await _touch(session, recorded, event.item_id, **common, bundle_item_id=None)
        case ItemTransferDispatched():
            await _touch(
                session, recorded, event.item_id, **common, inventory_unit_id=None,
                transfer_id=event.transfer_id, transfer_to_unit_id=event.to_unit_id,
                dispatched_on=event.performed_on,
            )  # fmt: skip
        case ItemTransferAccepted():
            values = {"asset_number": event.asset_number} if event.asset_number else {}
            await _touch(
                session, recorded, event.item_id, **common, **values, unit_id=event.unit_id,
                inventory_unit_id=event.unit_id, location_id=event.to_location_id,
                transfer_id=None, transfer_to_unit_id=None, dispatched_on=None,
            )  # fmt: skip
        case ItemTransferRejected() | ItemTransferCancelled():
            await _touch(
                session, recorded, event.item_id, **common, unit_id=event.unit_id,
                inventory_unit_id=event.unit_id, transfer_id=None, transfer_to_unit_id=None,
                dispatched_on=None,
            )  # fmt: skip
        case _:
            pass  # serial claims and a unit's inventory stream change no view here


async def _touch_product(
    session: AsyncSession, recorded: RecordedEvent, product_id: Any, **values: Any
) -> None:
    await session.execute(
        update(products_view)
        .where(products_view.c.product_id == product_id, products_view.c.version < recorded.version)
        .values(version=recorded.version, position=recorded.position, **values)
    )


async def apply_batch(events: Sequence[RecordedEvent], session: AsyncSession) -> None:
    """Fold a batch: runs of registrations as one multi-row insert, the rest one by one."""
    registered: list[dict[str, Any]] = []
    for recorded in events:
        if recorded.type == "ItemRegistered":
            event = recorded.event()
            assert isinstance(event, ItemRegistered)  # noqa: S101  (the type says so)
            registered.append(_registered_row(recorded, event))
            continue
        if registered:
            await _insert_items(session, registered)
            registered = []
        await apply(recorded, session)
    if registered:
        await _insert_items(session, registered)


# ---------------------------------------------------------------------------------------------
# Units and locations from units.events


async def _touch_unit(session: AsyncSession, recorded: RecordedEvent, **values: Any) -> None:
    await session.execute(
        update(units_view)
        .where(units_view.c.unit_id == recorded.stream_id, units_view.c.version < recorded.version)
        .values(version=recorded.version, position=recorded.position, **values)
    )


async def _update_location(session: AsyncSession, location_id: str, **values: Any) -> None:
    await session.execute(
        update(locations_view).where(locations_view.c.location_id == location_id).values(**values)
    )


async def apply_units(recorded: RecordedEvent, session: AsyncSession) -> None:
    """Fold one units event into the units and locations this service knows; idempotent."""
    event = recorded.event()
    match event:
        case UnitRegistered():
            await session.execute(
                insert(units_view)
                .values(
                    unit_id=event.unit_id,
                    parent_id=event.parent_id,
                    name=event.name,
                    status="active",
                    merged_into=None,
                    version=recorded.version,
                    position=recorded.position,
                )
                .on_conflict_do_nothing(index_elements=[units_view.c.unit_id])
            )
        case UnitRenamed():
            await _touch_unit(session, recorded, name=event.name)
        case UnitReparented():
            await _touch_unit(session, recorded, parent_id=event.to_parent_id)
        case UnitSuspended():
            await _touch_unit(session, recorded, status="suspended")
        case UnitReactivated():
            await _touch_unit(session, recorded, status="active")
        case UnitAbolished():
            await _touch_unit(session, recorded, status="abolished")
        case UnitMerged():
            await _touch_unit(session, recorded, status="merged", merged_into=event.into_unit_id)
        case LocationAdded():
            await session.execute(
                insert(locations_view)
                .values(
                    location_id=event.location_id,
                    unit_id=event.unit_id,
                    name=event.name,
                    kind=event.kind.value,
                    is_retired=False,
                )
                .on_conflict_do_nothing(index_elements=[locations_view.c.location_id])
            )
        case LocationRenamed():
            await _update_location(session, event.location_id, name=event.name)
        case LocationRetired():
            await _update_location(session, event.location_id, is_retired=True)
        case LocationTransferred():
            await _update_location(session, event.location_id, unit_id=event.unit_id)
        case _:
            pass  # grants are folded by the kernel's authz projection
