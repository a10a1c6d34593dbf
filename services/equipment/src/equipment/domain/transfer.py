"""Transfers between units: the source dispatches, the destination accepts or rejects, the source
may cancel before acceptance.

Why this exists: while in transit an item belongs to neither inventory and both units see it as
pending; its identity, acquisition data and history travel with it (the same stream). Each act
writes the item's event (and its parts', for a bundle) and marks the transfer opened or closed on
both units' inventory streams, in one transaction, so a certification racing it conflicts.

Notes: the date of each act is checked against today, both units' last certifications and the
item's previous act (an acceptance cannot precede its dispatch).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from uuid import UUID

from equipment.commands import AcceptTransfer, CancelTransfer, RejectTransfer, TransferItem
from equipment.domain.errors import (
    ItemInTransitError,
    ItemNotInTransitError,
    TransferToSameUnitError,
)
from equipment.domain.inventory import (
    KnownUnit,
    PendingTransfer,
    UnitInventory,
    require_active,
    require_location,
)
from equipment.domain.item import Item, check_item_dates, require_item, require_present
from shared.events.base import Event
from shared.events.equipment import (
    InventoryTransferClosed,
    InventoryTransferOpened,
    ItemTransferAccepted,
    ItemTransferCancelled,
    ItemTransferDispatched,
    ItemTransferRejected,
    TransferOutcome,
)


def dispatch(
    item: Item | None,
    command: TransferItem,
    *,
    parts: Sequence[Item],
    source: KnownUnit | None,
    destination: KnownUnit | None,
    source_inventory: UnitInventory,
    destination_inventory: UnitInventory,
    today: date,
) -> list[Event]:
    """Decide the events for sending an item (with its parts) to another unit."""
    item = require_item(item, command.item_id)
    if item.transfer is not None and item.transfer.transfer_id == command.transfer_id:
        return []  # the same dispatch again
    require_present(item)
    require_active(source, item.unit_id)
    require_active(destination, command.to_unit_id)
    if command.to_unit_id == item.unit_id:
        raise TransferToSameUnitError(item.item_id, item.unit_id)
    moving = [part for part in parts if not part.is_withdrawn]
    for part in moving:
        if part.transfer is not None:
            raise ItemInTransitError(part.item_id, part.transfer.to_unit_id)
    check_item_dates(
        command.performed_on,
        [item, *moving],
        today=today,
        inventories=[source_inventory, destination_inventory],
    )
    reason = command.reason.strip()
    events: list[Event] = [
        ItemTransferDispatched(
            item_id=target.item_id,
            unit_id=target.unit_id,
            transfer_id=command.transfer_id,
            to_unit_id=command.to_unit_id,
            from_location_id=target.location_id,
            reason=reason,
            performed_on=command.performed_on,
            with_bundle_item_id=None if target is item else item.item_id,
        )
        for target in (item, *moving)
    ]
    events += [
        InventoryTransferOpened(
            unit_id=unit_id,
            transfer_id=command.transfer_id,
            item_id=item.item_id,
            from_unit_id=item.unit_id,
            to_unit_id=command.to_unit_id,
            performed_on=command.performed_on,
        )
        for unit_id in (item.unit_id, command.to_unit_id)
    ]
    return events


def _pending(item: Item | None, item_id: UUID) -> tuple[Item, PendingTransfer]:
    found = require_item(item, item_id)
    if found.transfer is None:
        raise ItemNotInTransitError(found.item_id)
    return found, found.transfer


def _closed(
    item: Item, transfer: PendingTransfer, outcome: TransferOutcome, performed_on: date
) -> list[Event]:
    return [
        InventoryTransferClosed(
            unit_id=unit_id,
            transfer_id=transfer.transfer_id,
            item_id=item.item_id,
            outcome=outcome,
            performed_on=performed_on,
        )
        for unit_id in (transfer.from_unit_id, transfer.to_unit_id)
    ]


def _travelling(parts: Sequence[Item], transfer: PendingTransfer) -> list[Item]:
    return [
        part
        for part in parts
        if part.transfer is not None and part.transfer.transfer_id == transfer.transfer_id
    ]


def accept(
    item: Item | None,
    command: AcceptTransfer,
    *,
    parts: Sequence[Item],
    destination: KnownUnit | None,
    source_inventory: UnitInventory,
    destination_inventory: UnitInventory,
    allocated_asset_number: str | None,
    today: date,
) -> list[Event]:
    """Decide the events for the destination taking the item (and its parts) into a location.

    `allocated_asset_number` is the destination's next number when the command asks for one.
    """
    item, transfer = _pending(item, command.item_id)
    known = require_active(destination, transfer.to_unit_id)
    require_location(known, command.to_location_id)
    travelling = _travelling(parts, transfer)
    check_item_dates(
        command.performed_on,
        [item, *travelling],
        today=today,
        inventories=[destination_inventory],
    )
    number = (command.asset_number or "").strip() or allocated_asset_number
    events: list[Event] = [
        ItemTransferAccepted(
            item_id=target.item_id,
            unit_id=transfer.to_unit_id,
            transfer_id=transfer.transfer_id,
            from_unit_id=transfer.from_unit_id,
            to_location_id=command.to_location_id,
            asset_number=number if target is item else None,
            performed_on=command.performed_on,
            with_bundle_item_id=None if target is item else item.item_id,
        )
        for target in (item, *travelling)
    ]
    del source_inventory  # the source's certification was checked at dispatch
    return events + _closed(item, transfer, TransferOutcome.ACCEPTED, command.performed_on)


def reject(
    item: Item | None,
    command: RejectTransfer,
    *,
    parts: Sequence[Item],
    source_inventory: UnitInventory,
    destination_inventory: UnitInventory,
    today: date,
) -> list[Event]:
    """Decide the events for the destination refusing the item; it returns to the source."""
    item, transfer = _pending(item, command.item_id)
    travelling = _travelling(parts, transfer)
    check_item_dates(
        command.performed_on,
        [item, *travelling],
        today=today,
        inventories=[source_inventory, destination_inventory],
    )
    events: list[Event] = [
        ItemTransferRejected(
            item_id=target.item_id,
            unit_id=transfer.from_unit_id,
            transfer_id=transfer.transfer_id,
            to_unit_id=transfer.to_unit_id,
            reason=command.reason.strip(),
            performed_on=command.performed_on,
            with_bundle_item_id=None if target is item else item.item_id,
        )
        for target in (item, *travelling)
    ]
    return events + _closed(item, transfer, TransferOutcome.REJECTED, command.performed_on)


def cancel(
    item: Item | None,
    command: CancelTransfer,
    *,
    parts: Sequence[Item],
    source_inventory: UnitInventory,
    destination_inventory: UnitInventory,
    today: date,
) -> list[Event]:
    """Decide the events for the source calling off a transfer not yet accepted."""
    item, transfer = _pending(item, command.item_id)
    travelling = _travelling(parts, transfer)
    check_item_dates(
        command.performed_on,
        [item, *travelling],
        today=today,
        inventories=[source_inventory, destination_inventory],
    )
    events: list[Event] = [
        ItemTransferCancelled(
            item_id=target.item_id,
            unit_id=transfer.from_unit_id,
            transfer_id=transfer.transfer_id,
            to_unit_id=transfer.to_unit_id,
            reason=command.reason.strip(),
            performed_on=command.performed_on,
            with_bundle_item_id=None if target is item else item.item_id,
        )
        for target in (item, *travelling)
    ]
    return events + _closed(item, transfer, TransferOutcome.CANCELLED, command.performed_on)
