"""HTTP request and response models of the units API (`<Command>Request`, `<Thing>Response`).

Requests forbid unknown fields, so a misspelt field is a 422 naming it rather than silently
ignored. Dates an act takes effect on (`…_on`) default to today in Athens when left out.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from shared.events.units import GlobalRole, LocationKind, UnitRole

Code = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=300, strip_whitespace=True)]
ShortText = Annotated[str, StringConstraints(max_length=300)]
UserIdText = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterUnitRequest(_Request):
    """Register a unit under a parent (the registry code is the unit's id)."""

    unit_id: Code
    parent_id: Code | None
    name: Name
    unit_type: Name
    registered_on: date | None = None
    mm_id: ShortText | None = None
    municipality: ShortText | None = None
    address: ShortText | None = None
    postal_code: ShortText | None = None
    operation_shift: ShortText | None = None
    legal_character: ShortText | None = None
    orientation: ShortText | None = None
    phone: ShortText | None = None
    email: ShortText | None = None
    is_holding_node: bool = False


class ChangeUnitDetailsRequest(_Request):
    """Change details; a field left out is unchanged, an empty string clears it."""

    changed_on: date | None = None
    name: Name | None = None
    unit_type: Name | None = None
    mm_id: ShortText | None = None
    municipality: ShortText | None = None
    address: ShortText | None = None
    postal_code: ShortText | None = None
    operation_shift: ShortText | None = None
    legal_character: ShortText | None = None
    orientation: ShortText | None = None
    phone: ShortText | None = None
    email: ShortText | None = None


class RenameUnitRequest(_Request):
    """Rename a unit."""

    name: Name
    renamed_on: date | None = None


class ReparentUnitRequest(_Request):
    """Move a unit under another parent."""

    to_parent_id: Code
    reparented_on: date | None = None


class SuspendUnitRequest(_Request):
    """Suspend a unit."""

    suspended_on: date | None = None
    reason: ShortText = ""


class ReactivateUnitRequest(_Request):
    """Reactivate a suspended unit."""

    reactivated_on: date | None = None


class AbolishUnitRequest(_Request):
    """Abolish a unit."""

    abolished_on: date | None = None
    decision_reference: ShortText | None = None


class MergeUnitRequest(_Request):
    """Merge a unit into another."""

    into_unit_id: Code
    merged_on: date | None = None
    decision_reference: ShortText | None = None


class StartServingRequest(_Request):
    """Make a support unit serve another unit."""

    served_unit_id: Code
    started_on: date | None = None


class StopServingRequest(_Request):
    """End a support unit's service to a unit."""

    stopped_on: date | None = None


class AddLocationRequest(_Request):
    """Add a location to a unit."""

    name: Name
    kind: LocationKind
    added_on: date | None = None


class RenameLocationRequest(_Request):
    """Rename a location."""

    name: Name
    renamed_on: date | None = None


class RetireLocationRequest(_Request):
    """Retire a location."""

    retired_on: date | None = None
    reason: ShortText = ""


class GrantRoleRequest(_Request):
    """Grant a role on a unit to a user."""

    user_id: UserIdText
    unit_id: Code
    role: UnitRole
    is_recursive: bool = False


class RevokeRoleRequest(_Request):
    """Revoke a user's role on a unit."""

    user_id: UserIdText
    unit_id: Code
    role: UnitRole


class GrantGlobalRoleRequest(_Request):
    """Grant or revoke a system-wide role."""

    user_id: UserIdText
    role: GlobalRole


class CommandResponse(BaseModel):
    """What a write produced: the stream, its new version (the ETag) and the last position."""

    stream_id: str
    version: int
    position: int


class LocationCommandResponse(CommandResponse):
    """A location write: also the location's id."""

    location_id: str


class UnitResponse(BaseModel):
    """A unit as the read model holds it."""

    unit_id: str
    parent_id: str | None
    effective_parent_id: str | None
    name: str
    display_name: str
    unit_type: str
    mm_id: str | None
    municipality: str | None
    address: str | None
    postal_code: str | None
    operation_shift: str | None
    legal_character: str | None
    orientation: str | None
    phone: str | None
    email: str | None
    is_holding_node: bool
    status: str
    merged_into: str | None
    registered_on: date
    closed_on: date | None
    version: int


class UnitSummaryResponse(BaseModel):
    """A unit in a list."""

    unit_id: str
    name: str
    display_name: str
    unit_type: str
    status: str
    depth: int | None = None
    roles: list[str] | None = None


class LocationResponse(BaseModel):
    """A location a unit holds."""

    location_id: str
    unit_id: str
    origin_unit_id: str
    name: str
    kind: str
    is_retired: bool
    is_from_template: bool
    added_on: date
    retired_on: date | None


class SubtreeResponse(BaseModel):
    """The units below a unit: counts (open units by type, all by status) and a page of units."""

    unit_id: str
    total: int
    by_type: dict[str, int]
    by_status: dict[str, int]
    units: list[UnitSummaryResponse]


class ServingResponse(BaseModel):
    """Which units a support unit serves, and which support units serve a unit."""

    unit_id: str
    serves: list[str]
    served_by: list[str]


class HistoryEntryResponse(BaseModel):
    """One event about a unit, as recorded."""

    position: int
    stream_id: str
    version: int
    type: str
    recorded_at: datetime
    actor_id: str | None
    actor_role: str | None
    data: dict[str, Any]


class GrantResponse(BaseModel):
    """A role held on a unit."""

    user_id: str
    unit_id: str
    role: str
    is_recursive: bool
    granted_at: datetime


class UserGrantsResponse(BaseModel):
    """Everything a user holds."""

    user_id: str
    grants: list[GrantResponse]
    global_roles: list[str]
