"""The commands the equipment service accepts: what a caller asks for, before any rule is checked.

Commands are frozen data in domain words; `equipment.handlers` runs each one against the state it
loads from the event store and `equipment.domain` decides which events it produces or why it
fails. The HTTP API and the bulk importer build the same commands.

Notes: every act on an item carries `performed_on`, the Athens calendar date it happened (it may
not be in the future nor before the unit's last certification); ids a client may choose (item,
product, transfer) are UUIDs, so a retried creation is recognised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from shared.events.equipment import Acquisition, ItemStatus

# ---------------------------------------------------------------------------------------------
# Catalogue


@dataclass(frozen=True, slots=True)
class ProposeProduct:
    """Propose a product for the catalogue (a unit proposes; the Ministry's own are approved)."""

    product_id: UUID
    category_id: str
    manufacturer: str
    model: str
    part_number: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    proposed_by_unit_id: str | None = None
    is_approved: bool = False  # a ministry administrator enters it approved at once


@dataclass(frozen=True, slots=True)
class ApproveProduct:
    """Approve a proposed product."""

    product_id: UUID


@dataclass(frozen=True, slots=True)
class RejectProduct:
    """Refuse a proposed product, saying why."""

    product_id: UUID
    reason: str


@dataclass(frozen=True, slots=True)
class MergeProduct:
    """Merge a duplicate product into another (approved) one."""

    product_id: UUID
    into_product_id: UUID


# ---------------------------------------------------------------------------------------------
# Items


@dataclass(frozen=True, slots=True)
class RegisterItem:
    """Register an item in a unit; `asset_number` None allocates the unit's next number."""

    item_id: UUID
    unit_id: str
    product_id: UUID
    location_id: str
    performed_on: date
    serial_number: str | None = None
    asset_number: str | None = None  # a legacy number, kept exactly as given
    acquisition: Acquisition = field(default_factory=Acquisition)
    warranty_ends_on: date | None = None
    status: ItemStatus = ItemStatus.IN_USE
    notes: str = ""
    import_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class CorrectItemDetails:
    """Correct recorded details; a None field is left as it is, `cleared_fields` are unset."""

    item_id: UUID
    reason: str
    performed_on: date
    product_id: UUID | None = None
    serial_number: str | None = None
    asset_number: str | None = None  # a legacy number, kept as given
    acquisition: Acquisition | None = None
    warranty_ends_on: date | None = None
    notes: str | None = None
    cleared_fields: tuple[str, ...] = ()
    import_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class ChangeItemStatus:
    """Change an item's functional status, saying why (withdrawal is `WithdrawItem`)."""

    item_id: UUID
    status: ItemStatus
    reason: str
    performed_on: date


@dataclass(frozen=True, slots=True)
class MoveItem:
    """Move an item (with its parts, if a bundle) to another location of its unit."""

    item_id: UUID
    to_location_id: str
    performed_on: date


@dataclass(frozen=True, slots=True)
class BundlePart:
    """Put the item `part_item_id` into the bundle item `item_id`."""

    item_id: UUID
    part_item_id: UUID
    performed_on: date


@dataclass(frozen=True, slots=True)
class UnbundlePart:
    """Take the item `part_item_id` out of the bundle item `item_id`."""

    item_id: UUID
    part_item_id: UUID
    performed_on: date
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WithdrawItem:
    """Withdraw an item (with its parts, if a bundle) by a decision."""

    item_id: UUID
    decision_reference: str
    decided_on: date
    performed_on: date
    reason: str = ""


# ---------------------------------------------------------------------------------------------
# Transfers between units


@dataclass(frozen=True, slots=True)
class TransferItem:
    """Dispatch an item (with its parts, if a bundle) from its unit to `to_unit_id`."""

    item_id: UUID
    to_unit_id: str
    transfer_id: UUID
    performed_on: date
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AcceptTransfer:
    """The destination accepts the item in transit into one of its locations."""

    item_id: UUID
    to_location_id: str
    performed_on: date
    assign_asset_number: bool = False  # give it the destination's next asset number
    asset_number: str | None = None  # or a number of the destination's, kept as given


@dataclass(frozen=True, slots=True)
class RejectTransfer:
    """The destination refuses the item in transit; it returns to the source."""

    item_id: UUID
    performed_on: date
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CancelTransfer:
    """The source calls off a transfer the destination has not accepted yet."""

    item_id: UUID
    performed_on: date
    reason: str = ""


# ---------------------------------------------------------------------------------------------
# Certification (decided and handled by the certification module)


@dataclass(frozen=True, slots=True)
class CertifyInventory:
    """Certify a unit's inventory as it is now (οριστικοποίηση), signed by `signer_id`."""

    unit_id: str
    certification_id: UUID
    signer_id: str
