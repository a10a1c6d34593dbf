"""The named errors of the equipment rules: each says why a command was refused, for a person."""

from __future__ import annotations

from datetime import date
from uuid import UUID


class EquipmentDomainError(Exception):
    """A command broke a rule of the equipment domain."""


class InvalidItemDataError(EquipmentDomainError):
    """A field of the command is unusable (e.g. a blank reason)."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field_name = field_name
        self.reason = reason


# --- catalogue ------------------------------------------------------------------------------


class CategoryNotFoundError(EquipmentDomainError):
    """No category has this id, or it is a group node that takes no products."""

    def __init__(self, category_id: str, reason: str = "no such category") -> None:
        super().__init__(f"category {category_id!r}: {reason}")
        self.category_id = category_id


class ProductNotFoundError(EquipmentDomainError):
    """No product has this id."""

    def __init__(self, product_id: UUID) -> None:
        super().__init__(f"product {product_id} is not in the catalogue")
        self.product_id = product_id


class ProductAlreadyProposedError(EquipmentDomainError):
    """A product with this id exists with other details."""

    def __init__(self, product_id: UUID) -> None:
        super().__init__(f"product {product_id} already exists with other details")
        self.product_id = product_id


class ProductNotApprovedError(EquipmentDomainError):
    """Only approved products (or the unit's own proposal) can be used on new items."""

    def __init__(self, product_id: UUID, status: str) -> None:
        super().__init__(f"product {product_id} is {status}, not approved")
        self.product_id = product_id
        self.status = status


class ProductMergedError(EquipmentDomainError):
    """The product was merged into another: use that one."""

    def __init__(self, product_id: UUID, into_product_id: UUID) -> None:
        super().__init__(f"product {product_id} was merged into {into_product_id}; use that one")
        self.product_id = product_id
        self.into_product_id = into_product_id


class ProductStateError(EquipmentDomainError):
    """The product is not in a state that allows this (e.g. approving a merged product)."""

    def __init__(self, product_id: UUID, status: str, action: str) -> None:
        super().__init__(f"product {product_id} is {status}; it cannot be {action}")
        self.product_id = product_id
        self.status = status


# --- units and locations (from the local projection of units.events) ------------------------


class UnitNotFoundError(EquipmentDomainError):
    """The unit is not known (not registered, or not projected here yet)."""

    def __init__(self, unit_id: str) -> None:
        super().__init__(f"unit {unit_id} is not registered")
        self.unit_id = unit_id


class UnitNotActiveError(EquipmentDomainError):
    """The unit is suspended, abolished or merged: its inventory takes no changes."""

    def __init__(self, unit_id: str, status: str) -> None:
        super().__init__(f"unit {unit_id} is {status}; its inventory takes no changes")
        self.unit_id = unit_id
        self.status = status


class LocationNotFoundError(EquipmentDomainError):
    """The location is not an open location of the unit."""

    def __init__(self, unit_id: str, location_id: str) -> None:
        super().__init__(f"unit {unit_id} has no open location {location_id}")
        self.unit_id = unit_id
        self.location_id = location_id


# --- items ----------------------------------------------------------------------------------


class ItemNotFoundError(EquipmentDomainError):
    """No item has this id."""

    def __init__(self, item_id: UUID) -> None:
        super().__init__(f"item {item_id} is not registered")
        self.item_id = item_id


class ItemAlreadyRegisteredError(EquipmentDomainError):
    """An item with this id was registered with other details (a retry must repeat them)."""

    def __init__(self, item_id: UUID) -> None:
        super().__init__(f"item {item_id} is already registered with other details")
        self.item_id = item_id


class SerialNumberRequiredError(EquipmentDomainError):
    """Items of this category carry a serial number; it must be given."""

    def __init__(self, category_id: str) -> None:
        super().__init__(f"items of category {category_id!r} need a serial number")
        self.category_id = category_id


class SerialNumberTakenError(EquipmentDomainError):
    """Another item of the same manufacturer already has this serial number."""

    def __init__(self, serial_number: str, manufacturer: str, item_id: UUID) -> None:
        super().__init__(
            f"serial number {serial_number} of {manufacturer} is already recorded on item {item_id}"
        )
        self.serial_number = serial_number
        self.manufacturer = manufacturer
        self.item_id = item_id


class ActDatedInFutureError(EquipmentDomainError):
    """The date of an act cannot be after today (Athens)."""

    def __init__(self, performed_on: date, today: date) -> None:
        super().__init__(f"the act is dated {performed_on}, after today ({today})")
        self.performed_on = performed_on


class ActBeforeCertificationError(EquipmentDomainError):
    """The date of an act cannot be before the unit's last certified inventory."""

    def __init__(self, unit_id: str, performed_on: date, certified_on: date) -> None:
        super().__init__(
            f"the act is dated {performed_on}, before unit {unit_id}'s inventory was certified"
            f" on {certified_on}"
        )
        self.unit_id = unit_id
        self.performed_on = performed_on
        self.certified_on = certified_on


class ActBeforeItemHistoryError(EquipmentDomainError):
    """The date of an act cannot be before the item's previous act."""

    def __init__(self, item_id: UUID, performed_on: date, last_on: date) -> None:
        super().__init__(
            f"the act is dated {performed_on}, before item {item_id}'s last recorded act"
            f" ({last_on})"
        )
        self.item_id = item_id
        self.performed_on = performed_on
        self.last_on = last_on


class ItemWithdrawnError(EquipmentDomainError):
    """The item is withdrawn: it takes no more acts (only corrections of its record)."""

    def __init__(self, item_id: UUID) -> None:
        super().__init__(f"item {item_id} is withdrawn")
        self.item_id = item_id


class ItemLostError(EquipmentDomainError):
    """The item is recorded as lost: find it (change its status) before moving it."""

    def __init__(self, item_id: UUID) -> None:
        super().__init__(f"item {item_id} is recorded as lost")
        self.item_id = item_id


class ItemInTransitError(EquipmentDomainError):
    """The item is being transferred: only the transfer can be accepted, rejected or cancelled."""

    def __init__(self, item_id: UUID, to_unit_id: str) -> None:
        super().__init__(f"item {item_id} is in transit to unit {to_unit_id}")
        self.item_id = item_id
        self.to_unit_id = to_unit_id


class ItemNotInTransitError(EquipmentDomainError):
    """There is no pending transfer of this item."""

    def __init__(self, item_id: UUID) -> None:
        super().__init__(f"item {item_id} has no pending transfer")
        self.item_id = item_id


class StatusChangeError(EquipmentDomainError):
    """This status change is not allowed (withdrawal needs a decision: withdraw the item)."""

    def __init__(self, item_id: UUID, from_status: str, to_status: str, reason: str) -> None:
        super().__init__(f"item {item_id}: {from_status} → {to_status} is not allowed: {reason}")
        self.item_id = item_id
        self.from_status = from_status
        self.to_status = to_status


class TransferToSameUnitError(EquipmentDomainError):
    """An item cannot be transferred to the unit that holds it."""

    def __init__(self, item_id: UUID, unit_id: str) -> None:
        super().__init__(f"item {item_id} is already in unit {unit_id}")
        self.item_id = item_id


# --- bundles --------------------------------------------------------------------------------


class BundleRuleError(EquipmentDomainError):
    """A bundle rule forbids this (which parts a bundle takes, how many, in which state)."""

    def __init__(self, bundle_item_id: UUID, part_item_id: UUID, reason: str) -> None:
        super().__init__(f"bundle {bundle_item_id}, part {part_item_id}: {reason}")
        self.bundle_item_id = bundle_item_id
        self.part_item_id = part_item_id
        self.reason = reason


class PartInBundleError(EquipmentDomainError):
    """The item is inside a bundle: it moves, travels and is withdrawn with it (unbundle first)."""

    def __init__(self, item_id: UUID, bundle_item_id: UUID) -> None:
        super().__init__(
            f"item {item_id} is a part of bundle {bundle_item_id}; take it out of the bundle first"
        )
        self.item_id = item_id
        self.bundle_item_id = bundle_item_id
