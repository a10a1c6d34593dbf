"""The equipment service's published events: the catalogue, items, transfers and certifications.

Why this exists: compliance and registry-sync fold `equipment.events` into their own views, and an
auditor's export of a stream must stay readable for a decade, so the wire format of every fact
about ICT equipment is a contract owned here (STYLE.md habit 7: additive changes only).

Streams (the event store's stream ids; also the Kafka key, so each stream keeps its order):
- `<item uuid>`: one stream per physical item: registration, corrections, status, moves, bundle
  membership, transfers and withdrawal. The item's history travels with it between units.
- `product:<uuid>`: a product of the catalogue (proposed, approved, rejected, merged).
- `serial:<manufacturer key>:<serial>`: the claim on a serial number, so a serial is unique per
  manufacturer by the store's own `UNIQUE(stream_id, version)`, not by an asynchronous view.
- `inventory:<unit id>`: a unit's inventory as a whole: its certifications and the transfers
  pending to or from it (the facts a certification and back-dating rules need atomically).

Notes:
- Every event about an item carries `unit_id`: the unit whose inventory holds the item after the
  event (the source while the item is in transit). The store indexes events by it, so a unit's
  inventory at any instant can be folded from its own events plus the transfers into it.
- Dates of acts are Athens calendar dates (`performed_on`); instants are aware UTC (`…_at`).
- Serial numbers travel normalised (trimmed, upper-case, without spaces or dashes).
- Money is a decimal in EUR, written as a JSON string ("1234.50"), never a float.
- Who performed the act travels in the envelope (actor), not in the payload.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.events.base import Event
from shared.events.units import LocationId, UnitId, UserId

CategoryId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
]
SerialNumber = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\s-]+$")]
AssetNumber = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(max_length=2000)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Euros = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class ItemStatus(StrEnum):
    """The functional status of an item (λειτουργική κατάσταση)."""

    IN_USE = "in_use"  # σε χρήση
    IN_STORAGE = "in_storage"  # σε αποθήκη
    OUT_OF_ORDER = "out_of_order"  # εκτός λειτουργίας
    UNDER_REPAIR = "under_repair"  # σε επισκευή
    FOR_WITHDRAWAL = "for_withdrawal"  # προς απόσυρση
    WITHDRAWN = "withdrawn"  # αποσύρθηκε (only through ItemWithdrawn)
    LOST = "lost"  # απολέσθηκε


class TransferOutcome(StrEnum):
    """How a pending transfer ended."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class Acquisition(BaseModel):
    """How an item was acquired: when, through which programme or contract, at what cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    acquired_on: date | None = None
    funding_programme: Text | None = None  # e.g. ΕΣΠΑ 2014-2020, a donation, the school's budget
    contract: Text | None = None  # the contract or order reference
    cost_eur: Euros | None = None
    invoice: Text | None = None  # invoice number / date as written on it


# ---------------------------------------------------------------------------------------------
# Products (stream `product:<uuid>`)


class ProductProposed(Event):
    """Propose a product (manufacturer, model, category) for the catalogue."""

    type: Literal["ProductProposed"] = "ProductProposed"
    product_id: UUID
    category_id: CategoryId
    manufacturer: Name
    model: Name
    part_number: Annotated[str, StringConstraints(max_length=128)] | None = None
    attributes: dict[str, Annotated[str, StringConstraints(max_length=500)]] = Field(
        default_factory=dict
    )
    # The unit that proposed it (None when the Ministry entered it itself).
    proposed_by_unit_id: UnitId | None = None
    proposed_at: AwareDatetime


class ProductApproved(Event):
    """Approve a product: from now on any unit may register items of it."""

    type: Literal["ProductApproved"] = "ProductApproved"
    product_id: UUID
    approved_at: AwareDatetime


class ProductRejected(Event):
    """Refuse a proposed product (with why); items already registered with it keep it."""

    type: Literal["ProductRejected"] = "ProductRejected"
    product_id: UUID
    reason: Text
    rejected_at: AwareDatetime


class ProductMerged(Event):
    """Merge a duplicate product into `into_product_id`: its items count as that product."""

    type: Literal["ProductMerged"] = "ProductMerged"
    product_id: UUID
    into_product_id: UUID
    merged_at: AwareDatetime


# ---------------------------------------------------------------------------------------------
# Serial-number claims (stream `serial:<manufacturer key>:<serial>`)


class SerialNumberClaimed(Event):
    """Claim a serial number of a manufacturer for one item (unique per manufacturer)."""

    type: Literal["SerialNumberClaimed"] = "SerialNumberClaimed"
    manufacturer_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    serial_number: SerialNumber
    item_id: UUID
    unit_id: UnitId


class SerialNumberReleased(Event):
    """Release a claim (the item's serial number was corrected to another)."""

    type: Literal["SerialNumberReleased"] = "SerialNumberReleased"
    manufacturer_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    serial_number: SerialNumber
    item_id: UUID
    unit_id: UnitId


# ---------------------------------------------------------------------------------------------
# Items (stream `<item uuid>`)


class ItemRegistered(Event):
    """Register a physical item in a unit's inventory."""

    type: Literal["ItemRegistered"] = "ItemRegistered"
    item_id: UUID
    unit_id: UnitId
    product_id: UUID
    # The product's category, manufacturer and model when registered: the item's own record
    # stays readable (and its serial claim findable) whatever later happens to the product.
    category_id: CategoryId
    manufacturer: Name
    model: Name
    serial_number: SerialNumber | None = None
    asset_number: AssetNumber
    # A number the unit already used before this system, kept exactly as given.
    is_legacy_asset_number: bool = False
    location_id: LocationId
    acquisition: Acquisition = Acquisition()
    warranty_ends_on: date | None = None
    status: ItemStatus = ItemStatus.IN_USE
    # Registered with a product the unit proposed and the Ministry has not approved yet.
    is_product_pending_approval: bool = False
    notes: Text = ""
    performed_on: date
    # Set when the item came from a bulk import (its id): the history shows the import.
    import_id: UUID | None = None


class ItemDetailsCorrected(Event):
    """Correct recorded details of an item (never an edit); a None field is unchanged."""

    type: Literal["ItemDetailsCorrected"] = "ItemDetailsCorrected"
    item_id: UUID
    unit_id: UnitId
    reason: Text
    performed_on: date
    product_id: UUID | None = None
    category_id: CategoryId | None = None
    manufacturer: Name | None = None
    model: Name | None = None
    serial_number: SerialNumber | None = None
    asset_number: AssetNumber | None = None
    is_legacy_asset_number: bool | None = None
    acquisition: Acquisition | None = None
    warranty_ends_on: date | None = None
    is_product_pending_approval: bool | None = None
    notes: Text | None = None
    # Fields set back to "unknown" (e.g. "serial_number", "warranty_ends_on").
    cleared_fields: tuple[str, ...] = ()
    import_id: UUID | None = None


class ItemStatusChanged(Event):
    """Change an item's functional status, saying why."""

    type: Literal["ItemStatusChanged"] = "ItemStatusChanged"
    item_id: UUID
    unit_id: UnitId
    from_status: ItemStatus
    to_status: ItemStatus
    reason: Text
    performed_on: date


class ItemMoved(Event):
    """Move an item to another location of its unit."""

    type: Literal["ItemMoved"] = "ItemMoved"
    item_id: UUID
    unit_id: UnitId
    from_location_id: LocationId
    to_location_id: LocationId
    performed_on: date
    # Set on a part that moved because its bundle moved.
    with_bundle_item_id: UUID | None = None


class ItemWithdrawn(Event):
    """Withdraw an item from use for good, by a decision (reference and date)."""

    type: Literal["ItemWithdrawn"] = "ItemWithdrawn"
    item_id: UUID
    unit_id: UnitId
    from_status: ItemStatus
    decision_reference: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    decided_on: date
    reason: Text = ""
    performed_on: date
    with_bundle_item_id: UUID | None = None


class BundlePartAdded(Event):
    """Put a part (another item) into a bundle item (stream: the bundle's)."""

    type: Literal["BundlePartAdded"] = "BundlePartAdded"
    item_id: UUID  # the bundle
    unit_id: UnitId
    part_item_id: UUID
    part_category_id: CategoryId
    performed_on: date


class BundlePartRemoved(Event):
    """Take a part out of a bundle item (stream: the bundle's)."""

    type: Literal["BundlePartRemoved"] = "BundlePartRemoved"
    item_id: UUID  # the bundle
    unit_id: UnitId
    part_item_id: UUID
    part_category_id: CategoryId
    reason: Text = ""
    performed_on: date


class ItemBundled(Event):
    """Record on a part that it is now inside a bundle (stream: the part's)."""

    type: Literal["ItemBundled"] = "ItemBundled"
    item_id: UUID  # the part
    unit_id: UnitId
    bundle_item_id: UUID
    performed_on: date


class ItemUnbundled(Event):
    """Record on a part that it left its bundle (stream: the part's)."""

    type: Literal["ItemUnbundled"] = "ItemUnbundled"
    item_id: UUID  # the part
    unit_id: UnitId
    bundle_item_id: UUID
    performed_on: date


class ItemTransferDispatched(Event):
    """The source unit (`unit_id`) sends the item to `to_unit_id`; it is in transit until closed."""

    type: Literal["ItemTransferDispatched"] = "ItemTransferDispatched"
    item_id: UUID
    unit_id: UnitId  # the source
    transfer_id: UUID
    to_unit_id: UnitId
    from_location_id: LocationId
    reason: Text = ""
    performed_on: date
    with_bundle_item_id: UUID | None = None


class ItemTransferAccepted(Event):
    """The destination (`unit_id`) accepts the item into `to_location_id`: it is now its own."""

    type: Literal["ItemTransferAccepted"] = "ItemTransferAccepted"
    item_id: UUID
    unit_id: UnitId  # the destination
    transfer_id: UUID
    from_unit_id: UnitId
    to_location_id: LocationId
    # A new asset number the destination gave it (None: it keeps its own).
    asset_number: AssetNumber | None = None
    performed_on: date
    with_bundle_item_id: UUID | None = None


class ItemTransferRejected(Event):
    """The destination refuses the item; it goes back to the source (`unit_id`)."""

    type: Literal["ItemTransferRejected"] = "ItemTransferRejected"
    item_id: UUID
    unit_id: UnitId  # the source, which holds the item again
    transfer_id: UUID
    to_unit_id: UnitId
    reason: Text = ""
    performed_on: date
    with_bundle_item_id: UUID | None = None


class ItemTransferCancelled(Event):
    """The source (`unit_id`) calls the transfer off before the destination accepted."""

    type: Literal["ItemTransferCancelled"] = "ItemTransferCancelled"
    item_id: UUID
    unit_id: UnitId  # the source
    transfer_id: UUID
    to_unit_id: UnitId
    reason: Text = ""
    performed_on: date
    with_bundle_item_id: UUID | None = None


# ---------------------------------------------------------------------------------------------
# A unit's inventory as a whole (stream `inventory:<unit id>`)


class InventoryTransferOpened(Event):
    """A transfer to or from `unit_id` is pending (written on both units' inventory streams)."""

    type: Literal["InventoryTransferOpened"] = "InventoryTransferOpened"
    unit_id: UnitId
    transfer_id: UUID
    item_id: UUID
    from_unit_id: UnitId
    to_unit_id: UnitId
    performed_on: date


class InventoryTransferClosed(Event):
    """A pending transfer to or from `unit_id` ended (accepted, rejected or cancelled)."""

    type: Literal["InventoryTransferClosed"] = "InventoryTransferClosed"
    unit_id: UnitId
    transfer_id: UUID
    item_id: UUID
    outcome: TransferOutcome
    performed_on: date


class InventoryCertified(Event):
    """The unit's `certify` holder certifies its inventory (οριστικοποίηση) as it is now.

    `content_hash` is over the exact list covered, computed in the certifying transaction from the
    write side; `covers_position` is the store position that list reflects.
    """

    type: Literal["InventoryCertified"] = "InventoryCertified"
    unit_id: UnitId
    certification_id: UUID
    certified_at: AwareDatetime
    certified_on: date  # the Athens date of certified_at
    signer_id: UserId
    item_count: Annotated[int, Field(ge=0)]
    content_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    covers_position: Annotated[int, Field(ge=0)]


ProductEvent = ProductProposed | ProductApproved | ProductRejected | ProductMerged
SerialClaimEvent = SerialNumberClaimed | SerialNumberReleased
ItemEvent = (
    ItemRegistered
    | ItemDetailsCorrected
    | ItemStatusChanged
    | ItemMoved
    | ItemWithdrawn
    | BundlePartAdded
    | BundlePartRemoved
    | ItemBundled
    | ItemUnbundled
    | ItemTransferDispatched
    | ItemTransferAccepted
    | ItemTransferRejected
    | ItemTransferCancelled
)
InventoryEvent = InventoryTransferOpened | InventoryTransferClosed | InventoryCertified
EquipmentEvent = ProductEvent | SerialClaimEvent | ItemEvent | InventoryEvent
"""Every event on `equipment.events`, for `match … case _: assert_never(event)` in consumers."""

__all__ = [
    "Acquisition",
    "AssetNumber",
    "BundlePartAdded",
    "BundlePartRemoved",
    "CategoryId",
    "EquipmentEvent",
    "Euros",
    "InventoryCertified",
    "InventoryEvent",
    "InventoryTransferClosed",
    "InventoryTransferOpened",
    "ItemBundled",
    "ItemDetailsCorrected",
    "ItemEvent",
    "ItemMoved",
    "ItemRegistered",
    "ItemStatus",
    "ItemStatusChanged",
    "ItemTransferAccepted",
    "ItemTransferCancelled",
    "ItemTransferDispatched",
    "ItemTransferRejected",
    "ItemUnbundled",
    "ItemWithdrawn",
    "ProductApproved",
    "ProductEvent",
    "ProductMerged",
    "ProductProposed",
    "ProductRejected",
    "SerialClaimEvent",
    "SerialNumber",
    "SerialNumberClaimed",
    "SerialNumberReleased",
    "TransferOutcome",
]
