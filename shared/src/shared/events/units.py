"""The units service's published events: the unit tree's life and who holds which role where.

Why this exists: every other service needs the unit tree and the grants to decide scope
(`shared.authz` projects them from `units.events`), so their wire format is a contract owned here,
not in the units service. The units service produces them and may extend them, additively only
(STYLE.md habit 7).

Notes:
- A unit is identified by its Ministry registry code, a string (leading zeros matter). The code
  format is the units service's rule to enforce (real data holds `SEK…` workshop centres and
  8-digit schools abroad), so the contract only bounds it.
- Administrative acts on units (registration, re-parenting, suspension, abolition, merger) carry
  the Athens calendar date from which they take effect (`…_on`); grants take effect at an instant
  (`…_at`).
- Who performed the act travels in the envelope (actor), not in the payload.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, StringConstraints

from shared.events.base import Event

# Bounded, not validated as 7 digits: which codes are accepted is the units service's stated rule.
UnitId = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_-]+$")]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class UnitRole(StrEnum):
    """A role held on a unit; one person may combine several (they are not hierarchical)."""

    ENTRY = "entry"  # ΕΙΣΑΓΩΓΗ: records equipment
    MANAGE = "manage"  # ΔΙΑΧΕΙΡΙΣΗ: changes status, moves, transfers
    CERTIFY = "certify"  # ΑΠΟΓΡΑΦΗ: the unit head who certifies the inventory


class GlobalRole(StrEnum):
    """A role held over the whole system, not tied to a unit."""

    MINISTRY_ADMIN = "ministry_admin"
    HELPDESK = "helpdesk"
    AUDITOR = "auditor"
    REGISTRY_INTEGRATION = "registry_integration"


class UnitRegistered(Event):
    """Register a unit in the tree under `parent_id` (None only for the root, the Ministry)."""

    type: Literal["UnitRegistered"] = "UnitRegistered"
    unit_id: UnitId
    parent_id: UnitId | None
    name: Annotated[str, StringConstraints(min_length=1)]
    unit_type: Annotated[str, StringConstraints(min_length=1)]
    mm_id: str | None = None  # the mm.sch.gr id, when the unit has one
    registered_on: date
    # Descriptive details (added later, with defaults: older payloads decode unchanged).
    municipality: str | None = None
    address: str | None = None
    postal_code: str | None = None
    operation_shift: str | None = None  # e.g. ΗΜΕΡΗΣΙΟ, ΕΣΠΕΡΙΝΟ
    legal_character: str | None = None  # e.g. ΔΗΜΟΣΙΟ, ΙΔΙΩΤΙΚΟ
    orientation: str | None = None  # e.g. the ΕΠΑΛ sector, a music or sports school
    phone: str | None = None
    email: str | None = None
    # A node that only holds units until they are placed (e.g. primary units whose directorate
    # the national list lacks); it has no locations and is never a real school.
    is_holding_node: bool = False


class UnitRenamed(Event):
    """Give a unit a new official name from `renamed_on`."""

    type: Literal["UnitRenamed"] = "UnitRenamed"
    unit_id: UnitId
    name: Annotated[str, StringConstraints(min_length=1)]
    renamed_on: date


class UnitDetailsChanged(Event):
    """Record new descriptive details of a unit from `changed_on`; a None field is unchanged."""

    type: Literal["UnitDetailsChanged"] = "UnitDetailsChanged"
    unit_id: UnitId
    unit_type: Annotated[str, StringConstraints(min_length=1)] | None = None
    mm_id: str | None = None
    changed_on: date
    # Added later, with defaults: None still means unchanged, "" clears the value.
    municipality: str | None = None
    address: str | None = None
    postal_code: str | None = None
    operation_shift: str | None = None
    legal_character: str | None = None
    orientation: str | None = None
    phone: str | None = None
    email: str | None = None


class UnitReparented(Event):
    """Move a unit (with its whole subtree) under another parent from `reparented_on`."""

    type: Literal["UnitReparented"] = "UnitReparented"
    unit_id: UnitId
    from_parent_id: UnitId | None
    to_parent_id: UnitId
    reparented_on: date


class UnitSuspended(Event):
    """Suspend a unit's operation from `suspended_on`; its inventory becomes read-only."""

    type: Literal["UnitSuspended"] = "UnitSuspended"
    unit_id: UnitId
    suspended_on: date
    reason: str = ""


class UnitReactivated(Event):
    """Resume a suspended unit's operation from `reactivated_on`."""

    type: Literal["UnitReactivated"] = "UnitReactivated"
    unit_id: UnitId
    reactivated_on: date


class UnitAbolished(Event):
    """Abolish a unit from `abolished_on`; it stays in history, read-only, and takes no children."""

    type: Literal["UnitAbolished"] = "UnitAbolished"
    unit_id: UnitId
    abolished_on: date
    decision_reference: str | None = None  # e.g. the ΦΕΚ issue of the abolishing decision


class UnitMerged(Event):
    """Merge a unit into `into_unit_id` from `merged_on`; its grants and locations follow it."""

    type: Literal["UnitMerged"] = "UnitMerged"
    unit_id: UnitId
    into_unit_id: UnitId
    merged_on: date
    decision_reference: str | None = None


LocationId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.-]+$")
]


class LocationKind(StrEnum):
    """What a location is used for; equipment is recorded in a location."""

    OFFICE = "office"
    COMPUTER_LAB = "computer_lab"  # ΣΕΠΕΗΥ: the school's computer lab
    CLASSROOM = "classroom"
    LIBRARY = "library"
    SCIENCE_LAB = "science_lab"
    WORKSHOP = "workshop"
    STAFF_ROOM = "staff_room"
    SERVER_ROOM = "server_room"
    STORAGE = "storage"
    OTHER = "other"


class LocationAdded(Event):
    """Add a location (lab, office, classroom, ...) to a unit from `added_on`."""

    type: Literal["LocationAdded"] = "LocationAdded"
    unit_id: UnitId
    location_id: LocationId  # `<unit_id>-L<n>`: stable, also after the unit merges into another
    name: Annotated[str, StringConstraints(min_length=1)]
    kind: LocationKind
    added_on: date
    is_from_template: bool = False  # created with the unit from its type's templates


class LocationRenamed(Event):
    """Give a unit's location a new name from `renamed_on`."""

    type: Literal["LocationRenamed"] = "LocationRenamed"
    unit_id: UnitId
    location_id: LocationId
    name: Annotated[str, StringConstraints(min_length=1)]
    renamed_on: date


class LocationRetired(Event):
    """Stop using a location from `retired_on`; it stays in history and takes no new items."""

    type: Literal["LocationRetired"] = "LocationRetired"
    unit_id: UnitId
    location_id: LocationId
    retired_on: date
    reason: str = ""


class LocationTransferred(Event):
    """Hand a location of a merged unit (`from_unit_id`) to the absorbing unit `unit_id`."""

    type: Literal["LocationTransferred"] = "LocationTransferred"
    unit_id: UnitId
    location_id: LocationId
    from_unit_id: UnitId
    name: Annotated[str, StringConstraints(min_length=1)]
    kind: LocationKind
    transferred_on: date


class UnitServingStarted(Event):
    """A support unit (`unit_id`, e.g. a ΚΕΠΛΗΝΕΤ) starts serving `served_unit_id`."""

    type: Literal["UnitServingStarted"] = "UnitServingStarted"
    unit_id: UnitId
    served_unit_id: UnitId
    started_on: date


class UnitServingStopped(Event):
    """A support unit (`unit_id`) stops serving `served_unit_id`."""

    type: Literal["UnitServingStopped"] = "UnitServingStopped"
    unit_id: UnitId
    served_unit_id: UnitId
    stopped_on: date


class RoleGranted(Event):
    """Grant `role` on `unit_id` to a user, over the whole subtree when `is_recursive`."""

    type: Literal["RoleGranted"] = "RoleGranted"
    user_id: UserId
    unit_id: UnitId
    role: UnitRole
    # A grant is keyed by (user, unit, role): granting again with another `is_recursive`
    # replaces it.
    is_recursive: bool = False
    granted_at: AwareDatetime


class RoleRevoked(Event):
    """Revoke a user's `role` on `unit_id` (recursive or not)."""

    type: Literal["RoleRevoked"] = "RoleRevoked"
    user_id: UserId
    unit_id: UnitId
    role: UnitRole
    revoked_at: AwareDatetime


class GlobalRoleGranted(Event):
    """Grant a user a system-wide role."""

    type: Literal["GlobalRoleGranted"] = "GlobalRoleGranted"
    user_id: UserId
    role: GlobalRole
    granted_at: AwareDatetime


class GlobalRoleRevoked(Event):
    """Revoke a user's system-wide role."""

    type: Literal["GlobalRoleRevoked"] = "GlobalRoleRevoked"
    user_id: UserId
    role: GlobalRole
    revoked_at: AwareDatetime


UnitsEvent = (
    UnitRegistered
    | UnitRenamed
    | UnitDetailsChanged
    | UnitReparented
    | UnitSuspended
    | UnitReactivated
    | UnitAbolished
    | UnitMerged
    | LocationAdded
    | LocationRenamed
    | LocationRetired
    | LocationTransferred
    | UnitServingStarted
    | UnitServingStopped
    | RoleGranted
    | RoleRevoked
    | GlobalRoleGranted
    | GlobalRoleRevoked
)
"""Every event on `units.events`, for `match … case _: assert_never(event)` in consumers."""

__all__ = [
    "GlobalRole",
    "GlobalRoleGranted",
    "GlobalRoleRevoked",
    "LocationAdded",
    "LocationId",
    "LocationKind",
    "LocationRenamed",
    "LocationRetired",
    "LocationTransferred",
    "RoleGranted",
    "RoleRevoked",
    "UnitAbolished",
    "UnitDetailsChanged",
    "UnitId",
    "UnitMerged",
    "UnitReactivated",
    "UnitRegistered",
    "UnitRenamed",
    "UnitReparented",
    "UnitRole",
    "UnitServingStarted",
    "UnitServingStopped",
    "UnitSuspended",
    "UnitsEvent",
    "UserId",
]
