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
    "UnitSuspended",
    "UnitsEvent",
    "UserId",
]
