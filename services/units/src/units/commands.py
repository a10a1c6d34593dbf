"""The commands the units service accepts: what a caller asks for, before any rule is checked.

Commands are frozen data in domain words; `units.handlers` runs each one against the current state
(loaded from the event store) and `units.domain` decides which events it produces or why it fails.
The bulk importer builds `RegisterUnit` and `ChangeUnitDetails` from CSV rows with the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.events.units import GlobalRole, LocationKind, UnitRole


@dataclass(frozen=True, slots=True)
class RegisterUnit:
    """Register a unit under `parent_id` (None only for a root, the Ministry)."""

    unit_id: str
    parent_id: str | None
    name: str
    unit_type: str
    registered_on: date
    mm_id: str | None = None
    municipality: str | None = None
    address: str | None = None
    postal_code: str | None = None
    operation_shift: str | None = None
    legal_character: str | None = None
    is_holding_node: bool = False
    orientation: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeUnitDetails:
    """Change a unit's descriptive details from `changed_on`; None leaves a field as it is."""

    unit_id: str
    changed_on: date
    name: str | None = None
    unit_type: str | None = None
    mm_id: str | None = None
    municipality: str | None = None
    address: str | None = None
    postal_code: str | None = None
    operation_shift: str | None = None
    legal_character: str | None = None
    orientation: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class RenameUnit:
    """Give a unit a new official name from `renamed_on`."""

    unit_id: str
    name: str
    renamed_on: date


@dataclass(frozen=True, slots=True)
class ReparentUnit:
    """Move a unit, with its subtree, under `to_parent_id` from `reparented_on`."""

    unit_id: str
    to_parent_id: str
    reparented_on: date


@dataclass(frozen=True, slots=True)
class SuspendUnit:
    """Suspend an active unit's operation from `suspended_on`."""

    unit_id: str
    suspended_on: date
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReactivateUnit:
    """Resume a suspended unit's operation from `reactivated_on`."""

    unit_id: str
    reactivated_on: date


@dataclass(frozen=True, slots=True)
class AbolishUnit:
    """Abolish a unit from `abolished_on` (it must have no open unit below it)."""

    unit_id: str
    abolished_on: date
    decision_reference: str | None = None


@dataclass(frozen=True, slots=True)
class MergeUnit:
    """Merge a unit into `into_unit_id` from `merged_on`; its locations and grants follow it."""

    unit_id: str
    into_unit_id: str
    merged_on: date
    decision_reference: str | None = None


@dataclass(frozen=True, slots=True)
class StartServing:
    """Make the support unit `unit_id` serve `served_unit_id` from `started_on`."""

    unit_id: str
    served_unit_id: str
    started_on: date


@dataclass(frozen=True, slots=True)
class StopServing:
    """End the support unit `unit_id`'s service to `served_unit_id` from `stopped_on`."""

    unit_id: str
    served_unit_id: str
    stopped_on: date


@dataclass(frozen=True, slots=True)
class AddLocation:
    """Add a location to a unit from `added_on`."""

    unit_id: str
    name: str
    kind: LocationKind
    added_on: date


@dataclass(frozen=True, slots=True)
class RenameLocation:
    """Rename one of a unit's locations from `renamed_on`."""

    unit_id: str
    location_id: str
    name: str
    renamed_on: date


@dataclass(frozen=True, slots=True)
class RetireLocation:
    """Stop using one of a unit's locations from `retired_on`."""

    unit_id: str
    location_id: str
    retired_on: date
    reason: str = ""


@dataclass(frozen=True, slots=True)
class GrantRole:
    """Grant `role` on `unit_id` to `user_id`, over the subtree when `is_recursive`."""

    user_id: str
    unit_id: str
    role: UnitRole
    is_recursive: bool = False


@dataclass(frozen=True, slots=True)
class RevokeRole:
    """Revoke `user_id`'s `role` on `unit_id`."""

    user_id: str
    unit_id: str
    role: UnitRole


@dataclass(frozen=True, slots=True)
class GrantGlobalRole:
    """Grant `user_id` the system-wide `role`."""

    user_id: str
    role: GlobalRole


@dataclass(frozen=True, slots=True)
class RevokeGlobalRole:
    """Revoke `user_id`'s system-wide `role`."""

    user_id: str
    role: GlobalRole
