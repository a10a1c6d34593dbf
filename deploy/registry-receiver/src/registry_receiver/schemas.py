"""The wire models of contract version 1: the push, the answers, the reads and the admin bodies.

Why this exists: the receiver validates every push strictly, the way a remote registry we do not
control would: unknown fields are refused, numbers are not coerced from strings, and each field
carries the constraint written in contract/registry-v1.openapi.yaml. Cross-field rules (sorting,
line numbers, the content hash, the key) are in `registry_receiver.domain`.

Usage::

    push = TablePush.model_validate_json(raw_body)   # raises pydantic.ValidationError

Notes: `strict=True` with `model_validate_json` still parses ISO 8601 strings into datetimes (JSON
has no datetime type), but refuses ``"7"`` for an integer and ``1`` for a boolean.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

BODY_CODE_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z_-]{0,31}$"
HASH_PATTERN = r"^[0-9a-f]{64}$"
CATEGORY_CODE_PATTERN = r"^[A-Z][A-Z0-9_]{0,31}$"
MAX_ROWS = 10_000
MAX_LISTING_LIMIT = 5000


def _utc(value: datetime) -> datetime:
    """Refuse a naive instant or one with a non-zero UTC offset (the contract says aware UTC)."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("must carry a time zone (UTC, e.g. 2026-11-30T01:00:00Z)")
    if offset.total_seconds() != 0:
        raise ValueError("must be in UTC (offset Z or +00:00)")
    return value


BodyCode = Annotated[str, Field(pattern=BODY_CODE_PATTERN)]
ContentHash = Annotated[str, Field(pattern=HASH_PATTERN)]
UtcInstant = Annotated[datetime, AfterValidator(_utc)]
Text = Annotated[str, Field(min_length=1, max_length=200)]
Quantity = Annotated[int, Field(ge=1)]


class BodyStatus(StrEnum):
    """The body's standing in the register of bodies."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    ABOLISHED = "abolished"
    MERGED = "merged"


class Basis(StrEnum):
    """What the table reflects: the live inventory or a certified one."""

    LIVE = "live"
    CERTIFIED = "certified"


class NotReportedReason(StrEnum):
    """Why held equipment is not in the registry's table."""

    COMPONENT_OF_BUNDLE = "component_of_bundle"
    PASSIVE_INFRASTRUCTURE = "passive_infrastructure"
    NOT_ICT = "not_ict"
    NO_REGISTRY_CATEGORY = "no_registry_category"
    MAPPING_PENDING = "mapping_pending"


class ExcludedStatus(StrEnum):
    """Statuses whose items the body no longer holds."""

    WITHDRAWN = "withdrawn"
    LOST = "lost"


class Outcome(StrEnum):
    """What the receiver did with a valid push; all three acknowledge it."""

    APPLIED = "applied"
    STALE_VERSION = "stale_version"
    DUPLICATE_KEY = "duplicate_key"


class WireModel(BaseModel):
    """Base of every contract model: strict, closed, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Row(WireModel):
    """One line of the registry's equipment table: a group of identical pieces with a quantity."""

    line: Annotated[int, Field(ge=1)]
    category_code: Annotated[str, Field(pattern=CATEGORY_CODE_PATTERN)]
    category_label: Text
    manufacturer: Text
    model: Text
    acquisition_year: Annotated[int, Field(ge=1900, le=2100)] | None
    quantity: Quantity
    in_operation: bool


class Certification(WireModel):
    """The certified inventory a `certified` table reflects."""

    certification_id: Text
    certified_at: UtcInstant
    content_hash: ContentHash
    item_count: Annotated[int, Field(ge=0)]


class NotReported(WireModel):
    """Held equipment left out of the table, by reason and local category."""

    reason: NotReportedReason
    local_category: Annotated[str, Field(min_length=1, max_length=100)]
    quantity: Quantity


class ExcludedByStatus(WireModel):
    """Items left out because of their status (no longer held)."""

    status: ExcludedStatus
    quantity: Quantity


class TablePush(WireModel):
    """The body of `PUT /v1/bodies/{body_code}/table`: the body's whole current table."""

    body_code: BodyCode
    body_name: Annotated[str, Field(min_length=1, max_length=500)]
    body_status: BodyStatus
    merged_into: BodyCode | None
    registry_version: Annotated[int, Field(ge=1)]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=100)]
    as_of: UtcInstant
    basis: Basis
    certification: Certification | None
    mapping_version: Annotated[str, Field(min_length=1, max_length=50)]
    rows: Annotated[list[Row], Field(max_length=MAX_ROWS)]
    not_reported: list[NotReported]
    excluded_by_status: list[ExcludedByStatus]
    content_hash: ContentHash


class PushAnswer(WireModel):
    """The 200 answer to a valid push."""

    body_code: str
    outcome: Outcome
    held_version: int
    content_hash: str


class HeldBody(WireModel):
    """`GET /v1/bodies/{body_code}`: the table the receiver holds for a body."""

    body_code: str
    registry_version: int
    content_hash: str
    as_of: datetime
    basis: Basis
    mapping_version: str
    rows: list[Row]
    received_at: datetime


class ListingItem(WireModel):
    """One body of the listing, with the hash recomputed from its held rows."""

    body_code: str
    registry_version: int
    content_hash: str


class Listing(WireModel):
    """`GET /v1/bodies`: one keyset page of bodies ordered by code."""

    items: list[ListingItem]
    next_after: str | None
