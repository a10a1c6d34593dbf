"""HTTP request and response models of the equipment API (`<Command>Request`, `<Thing>Response`).

Requests forbid unknown fields, so a misspelt field is a 422 naming it rather than silently
ignored. The date an act was performed on (`performed_on`) defaults to today in Athens.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.events.equipment import Acquisition, ItemStatus

Code = Annotated[str, StringConstraints(min_length=1, max_length=32)]
LocationCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
Text = Annotated[str, StringConstraints(max_length=2000)]
SerialText = Annotated[str, StringConstraints(min_length=1, max_length=160)]
AssetText = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProposeProductRequest(_Request):
    """Propose a product (a ministry administrator's is approved at once)."""

    product_id: UUID | None = None  # chosen by the client: a retried proposal is recognised
    category_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    manufacturer: Name
    model: Name
    part_number: Annotated[str, StringConstraints(max_length=128)] | None = None
    attributes: dict[str, Annotated[str, StringConstraints(max_length=500)]] = Field(
        default_factory=dict, max_length=50
    )
    proposed_by_unit_id: Code | None = None


class RejectProductRequest(_Request):
    """Refuse a proposed product."""

    reason: Reason


class MergeProductRequest(_Request):
    """Merge a duplicate product into another."""

    into_product_id: UUID


class RegisterItemRequest(_Request):
    """Register an item; leave `asset_number` out to get the unit's next one."""

    item_id: UUID | None = None  # chosen by the client: a retried registration is recognised
    unit_id: Code
    product_id: UUID
    location_id: LocationCode
    serial_number: SerialText | None = None
    asset_number: AssetText | None = None  # a legacy number, kept exactly as given
    acquisition: Acquisition = Field(default_factory=Acquisition)
    warranty_ends_on: date | None = None
    status: ItemStatus = ItemStatus.IN_USE
    notes: Text = ""
    performed_on: date | None = None


class CorrectItemDetailsRequest(_Request):
    """Correct an item's details; a field left out is unchanged, `cleared_fields` are unset."""

    reason: Reason
    product_id: UUID | None = None
    serial_number: SerialText | None = None
    asset_number: AssetText | None = None
    acquisition: Acquisition | None = None
    warranty_ends_on: date | None = None
    notes: Text | None = None
    cleared_fields: list[
        Annotated[
            str, StringConstraints(pattern=r"^(serial_number|warranty_ends_on|notes|acquisition)$")
        ]
    ] = Field(default_factory=list, max_length=4)
    performed_on: date | None = None


class ChangeItemStatusRequest(_Request):
    """Change an item's functional status (withdrawal: POST …/withdrawal)."""

    status: ItemStatus
    reason: Reason
    performed_on: date | None = None


class MoveItemRequest(_Request):
    """Move an item to another location of its unit."""

    to_location_id: LocationCode
    performed_on: date | None = None


class BundlePartRequest(_Request):
    """Put an item into this bundle."""

    part_item_id: UUID
    performed_on: date | None = None


class UnbundlePartRequest(_Request):
    """Take a part out of this bundle."""

    reason: Text = ""
    performed_on: date | None = None


class WithdrawItemRequest(_Request):
    """Withdraw an item by a decision."""

    decision_reference: Annotated[
        str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)
    ]
    decided_on: date
    reason: Text = ""
    performed_on: date | None = None


class TransferItemRequest(_Request):
    """Dispatch an item to another unit."""

    to_unit_id: Code
    transfer_id: UUID | None = None
    reason: Text = ""
    performed_on: date | None = None


class AcceptTransferRequest(_Request):
    """Accept an item in transit into a location of the destination."""

    to_location_id: LocationCode
    assign_asset_number: bool = False
    asset_number: AssetText | None = None
    performed_on: date | None = None


class CloseTransferRequest(_Request):
    """Reject (destination) or cancel (source) a transfer."""

    reason: Text = ""
    performed_on: date | None = None


class CommandResponse(BaseModel):
    """What a command produced: the stream, its new version (also the ETag) and its position."""

    stream_id: str
    version: int
    position: int


class CategoryResponse(BaseModel):
    """A category of the catalogue, with its rules."""

    category_id: str
    label_el: str
    label_en: str
    parent_id: str | None
    is_bundle: bool
    uses_serial_numbers: bool
    is_component: bool
    is_assignable: bool
    parts: list[dict[str, Any]]


class ProductResponse(BaseModel):
    """A product of the catalogue."""

    product_id: UUID
    category_id: str
    manufacturer: str
    model: str
    part_number: str | None
    attributes: dict[str, str]
    proposed_by_unit_id: str | None
    status: str
    merged_into: UUID | None
    version: int


class ItemResponse(BaseModel):
    """An item as the inventory shows it."""

    item_id: UUID
    unit_id: str
    inventory_unit_id: str | None
    product_id: UUID
    category_id: str
    manufacturer: str
    model: str
    serial_number: str | None
    asset_number: str
    is_legacy_asset_number: bool
    location_id: str
    status: ItemStatus
    acquired_on: date | None
    funding_programme: str | None
    contract: str | None
    cost_eur: Decimal | None
    invoice: str | None
    warranty_ends_on: date | None
    is_product_pending_approval: bool
    notes: str
    bundle_item_id: UUID | None
    has_missing_parts: bool
    transfer_id: UUID | None
    transfer_to_unit_id: str | None
    dispatched_on: date | None
    registered_on: date
    last_performed_on: date
    withdrawal_decision_reference: str | None
    version: int
    part_item_ids: list[str] = []


class ItemPageResponse(BaseModel):
    """A page of a unit's inventory; pass `next_cursor` as `cursor` for the next page."""

    unit_id: str
    items: list[ItemResponse]
    next_cursor: str | None


class CountsResponse(BaseModel):
    """How many items a listing holds, by category and by status."""

    unit_id: str
    total: int
    by_category: dict[str, int]
    by_status: dict[str, int]


class PendingTransfersResponse(BaseModel):
    """Items in transit from and to a unit (in neither inventory until the transfer closes)."""

    unit_id: str
    outgoing: list[ItemResponse]
    incoming: list[ItemResponse]


class HistoryEntryResponse(BaseModel):
    """One event of an item's history: who, when, what changed."""

    position: int
    version: int
    type: str
    recorded_at: datetime
    performed_on: date | None
    unit_id: str | None
    actor_id: str | None
    actor_role: str | None
    changes: dict[str, Any]
