"""A unit's inventory as a whole (stream `inventory:<unit id>`), serial claims and the date rules.

Why this exists: some rules are about a unit, not an item: an act may not be dated before the
unit's last certification, and a certification is refused while transfers to or from the unit are
pending. `UnitInventory` keeps exactly that state, folded from the unit's inventory stream, which
transfers (both units' streams, in one transaction) and certifications append to, so a
certification and a transfer racing each other conflict on the stream version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from uuid import UUID

from equipment.domain.errors import (
    ActBeforeCertificationError,
    ActDatedInFutureError,
    LocationNotFoundError,
    SerialNumberTakenError,
    UnitNotActiveError,
    UnitNotFoundError,
)
from shared.events.base import Event
from shared.events.equipment import (
    InventoryCertified,
    InventoryTransferClosed,
    InventoryTransferOpened,
    SerialNumberClaimed,
    SerialNumberReleased,
)

INVENTORY_PREFIX = "inventory:"
SERIAL_PREFIX = "serial:"


def inventory_stream(unit_id: str) -> str:
    """Return the stream id of a unit's inventory."""
    return f"{INVENTORY_PREFIX}{unit_id}"


def serial_stream(manufacturer_key: str, serial_number: str) -> str:
    """Return the stream id of the claim on a manufacturer's serial number."""
    return f"{SERIAL_PREFIX}{manufacturer_key}:{serial_number}"


def asset_number(unit_id: str, number: int) -> str:
    """Return the `number`-th asset number a unit allocated: `<unit_id>-<number, 6 digits>`."""
    return f"{unit_id}-{number:06d}"


@dataclass(frozen=True, slots=True)
class KnownUnit:
    """A unit as this service knows it from `units.events`: its status and open locations."""

    unit_id: str
    status: str = "active"
    open_location_ids: frozenset[str] = frozenset()

    @property
    def is_active(self) -> bool:
        """Return whether the unit takes changes to its inventory."""
        return self.status == "active"


def require_active(unit: KnownUnit | None, unit_id: str) -> KnownUnit:
    """Return the unit if it is known and active; raise why not."""
    if unit is None:
        raise UnitNotFoundError(unit_id)
    if not unit.is_active:
        raise UnitNotActiveError(unit.unit_id, unit.status)
    return unit


def require_location(unit: KnownUnit, location_id: str) -> None:
    """Raise unless `location_id` is an open location of `unit`."""
    if location_id not in unit.open_location_ids:
        raise LocationNotFoundError(unit.unit_id, location_id)


@dataclass(frozen=True, slots=True)
class PendingTransfer:
    """A transfer dispatched and not yet accepted, rejected or cancelled."""

    transfer_id: UUID
    item_id: UUID
    from_unit_id: str
    to_unit_id: str
    performed_on: date


@dataclass(frozen=True, slots=True)
class UnitInventory:
    """A unit's inventory as a whole: its last certification and its pending transfers."""

    unit_id: str
    version: int = 0
    last_certified_on: date | None = None
    last_certified_at: datetime | None = None
    last_certification_id: UUID | None = None
    last_covers_position: int | None = None
    pending_transfers: Mapping[UUID, PendingTransfer] = field(default_factory=dict)

    @property
    def has_pending_transfers(self) -> bool:
        """Return whether a transfer to or from the unit is pending."""
        return bool(self.pending_transfers)


def evolve_inventory(inventory: UnitInventory, event: Event, version: int) -> UnitInventory:
    """Return the unit's inventory state after `event` (at stream `version`)."""
    match event:
        case InventoryTransferOpened():
            pending = dict(inventory.pending_transfers)
            pending[event.transfer_id] = PendingTransfer(
                event.transfer_id,
                event.item_id,
                event.from_unit_id,
                event.to_unit_id,
                event.performed_on,
            )
            return replace(inventory, pending_transfers=pending, version=version)
        case InventoryTransferClosed():
            pending = dict(inventory.pending_transfers)
            pending.pop(event.transfer_id, None)
            return replace(inventory, pending_transfers=pending, version=version)
        case InventoryCertified():
            return replace(
                inventory,
                last_certified_on=event.certified_on,
                last_certified_at=event.certified_at,
                last_certification_id=event.certification_id,
                last_covers_position=event.covers_position,
                version=version,
            )
        case _:
            return replace(inventory, version=version)


def replay_inventory(unit_id: str, history: Iterable[tuple[Event, int]]) -> UnitInventory:
    """Fold a unit's inventory stream ((event, version) pairs)."""
    inventory = UnitInventory(unit_id)
    for event, version in history:
        inventory = evolve_inventory(inventory, event, version)
    return inventory


def check_act_date(
    performed_on: date, *, today: date, inventories: Iterable[UnitInventory] = ()
) -> None:
    """Raise unless `performed_on` is not in the future nor before any unit's last certification."""
    if performed_on > today:
        raise ActDatedInFutureError(performed_on, today)
    for inventory in inventories:
        certified_on = inventory.last_certified_on
        if certified_on is not None and performed_on < certified_on:
            raise ActBeforeCertificationError(inventory.unit_id, performed_on, certified_on)


# ---------------------------------------------------------------------------------------------
# Serial-number claims (stream `serial:<manufacturer key>:<serial>`)


@dataclass(frozen=True, slots=True)
class SerialClaim:
    """Who holds a manufacturer's serial number (None: nobody, now)."""

    manufacturer_key: str
    serial_number: str
    item_id: UUID | None = None
    version: int = 0


def evolve_claim(claim: SerialClaim, event: Event, version: int) -> SerialClaim:
    """Return the claim after `event`."""
    match event:
        case SerialNumberClaimed():
            return replace(claim, item_id=event.item_id, version=version)
        case SerialNumberReleased():
            return replace(claim, item_id=None, version=version)
        case _:
            return replace(claim, version=version)


def claim_serial(
    claim: SerialClaim, *, item_id: UUID, unit_id: str, manufacturer: str
) -> list[Event]:
    """Decide the claim of a serial number for `item_id`; raise if another item holds it."""
    if claim.item_id == item_id:
        return []
    if claim.item_id is not None:
        raise SerialNumberTakenError(claim.serial_number, manufacturer, claim.item_id)
    return [
        SerialNumberClaimed(
            manufacturer_key=claim.manufacturer_key,
            serial_number=claim.serial_number,
            item_id=item_id,
            unit_id=unit_id,
        )
    ]


def release_serial(claim: SerialClaim, *, item_id: UUID, unit_id: str) -> list[Event]:
    """Decide the release of `item_id`'s claim (nothing if it does not hold it)."""
    if claim.item_id != item_id:
        return []
    return [
        SerialNumberReleased(
            manufacturer_key=claim.manufacturer_key,
            serial_number=claim.serial_number,
            item_id=item_id,
            unit_id=unit_id,
        )
    ]
