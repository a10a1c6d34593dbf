"""The item aggregate (one stream per physical item): its state, `evolve`, and the decide functions.

Why this exists: every rule about one item (registration, corrections, status, moves, withdrawal)
lives here with no I/O and no clock, so each is a unit test *given events → when command → then
events or error*. Bundles are in `domain.bundle`, transfers in `domain.transfer`.

Usage::

    item = replay_item((recorded.event(), recorded.version) for recorded in history)
    events = move(item, MoveItem(item.item_id, "0551010-L3", day), unit=unit, parts=[],
                  inventory=inventory, today=day)

Notes:
- A decide function returns events of several streams when one act touches several (a bundle
  moves with its parts; a registration claims a serial number); `domain.stream_of(event)` says
  which stream each goes to, in the order given.
- A command that changes nothing returns no events, so a retried request appends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import assert_never
from uuid import UUID

from equipment import catalogue
from equipment.commands import (
    ChangeItemStatus,
    CorrectItemDetails,
    MoveItem,
    RegisterItem,
    WithdrawItem,
)
from equipment.domain.errors import (
    ActBeforeItemHistoryError,
    ActDatedInFutureError,
    CategoryNotFoundError,
    InvalidItemDataError,
    ItemAlreadyRegisteredError,
    ItemInTransitError,
    ItemLostError,
    ItemNotFoundError,
    ItemWithdrawnError,
    PartInBundleError,
    ProductMergedError,
    ProductNotApprovedError,
    ProductNotFoundError,
    SerialNumberRequiredError,
    StatusChangeError,
)
from equipment.domain.inventory import (
    KnownUnit,
    PendingTransfer,
    SerialClaim,
    UnitInventory,
    check_act_date,
    claim_serial,
    release_serial,
    require_active,
    require_location,
)
from equipment.domain.product import Product, ProductStatus, manufacturer_key
from shared.events.base import Event
from shared.events.equipment import (
    Acquisition,
    BundlePartAdded,
    BundlePartRemoved,
    ItemBundled,
    ItemDetailsCorrected,
    ItemEvent,
    ItemMoved,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferCancelled,
    ItemTransferDispatched,
    ItemTransferRejected,
    ItemUnbundled,
    ItemWithdrawn,
)

_DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
# What normalise_serial drops: every str.isspace() character (none above U+3000) and the dashes.
_SERIAL_DROPS = {
    code: None for code in range(0x3001) if chr(code).isspace() or chr(code) in _DASHES
}
MAX_TEXT = 2000
CLEARABLE_FIELDS = frozenset({"serial_number", "warranty_ends_on", "notes", "acquisition"})


def item_stream(item_id: UUID) -> str:
    """Return the stream id of an item: its UUID as text."""
    return str(item_id)


def normalise_serial(text: str | None) -> str | None:
    """Return a serial number trimmed, upper-case, without spaces or dashes (None if empty)."""
    if text is None:
        return None
    return text.upper().translate(_SERIAL_DROPS) or None


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """The decision by which an item was withdrawn."""

    decision_reference: str
    decided_on: date
    performed_on: date


@dataclass(frozen=True, slots=True)
class Item:
    """A physical item as its stream says it is now."""

    item_id: UUID
    unit_id: str  # the unit whose inventory holds it (the source while in transit)
    product_id: UUID
    category_id: str
    manufacturer: str
    model: str
    asset_number: str
    location_id: str
    registered_on: date
    last_performed_on: date
    serial_number: str | None = None
    is_legacy_asset_number: bool = False
    acquisition: Acquisition = field(default_factory=Acquisition)
    warranty_ends_on: date | None = None
    status: ItemStatus = ItemStatus.IN_USE
    is_product_pending_approval: bool = False
    notes: str = ""
    import_id: UUID | None = None
    transfer: PendingTransfer | None = None
    bundle_item_id: UUID | None = None  # the bundle this item is a part of
    parts: Mapping[UUID, str] = field(default_factory=dict)  # part item id → its category
    withdrawal: Withdrawal | None = None
    version: int = 0
    registration: ItemRegistered | None = None

    @property
    def is_in_transit(self) -> bool:
        """Return whether a transfer of the item is pending."""
        return self.transfer is not None

    @property
    def is_withdrawn(self) -> bool:
        """Return whether the item is withdrawn for good."""
        return self.status is ItemStatus.WITHDRAWN

    @property
    def category(self) -> catalogue.Category | None:
        """Return the item's category."""
        return catalogue.category(self.category_id)

    @property
    def is_bundle(self) -> bool:
        """Return whether the item's category is a bundle of parts."""
        category = self.category
        return category is not None and category.is_bundle

    def missing_parts(self) -> dict[str, int]:
        """Return, per required part category, how many parts the bundle lacks."""
        category = self.category
        if category is None or not category.is_bundle:
            return {}
        held: dict[str, int] = {}
        for part_category in self.parts.values():
            held[part_category] = held.get(part_category, 0) + 1
        return {
            rule.category_id: rule.minimum - held.get(rule.category_id, 0)
            for rule in category.parts
            if held.get(rule.category_id, 0) < rule.minimum
        }

    @property
    def has_missing_parts(self) -> bool:
        """Return whether the item is a bundle missing a required part (it is flagged)."""
        return bool(self.missing_parts())

    @property
    def serial_key(self) -> tuple[str, str] | None:
        """Return (manufacturer key, serial number) of the item's claim, if it has a serial."""
        if self.serial_number is None:
            return None
        return manufacturer_key(self.manufacturer), self.serial_number


# ---------------------------------------------------------------------------------------------
# Evolve


def evolve_item(item: Item | None, event: ItemEvent, version: int) -> Item | None:  # noqa: PLR0911, PLR0912  (one case per event type)
    """Return the item after `event` (at stream `version`)."""
    if isinstance(event, ItemRegistered):
        return Item(
            item_id=event.item_id,
            unit_id=event.unit_id,
            product_id=event.product_id,
            category_id=event.category_id,
            manufacturer=event.manufacturer,
            model=event.model,
            asset_number=event.asset_number,
            location_id=event.location_id,
            registered_on=event.performed_on,
            last_performed_on=event.performed_on,
            serial_number=event.serial_number,
            is_legacy_asset_number=event.is_legacy_asset_number,
            acquisition=event.acquisition,
            warranty_ends_on=event.warranty_ends_on,
            status=event.status,
            is_product_pending_approval=event.is_product_pending_approval,
            notes=event.notes,
            import_id=event.import_id,
            version=version,
            registration=event,
        )
    if item is None:
        return None
    item = replace(item, version=version, last_performed_on=event.performed_on)
    match event:
        case ItemDetailsCorrected():
            return _corrected(item, event)
        case ItemStatusChanged():
            return replace(item, status=event.to_status)
        case ItemMoved():
            return replace(item, location_id=event.to_location_id)
        case ItemWithdrawn():
            withdrawal = Withdrawal(event.decision_reference, event.decided_on, event.performed_on)
            return replace(item, status=ItemStatus.WITHDRAWN, withdrawal=withdrawal)
        case BundlePartAdded():
            return replace(item, parts={**item.parts, event.part_item_id: event.part_category_id})
        case BundlePartRemoved():
            parts = {k: v for k, v in item.parts.items() if k != event.part_item_id}
            return replace(item, parts=parts)
        case ItemBundled():
            return replace(item, bundle_item_id=event.bundle_item_id)
        case ItemUnbundled():
            return replace(item, bundle_item_id=None)
        case ItemTransferDispatched():
            pending = PendingTransfer(
                event.transfer_id,
                event.item_id,
                event.unit_id,
                event.to_unit_id,
                event.performed_on,
            )
            return replace(item, transfer=pending)
        case ItemTransferAccepted():
            return replace(
                item,
                unit_id=event.unit_id,
                location_id=event.to_location_id,
                asset_number=event.asset_number or item.asset_number,
                is_legacy_asset_number=(
                    item.is_legacy_asset_number if event.asset_number is None else False
                ),
                transfer=None,
            )
        case ItemTransferRejected() | ItemTransferCancelled():
            return replace(item, transfer=None)
        case _:
            assert_never(event)


def _corrected(item: Item, event: ItemDetailsCorrected) -> Item:
    names = (
        "product_id",
        "category_id",
        "manufacturer",
        "model",
        "serial_number",
        "asset_number",
        "is_legacy_asset_number",
        "acquisition",
        "warranty_ends_on",
        "is_product_pending_approval",
        "notes",
    )
    changes = {name: value for name in names if (value := getattr(event, name)) is not None}
    cleared = {
        "serial_number": None,
        "warranty_ends_on": None,
        "notes": "",
        "acquisition": Acquisition(),
    }
    for name in event.cleared_fields:
        if name in cleared:
            changes[name] = cleared[name]
    return replace(item, **changes)


def replay_item(history: Iterable[tuple[Event, int]]) -> Item | None:
    """Fold an item's (event, version) pairs; None if the stream registered no item."""
    item: Item | None = None
    for event, version in history:
        if isinstance(event, ItemEvent):
            item = evolve_item(item, event, version)
    return item


# ---------------------------------------------------------------------------------------------
# Shared checks


def require_item(item: Item | None, item_id: UUID) -> Item:
    """Return the item, or raise `ItemNotFoundError`."""
    if item is None:
        raise ItemNotFoundError(item_id)
    return item


def require_present(item: Item, *, allow_part: bool = False) -> None:
    """Raise unless the item is here to act on: not withdrawn, lost, in transit (or a part)."""
    if item.is_withdrawn:
        raise ItemWithdrawnError(item.item_id)
    if item.transfer is not None:
        raise ItemInTransitError(item.item_id, item.transfer.to_unit_id)
    if item.status is ItemStatus.LOST:
        raise ItemLostError(item.item_id)
    if not allow_part and item.bundle_item_id is not None:
        raise PartInBundleError(item.item_id, item.bundle_item_id)


def check_item_dates(
    performed_on: date,
    items: Iterable[Item],
    *,
    today: date,
    inventories: Iterable[UnitInventory] = (),
) -> None:
    """Raise unless `performed_on` is allowed: not future, not before a certification or act."""
    check_act_date(performed_on, today=today, inventories=inventories)
    for item in items:
        if performed_on < item.last_performed_on:
            raise ActBeforeItemHistoryError(item.item_id, performed_on, item.last_performed_on)


def _text(value: str, field_name: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidItemDataError(field_name, "must not be blank")
    if len(text) > limit:
        raise InvalidItemDataError(field_name, f"at most {limit} characters")
    return text


def usable_product(product: Product | None, product_id: UUID, unit_id: str) -> bool:
    """Return whether `product` is pending approval for `unit_id`; raise if it cannot be used.

    Only approved products go on items, except that a unit may use a product it proposed itself
    while the Ministry has not decided (the item then shows as pending approval).
    """
    if product is None:
        raise ProductNotFoundError(product_id)
    if product.status is ProductStatus.MERGED and product.merged_into is not None:
        raise ProductMergedError(product.product_id, product.merged_into)
    if product.status is ProductStatus.APPROVED:
        return False
    if product.status is ProductStatus.PROPOSED and product.proposed_by_unit_id == unit_id:
        return True
    raise ProductNotApprovedError(product.product_id, product.status.value)


def _check_acquisition(acquisition: Acquisition, today: date) -> None:
    if acquisition.acquired_on is not None and acquisition.acquired_on > today:
        raise InvalidItemDataError("acquisition.acquired_on", "must not be in the future")


# ---------------------------------------------------------------------------------------------
# Decide


def registration_matches(item: Item, command: RegisterItem) -> bool:
    """Return whether `command` repeats the item's registration (a retried creation)."""
    first = item.registration
    if first is None:
        return False
    legacy = (command.asset_number or "").strip()
    return (
        first.unit_id == command.unit_id
        and first.product_id == command.product_id
        and first.location_id == command.location_id
        and first.serial_number == normalise_serial(command.serial_number)
        and (not legacy or (first.is_legacy_asset_number and first.asset_number == legacy))
        and first.acquisition == command.acquisition
        and first.warranty_ends_on == command.warranty_ends_on
        and first.status is command.status
        and first.notes == command.notes.strip()
    )


def register(
    existing: Item | None,
    command: RegisterItem,
    *,
    product: Product | None,
    unit: KnownUnit | None,
    inventory: UnitInventory,
    claim: SerialClaim | None,
    allocated_asset_number: str | None,
    today: date,
) -> list[Event]:
    """Decide the events for registering an item: its serial claim, then `ItemRegistered`.

    `claim` is the current claim on the (normalised) serial number under the product's
    manufacturer, None when the command has no serial; `allocated_asset_number` is the unit's next
    number when the command brings no legacy one.
    """
    if existing is not None:
        if registration_matches(existing, command):
            return []  # the same registration again: answer the first
        raise ItemAlreadyRegisteredError(command.item_id)
    known = require_active(unit, command.unit_id)
    require_location(known, command.location_id)
    is_pending = usable_product(product, command.product_id, command.unit_id)
    assert product is not None  # noqa: S101  (usable_product raised otherwise)
    category = catalogue.category(product.category_id)
    if category is None:
        raise CategoryNotFoundError(product.category_id)
    serial = normalise_serial(command.serial_number)
    if serial is None and category.uses_serial_numbers:
        raise SerialNumberRequiredError(category.category_id)
    if command.status is ItemStatus.WITHDRAWN:
        raise InvalidItemDataError("status", "items are withdrawn by a decision, not registered so")
    check_act_date(command.performed_on, today=today, inventories=[inventory])
    _check_acquisition(command.acquisition, today)
    legacy = _text(command.asset_number or "", "asset_number", limit=64)
    number = legacy or allocated_asset_number
    if not number:
        raise InvalidItemDataError("asset_number", "no asset number given nor allocated")
    events: list[Event] = []
    if serial is not None:
        if claim is None or claim.serial_number != serial:
            raise ValueError("the serial claim of the registration was not loaded")
        events += claim_serial(
            claim,
            item_id=command.item_id,
            unit_id=command.unit_id,
            manufacturer=product.manufacturer,
        )
    events.append(
        ItemRegistered(
            item_id=command.item_id,
            unit_id=command.unit_id,
            product_id=product.product_id,
            category_id=product.category_id,
            manufacturer=product.manufacturer,
            model=product.model,
            serial_number=serial,
            asset_number=number,
            is_legacy_asset_number=bool(legacy),
            location_id=command.location_id,
            acquisition=command.acquisition,
            warranty_ends_on=command.warranty_ends_on,
            status=command.status,
            is_product_pending_approval=is_pending,
            notes=_text(command.notes, "notes"),
            performed_on=command.performed_on,
            import_id=command.import_id,
        )
    )
    return events


def serial_key_after(
    item: Item, command: CorrectItemDetails, product: Product | None
) -> tuple[str, str] | None:
    """Return the (manufacturer key, serial) the item will claim after a correction (None: none).

    `product` is the new product when the correction changes it.
    """
    if "serial_number" in command.cleared_fields:
        return None
    serial = normalise_serial(command.serial_number) or item.serial_number
    if serial is None:
        return None
    manufacturer = product.manufacturer if product is not None else item.manufacturer
    return manufacturer_key(manufacturer), serial


def correct(  # noqa: PLR0912  (one check per correctable field)
    item: Item | None,
    command: CorrectItemDetails,
    *,
    product: Product | None,
    old_claim: SerialClaim | None,
    new_claim: SerialClaim | None,
    inventory: UnitInventory,
    today: date,
) -> list[Event]:
    """Decide the events for correcting an item's details: only the fields that differ.

    `product` is the new product (None when unchanged); when the serial key changes, `old_claim`
    and `new_claim` are the claims on the old and new key.
    """
    item = require_item(item, command.item_id)
    if item.transfer is not None:
        raise ItemInTransitError(item.item_id, item.transfer.to_unit_id)
    reason = _text(command.reason, "reason", required=True)
    unknown = set(command.cleared_fields) - CLEARABLE_FIELDS
    if unknown:
        raise InvalidItemDataError("cleared_fields", f"cannot clear {', '.join(sorted(unknown))}")
    check_item_dates(command.performed_on, [item], today=today, inventories=[inventory])
    changes: dict[str, object] = {}
    category = item.category
    if command.product_id is not None and command.product_id != item.product_id:
        is_pending = usable_product(product, command.product_id, item.unit_id)
        assert product is not None  # noqa: S101  (usable_product raised otherwise)
        if product.category_id != item.category_id and (item.parts or item.bundle_item_id):
            raise InvalidItemDataError(
                "product_id", "a bundle or a part changes category only out of its bundle"
            )
        category = catalogue.category(product.category_id)
        changes.update(
            product_id=product.product_id,
            category_id=product.category_id,
            manufacturer=product.manufacturer,
            model=product.model,
            is_product_pending_approval=is_pending,
        )
    serial = normalise_serial(command.serial_number)
    if serial is not None and serial != item.serial_number:
        changes["serial_number"] = serial
    cleared = tuple(name for name in command.cleared_fields if _is_set(getattr(item, name)))
    if "serial_number" in cleared and category is not None and category.uses_serial_numbers:
        raise SerialNumberRequiredError(category.category_id)
    legacy = _text(command.asset_number or "", "asset_number", limit=64)
    if legacy and legacy != item.asset_number:
        changes.update(asset_number=legacy, is_legacy_asset_number=True)
    if command.acquisition is not None and command.acquisition != item.acquisition:
        _check_acquisition(command.acquisition, today)
        changes["acquisition"] = command.acquisition
    if command.warranty_ends_on is not None and command.warranty_ends_on != item.warranty_ends_on:
        changes["warranty_ends_on"] = command.warranty_ends_on
    if command.notes is not None and command.notes.strip() != item.notes:
        changes["notes"] = _text(command.notes, "notes")
    if not changes and not cleared:
        return []
    events: list[Event] = []
    new_key = serial_key_after(item, command, product if "product_id" in changes else None)
    if new_key != item.serial_key:
        if item.serial_key is not None:
            if old_claim is None:
                raise ValueError("the old serial claim of the correction was not loaded")
            events += release_serial(old_claim, item_id=item.item_id, unit_id=item.unit_id)
        if new_key is not None:
            if new_claim is None:
                raise ValueError("the new serial claim of the correction was not loaded")
            manufacturer = str(changes.get("manufacturer", item.manufacturer))
            events += claim_serial(
                new_claim, item_id=item.item_id, unit_id=item.unit_id, manufacturer=manufacturer
            )
    events.append(
        ItemDetailsCorrected(
            item_id=item.item_id,
            unit_id=item.unit_id,
            reason=reason,
            performed_on=command.performed_on,
            cleared_fields=cleared,
            import_id=command.import_id,
            **changes,  # names and types of ItemDetailsCorrected fields
        )
    )
    return events


def _is_set(value: object) -> bool:
    return value not in (None, "", Acquisition())


def change_status(
    item: Item | None, command: ChangeItemStatus, *, inventory: UnitInventory, today: date
) -> list[Event]:
    """Decide the events for changing an item's functional status."""
    item = require_item(item, command.item_id)
    if item.is_withdrawn:
        raise ItemWithdrawnError(item.item_id)
    if item.transfer is not None:
        raise ItemInTransitError(item.item_id, item.transfer.to_unit_id)
    if command.status is ItemStatus.WITHDRAWN:
        raise StatusChangeError(
            item.item_id,
            item.status.value,
            command.status.value,
            "withdrawal needs a decision: withdraw the item",
        )
    if command.status is item.status:
        return []
    reason = _text(command.reason, "reason", required=True)
    check_item_dates(command.performed_on, [item], today=today, inventories=[inventory])
    return [
        ItemStatusChanged(
            item_id=item.item_id,
            unit_id=item.unit_id,
            from_status=item.status,
            to_status=command.status,
            reason=reason,
            performed_on=command.performed_on,
        )
    ]


def move(
    item: Item | None,
    command: MoveItem,
    *,
    unit: KnownUnit | None,
    parts: Sequence[Item],
    inventory: UnitInventory,
    today: date,
) -> list[Event]:
    """Decide the events for moving an item, and its parts with it, within its unit."""
    item = require_item(item, command.item_id)
    require_present(item)
    known = require_active(unit, item.unit_id)
    if command.to_location_id == item.location_id:
        return []  # already there: a retried request changes nothing
    require_location(known, command.to_location_id)
    check_item_dates(command.performed_on, [item, *parts], today=today, inventories=[inventory])
    events: list[Event] = [
        ItemMoved(
            item_id=item.item_id,
            unit_id=item.unit_id,
            from_location_id=item.location_id,
            to_location_id=command.to_location_id,
            performed_on=command.performed_on,
        )
    ]
    events += [
        ItemMoved(
            item_id=part.item_id,
            unit_id=part.unit_id,
            from_location_id=part.location_id,
            to_location_id=command.to_location_id,
            performed_on=command.performed_on,
            with_bundle_item_id=item.item_id,
        )
        for part in parts
        if part.location_id != command.to_location_id and not part.is_withdrawn
    ]
    return events


def withdraw(
    item: Item | None,
    command: WithdrawItem,
    *,
    parts: Sequence[Item],
    inventory: UnitInventory,
    today: date,
) -> list[Event]:
    """Decide the events for withdrawing an item (and its parts, if a bundle) by a decision."""
    item = require_item(item, command.item_id)
    reference = _text(command.decision_reference, "decision_reference", required=True, limit=200)
    if item.withdrawal is not None:
        if item.withdrawal.decision_reference == reference:
            return []
        raise ItemWithdrawnError(item.item_id)
    if item.transfer is not None:
        raise ItemInTransitError(item.item_id, item.transfer.to_unit_id)
    if item.bundle_item_id is not None:
        raise PartInBundleError(item.item_id, item.bundle_item_id)
    if command.decided_on > today:
        raise ActDatedInFutureError(command.decided_on, today)
    if command.performed_on < command.decided_on:
        raise InvalidItemDataError("performed_on", "a withdrawal follows its decision")
    present = [part for part in parts if not part.is_withdrawn]
    check_item_dates(command.performed_on, [item, *present], today=today, inventories=[inventory])
    reason = _text(command.reason, "reason")
    return [
        ItemWithdrawn(
            item_id=target.item_id,
            unit_id=target.unit_id,
            from_status=target.status,
            decision_reference=reference,
            decided_on=command.decided_on,
            reason=reason,
            performed_on=command.performed_on,
            with_bundle_item_id=None if target is item else item.item_id,
        )
        for target in (item, *present)
    ]
