"""The units aggregate and the grants aggregate: pure state, `evolve`, and the decide functions.

Why this exists: every rule of the unit tree lives here, with no I/O and no clock, so each rule is a
unit test of the form *given events → when command → then events or error* (STYLE.md §4). Handlers
load the state (and, for tree rules, the lineage of the units involved) and append what is decided.

Usage::

    unit = replay(events_of_the_stream)                 # Unit | None
    events = rename(unit, RenameUnit(unit.unit_id, "2ο ΓΥΜΝΑΣΙΟ", renamed_on=day))

Notes:
- A unit's stream id is its registry code; `validate_code` states which codes are accepted.
- Abolished and merged units are *closed*: they take no change and no children, and their history
  stays readable. Suspended units keep their place in the tree and may be renamed, moved, abolished
  or merged, but take no new locations or grants until reactivated.
- A merge moves the merged unit's open locations to the absorbing unit (`LocationTransferred`, same
  location ids, so equipment recorded there stays where it is). Grants need no event: the
  authorization projection (`shared.authz`) lets a merged unit's grants cover the absorbing unit,
  and units still under the merged one count as under the absorbing one.
- Grants are kept per user (stream `grants:<user id>`): who holds what is one small aggregate, and
  a unit's stream version does not move when someone is given a role on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from shared.events.base import Event
from shared.events.units import (
    GlobalRole,
    GlobalRoleGranted,
    GlobalRoleRevoked,
    LocationAdded,
    LocationKind,
    LocationRenamed,
    LocationRetired,
    LocationTransferred,
    RoleGranted,
    RoleRevoked,
    UnitAbolished,
    UnitDetailsChanged,
    UnitMerged,
    UnitReactivated,
    UnitRegistered,
    UnitRenamed,
    UnitReparented,
    UnitRole,
    UnitServingStarted,
    UnitServingStopped,
    UnitSuspended,
)
from shared.greek import fold
from units.commands import (
    AbolishUnit,
    AddLocation,
    ChangeUnitDetails,
    GrantGlobalRole,
    GrantRole,
    MergeUnit,
    ReactivateUnit,
    RegisterUnit,
    RenameLocation,
    RenameUnit,
    ReparentUnit,
    RetireLocation,
    RevokeGlobalRole,
    RevokeRole,
    StartServing,
    StopServing,
    SuspendUnit,
)

# ---------------------------------------------------------------------------------------------
# Errors


class UnitsDomainError(Exception):
    """A command broke a rule of the unit tree; the message says which, for a person."""


class InvalidUnitCodeError(UnitsDomainError):
    """The registry code is not one of the accepted shapes (see `validate_code`)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"registry code {code!r} is not accepted: {reason}")
        self.code = code
        self.reason = reason


class InvalidUnitDataError(UnitsDomainError):
    """A field of the command is unusable (e.g. a blank name)."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field_name = field_name
        self.reason = reason


class UnitAlreadyRegisteredError(UnitsDomainError):
    """A unit with this registry code is already registered."""

    def __init__(self, unit_id: str) -> None:
        super().__init__(f"unit {unit_id} is already registered")
        self.unit_id = unit_id


class UnitNotFoundError(UnitsDomainError):
    """No unit is registered under this code."""

    def __init__(self, unit_id: str) -> None:
        super().__init__(f"unit {unit_id} is not registered")
        self.unit_id = unit_id


class ParentNotFoundError(UnitsDomainError):
    """The parent named by the command is not registered."""

    def __init__(self, parent_id: str) -> None:
        super().__init__(f"parent unit {parent_id} is not registered")
        self.parent_id = parent_id


class ParentClosedError(UnitsDomainError):
    """The parent is abolished or merged: a closed unit takes no children."""

    def __init__(self, parent_id: str, status: UnitStatus) -> None:
        super().__init__(f"parent unit {parent_id} is {status.value} and takes no children")
        self.parent_id = parent_id
        self.status = status


class UnitClosedError(UnitsDomainError):
    """The unit is abolished or merged: it takes no more changes."""

    def __init__(self, unit_id: str, status: UnitStatus) -> None:
        super().__init__(f"unit {unit_id} is {status.value}; it takes no more changes")
        self.unit_id = unit_id
        self.status = status


class UnitNotActiveError(UnitsDomainError):
    """The command needs an active unit (not suspended, abolished or merged)."""

    def __init__(self, unit_id: str, status: UnitStatus) -> None:
        super().__init__(f"unit {unit_id} is {status.value}; this needs an active unit")
        self.unit_id = unit_id
        self.status = status


class UnitNotSuspendedError(UnitsDomainError):
    """Only a suspended unit can be reactivated."""

    def __init__(self, unit_id: str, status: UnitStatus) -> None:
        super().__init__(f"unit {unit_id} is {status.value}, not suspended")
        self.unit_id = unit_id
        self.status = status


class UnitCycleError(UnitsDomainError):
    """The change would make a unit its own ancestor."""

    def __init__(self, unit_id: str, other_id: str) -> None:
        super().__init__(f"unit {unit_id} would become its own ancestor through {other_id}")
        self.unit_id = unit_id
        self.other_id = other_id


_SHOWN = 5  # children named in the message


class UnitHasOpenChildrenError(UnitsDomainError):
    """A unit with open units below it cannot be abolished: move or close them first."""

    def __init__(self, unit_id: str, children: Sequence[str]) -> None:
        shown = ", ".join(children[:_SHOWN]) + (" …" if len(children) > _SHOWN else "")
        super().__init__(f"unit {unit_id} still has {len(children)} open units below it: {shown}")
        self.unit_id = unit_id
        self.children = tuple(children)


class EffectiveDateError(UnitsDomainError):
    """The act would take effect before the unit existed."""

    def __init__(self, unit_id: str, on: date, registered_on: date) -> None:
        super().__init__(f"unit {unit_id} was registered on {registered_on}, after {on}")
        self.unit_id = unit_id


class NotASupportUnitError(UnitsDomainError):
    """Only support units (ΚΕΠΛΗΝΕΤ, ΕΚΦΕ, ΚΕΣΥ, ...) serve other units."""

    def __init__(self, unit_id: str, unit_type: str) -> None:
        super().__init__(f"unit {unit_id} is a {unit_type}, not a support unit")
        self.unit_id = unit_id


class NotServingError(UnitsDomainError):
    """The support unit does not serve that unit."""

    def __init__(self, unit_id: str, served_unit_id: str) -> None:
        super().__init__(f"unit {unit_id} does not serve {served_unit_id}")
        self.unit_id = unit_id


class LocationNotFoundError(UnitsDomainError):
    """The unit has no location with this id."""

    def __init__(self, unit_id: str, location_id: str) -> None:
        super().__init__(f"unit {unit_id} has no location {location_id}")
        self.unit_id = unit_id
        self.location_id = location_id


class LocationRetiredError(UnitsDomainError):
    """The location is retired and takes no more changes."""

    def __init__(self, location_id: str) -> None:
        super().__init__(f"location {location_id} is retired")
        self.location_id = location_id


class LocationNameTakenError(UnitsDomainError):
    """Another open location of the unit has this name (ignoring accents and case)."""

    def __init__(self, unit_id: str, name: str) -> None:
        super().__init__(f"unit {unit_id} already has a location named {name!r}")
        self.unit_id = unit_id


class GrantNotFoundError(UnitsDomainError):
    """The user does not hold the role being revoked."""

    def __init__(self, user_id: str, role: str, unit_id: str | None = None) -> None:
        where = f" on unit {unit_id}" if unit_id else ""
        super().__init__(f"user {user_id} does not hold {role}{where}")
        self.user_id = user_id


class GrantAuthorityError(UnitsDomainError):
    """The grantor may not make this grant (global roles: ministry administrators only)."""


# ---------------------------------------------------------------------------------------------
# Registry codes

_SEVEN_DIGITS = re.compile(r"[0-9]{7}")
_ABROAD = re.compile(r"[0-9]{8}")
_WORKSHOP_CENTRE = re.compile(r"SEK[0-9]{1,6}")
_TEXT_CODE = re.compile(r"[a-z]{3,10}[0-9]{0,4}")
MAX_CODE_LENGTH = 32


def validate_code(code: str) -> str:
    """Return `code` if it is an accepted registry code; raise `InvalidUnitCodeError` saying why.

    Accepted, as the Ministry's registry writes them (kept as text, leading zeros and all):
    - 7 digits: the norm for every school, support unit and directorate (`0551010`, `9901101`);
    - 8 digits: Greek schools abroad (`01523003`);
    - `SEK` + 1-6 digits: workshop centres (Εργαστηριακά Κέντρα, `SEK012`);
    - 3-10 lower-case Latin letters + up to 4 digits: the text codes the registry gives some
      directorates and offices (`diekek`, `sgm99`, `sivit97`, as in gr_edu_admins.csv; also
      `gendith`, `kedkykl`, `neo27`), and the codes chosen for nodes the registry lacks.

    Everything else is refused, never silently: other letter prefixes (e.g. `IDG0019`, a private
    school's internal code), digit strings of other lengths, spaces, punctuation, and anything
    starting with `sek` in any case that is not `SEK` + digits (a misspelt workshop centre code).
    """
    if not code:
        raise InvalidUnitCodeError(code, "it is empty")
    if code != code.strip():
        raise InvalidUnitCodeError(code, "it has spaces around it")
    if len(code) > MAX_CODE_LENGTH:
        raise InvalidUnitCodeError(code, f"it is longer than {MAX_CODE_LENGTH} characters")
    if code[:3].lower() == "sek" and not _WORKSHOP_CENTRE.fullmatch(code):
        # Not a text code that happens to start with "sek": a misspelt workshop centre code.
        return _refuse(code, "workshop centre codes are SEK followed by 1-6 digits")
    if (
        _SEVEN_DIGITS.fullmatch(code)
        or _ABROAD.fullmatch(code)
        or _WORKSHOP_CENTRE.fullmatch(code)
        or _TEXT_CODE.fullmatch(code)
    ):
        return code
    if code.isdigit():
        return _refuse(code, f"{len(code)} digits; registry codes have 7 (8 for schools abroad)")
    letters = re.match(r"[A-Za-z]+", code)
    if letters and code.isascii() and code.isalnum():
        return _refuse(
            code,
            f"unknown prefix {letters.group()!r}: only SEK codes and lower-case text codes "
            "(3-10 letters, up to 4 digits) may contain letters",
        )
    return _refuse(code, "only digits and Latin letters are allowed")


def _refuse(code: str, reason: str) -> str:
    raise InvalidUnitCodeError(code, reason)


# ---------------------------------------------------------------------------------------------
# Location templates

# Per unit type (folded), the locations a new unit of that type starts with. Names are Greek
# labels for people; kinds are what equipment rules and reports use.
_OFFICE = (LocationKind.OFFICE, "Γραφείο Διεύθυνσης")
_STAFF = (LocationKind.STAFF_ROOM, "Γραφείο Εκπαιδευτικών")
_LAB = (LocationKind.COMPUTER_LAB, "Εργαστήριο Πληροφορικής (ΣΕΠΕΗΥ)")
_CLASSROOMS = (LocationKind.CLASSROOM, "Αίθουσες διδασκαλίας")
_LIBRARY = (LocationKind.LIBRARY, "Βιβλιοθήκη")
_SCIENCE = (LocationKind.SCIENCE_LAB, "Εργαστήριο Φυσικών Επιστημών")
_WORKSHOPS = (LocationKind.WORKSHOP, "Εργαστήρια ειδικότητας")
_SECRETARIAT = (LocationKind.OFFICE, "Γραμματεία")
_SERVERS = (LocationKind.SERVER_ROOM, "Αίθουσα εξοπλισμού δικτύου")
_STORAGE = (LocationKind.STORAGE, "Αποθήκη")

Template = tuple[tuple[LocationKind, str], ...]
_SECONDARY: Template = (_OFFICE, _STAFF, _LAB, _CLASSROOMS, _LIBRARY, _SCIENCE)
LOCATION_TEMPLATES: Mapping[str, Template] = {
    fold(unit_type): template
    for unit_type, template in {
        "ΝΗΠΙΑΓΩΓΕΙΟ": (_OFFICE, _CLASSROOMS),
        "ΔΗΜΟΤΙΚΟ": (_OFFICE, _STAFF, _LAB, _CLASSROOMS, _LIBRARY),
        "ΓΥΜΝΑΣΙΟ": _SECONDARY,
        "ΓΕΝΙΚΟ ΛΥΚΕΙΟ": _SECONDARY,
        "ΕΚΚΛΗΣΙΑΣΤΙΚΟ ΣΧΟΛΕΙΟ": _SECONDARY,
        "ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΓΥΜΝΑΣΙΟ": _SECONDARY,
        "ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΛΥΚΕΙΟ": (*_SECONDARY, _WORKSHOPS),
        "ΕΠΑΓΓΕΛΜΑΤΙΚΗ ΣΧΟΛΗ": (_OFFICE, _STAFF, _LAB, _CLASSROOMS, _WORKSHOPS),
        "ΤΕΧΝΙΚΟ ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΕΚΠΑΙΔΕΥΤΗΡΙΟ": (_OFFICE, _STAFF, _LAB, _CLASSROOMS, _WORKSHOPS),
        "ΕΡΓΑΣΤΗΡΙΑΚΟ ΚΕΝΤΡΟ": (_OFFICE, _LAB, _WORKSHOPS, _STORAGE),
        "ΕΙΔΙΚΟ ΕΡΓΑΣΤΗΡΙΟ ΕΠΑΓΓΕΛΜΑΤΙΚΗΣ ΕΚΠΑΙΔΕΥΣΗΣ ΚΑΙ ΚΑΤΑΡΤΙΣΗΣ": (
            _OFFICE,
            _LAB,
            _CLASSROOMS,
            _WORKSHOPS,
        ),
        "ΙΝΣΤΙΤΟΥΤΟ ΕΠΑΓΓΕΛΜΑΤΙΚΗΣ ΚΑΤΑΡΤΙΣΗΣ": (_OFFICE, _SECRETARIAT, _LAB, _CLASSROOMS),
        "ΚΕΠΛΗΝΕΤ": (_OFFICE, _SERVERS, _STORAGE),
        "ΕΚΦΕ": (_OFFICE, _SCIENCE, _STORAGE),
        "ΔΙΕΥΘΥΝΣΗ ΔΕΥΤΕΡΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ": (_OFFICE, _SECRETARIAT, _SERVERS, _STORAGE),
        "ΔΙΕΥΘΥΝΣΗ ΠΡΩΤΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ": (_OFFICE, _SECRETARIAT, _SERVERS, _STORAGE),
        "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΕΚΠΑΙΔΕΥΣΗΣ": (_OFFICE, _SECRETARIAT, _SERVERS, _STORAGE),
    }.items()
}
DEFAULT_TEMPLATE: Template = (_OFFICE,)

SUPPORT_UNIT_TYPES = frozenset(
    fold(name)
    for name in (
        "ΚΕΠΛΗΝΕΤ",
        "ΕΚΦΕ",
        "ΚΕΣΥ",
        "ΚΕΔΑΣΥ",
        "ΚΕΔΔΥ",
        "ΚΕΣΥΠ",
        "ΓΡΑΣΕΠ",
        "ΣΣΝ",
        "ΚΠΕ",
        "ΠΕΚ",
        "ΠΕΚΕΣ",
        "ΚΟΜΒΟΣ ΠΣΔ",
    )
)


def location_template(unit_type: str) -> Template:
    """Return the locations a new unit of `unit_type` starts with (an office at least)."""
    return LOCATION_TEMPLATES.get(fold(unit_type), DEFAULT_TEMPLATE)


def location_id(unit_id: str, number: int) -> str:
    """Return the id of the `number`-th location a unit created: `<unit_id>-L<number>`."""
    return f"{unit_id}-L{number}"


# ---------------------------------------------------------------------------------------------
# State


class UnitStatus(StrEnum):
    """Where a unit stands in its life; abolished and merged units are closed."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    ABOLISHED = "abolished"
    MERGED = "merged"

    @property
    def is_closed(self) -> bool:
        """Return whether the unit takes no more changes (abolished or merged)."""
        return self in (UnitStatus.ABOLISHED, UnitStatus.MERGED)


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a unit where equipment is kept."""

    location_id: str
    name: str
    kind: LocationKind
    is_retired: bool = False
    is_from_template: bool = False


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit as its stream says it is now (the fields of `RegisterUnit`, status and version)."""

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
    status: UnitStatus = UnitStatus.ACTIVE
    version: int = 0
    merged_into: str | None = None
    locations: tuple[Location, ...] = ()
    serves: frozenset[str] = frozenset()
    # How many locations this unit has numbered (`<unit_id>-L<n>`), retired ones included.
    locations_numbered: int = 0

    @property
    def effective_parent_id(self) -> str | None:
        """Return where the unit hangs now: the unit it merged into, else its parent."""
        return self.merged_into or self.parent_id

    def location(self, location_id: str) -> Location | None:
        """Return the location with this id, if the unit holds it."""
        return next((loc for loc in self.locations if loc.location_id == location_id), None)


DETAIL_FIELDS = (
    "mm_id",
    "municipality",
    "address",
    "postal_code",
    "operation_shift",
    "legal_character",
    "orientation",
    "phone",
    "email",
)


def evolve(unit: Unit | None, event: Event, version: int | None = None) -> Unit | None:
    """Return the state after `event` (`version`: the event's stream version, else one more)."""
    state = _evolve(unit, event)
    if state is None:
        return None
    next_version = version if version is not None else (unit.version if unit else 0) + 1
    return replace(state, version=next_version)


def _evolve(unit: Unit | None, event: Event) -> Unit | None:  # noqa: PLR0911, PLR0912  (one case per event type)
    if isinstance(event, UnitRegistered):
        return Unit(
            unit_id=event.unit_id,
            parent_id=event.parent_id,
            name=event.name,
            unit_type=event.unit_type,
            registered_on=event.registered_on,
            is_holding_node=event.is_holding_node,
            **{name: getattr(event, name) for name in DETAIL_FIELDS},
        )
    if unit is None:
        return None  # an event of a stream that never registered a unit: not a unit
    match event:
        case UnitRenamed():
            return replace(unit, name=event.name)
        case UnitDetailsChanged():
            changes: dict[str, Any] = {
                name: (value or None)
                for name in DETAIL_FIELDS
                if (value := getattr(event, name)) is not None
            }
            if event.unit_type is not None:
                changes["unit_type"] = event.unit_type
            return replace(unit, **changes)
        case UnitReparented():
            return replace(unit, parent_id=event.to_parent_id)
        case UnitSuspended():
            return replace(unit, status=UnitStatus.SUSPENDED)
        case UnitReactivated():
            return replace(unit, status=UnitStatus.ACTIVE)
        case UnitAbolished():
            return replace(unit, status=UnitStatus.ABOLISHED)
        case UnitMerged():
            # Its open locations now belong to the absorbing unit (LocationTransferred there).
            kept = tuple(loc for loc in unit.locations if loc.is_retired)
            return replace(
                unit, status=UnitStatus.MERGED, merged_into=event.into_unit_id, locations=kept
            )
        case LocationAdded():
            added = Location(
                event.location_id, event.name, event.kind, is_from_template=event.is_from_template
            )
            return replace(
                unit,
                locations=(*unit.locations, added),
                locations_numbered=max(
                    unit.locations_numbered, _number_of(unit.unit_id, event.location_id)
                ),
            )
        case LocationTransferred():
            moved = Location(event.location_id, event.name, event.kind)
            return replace(unit, locations=(*unit.locations, moved))
        case LocationRenamed():
            return _with_location(
                unit, event.location_id, lambda loc: replace(loc, name=event.name)
            )
        case LocationRetired():
            return _with_location(
                unit, event.location_id, lambda loc: replace(loc, is_retired=True)
            )
        case UnitServingStarted():
            return replace(unit, serves=unit.serves | {event.served_unit_id})
        case UnitServingStopped():
            return replace(unit, serves=unit.serves - {event.served_unit_id})
        case _:
            return unit


def _number_of(unit_id: str, loc_id: str) -> int:
    prefix = f"{unit_id}-L"
    suffix = loc_id.removeprefix(prefix)
    return int(suffix) if loc_id.startswith(prefix) and suffix.isdigit() else 0


def _with_location(unit: Unit, loc_id: str, change: Callable[[Location], Location]) -> Unit:
    locations = tuple(change(loc) if loc.location_id == loc_id else loc for loc in unit.locations)
    return replace(unit, locations=locations)


def replay(events: Iterable[Event]) -> Unit | None:
    """Fold a unit's events, oldest first, into its current state."""
    unit: Unit | None = None
    for event in events:
        unit = evolve(unit, event)
    return unit


# ---------------------------------------------------------------------------------------------
# Decisions on the unit


def _require(unit: Unit | None, unit_id: str) -> Unit:
    if unit is None:
        raise UnitNotFoundError(unit_id)
    return unit


def _require_open(unit: Unit | None, unit_id: str) -> Unit:
    found = _require(unit, unit_id)
    if found.status.is_closed:
        raise UnitClosedError(found.unit_id, found.status)
    return found


def _require_active(unit: Unit | None, unit_id: str) -> Unit:
    found = _require_open(unit, unit_id)
    if found.status is not UnitStatus.ACTIVE:
        raise UnitNotActiveError(found.unit_id, found.status)
    return found


def _not_before_registration(unit: Unit, on: date) -> None:
    if on < unit.registered_on:
        raise EffectiveDateError(unit.unit_id, on, unit.registered_on)


def _text(field_name: str, value: str) -> str:
    if not value.strip():
        raise InvalidUnitDataError(field_name, "must not be blank")
    return value


def _parent_takes_children(parent: Unit | None, parent_id: str) -> None:
    if parent is None:
        raise ParentNotFoundError(parent_id)
    if parent.status.is_closed:
        raise ParentClosedError(parent_id, parent.status)


def register(existing: Unit | None, parent: Unit | None, command: RegisterUnit) -> list[Event]:
    """Register a new unit with the locations of its type's template (none for a holding node)."""
    validate_code(command.unit_id)
    if existing is not None:
        raise UnitAlreadyRegisteredError(command.unit_id)
    _text("name", command.name)
    _text("unit_type", command.unit_type)
    if command.parent_id is not None:
        if command.parent_id == command.unit_id:
            raise UnitCycleError(command.unit_id, command.parent_id)
        _parent_takes_children(parent, command.parent_id)
    registered = UnitRegistered(
        unit_id=command.unit_id,
        parent_id=command.parent_id,
        name=command.name,
        unit_type=command.unit_type,
        registered_on=command.registered_on,
        is_holding_node=command.is_holding_node,
        **{name: getattr(command, name) for name in DETAIL_FIELDS},
    )
    template = () if command.is_holding_node else location_template(command.unit_type)
    locations = [
        LocationAdded(
            unit_id=command.unit_id,
            location_id=location_id(command.unit_id, number),
            name=name,
            kind=kind,
            added_on=command.registered_on,
            is_from_template=True,
        )
        for number, (kind, name) in enumerate(template, start=1)
    ]
    return [registered, *locations]


def change_details(unit: Unit | None, command: ChangeUnitDetails) -> list[Event]:
    """Record the details that differ from the unit's (a rename too); nothing if none differ."""
    found = _require_open(unit, command.unit_id)
    _not_before_registration(found, command.changed_on)
    events: list[Event] = []
    if command.name is not None and command.name != found.name:
        events.append(
            UnitRenamed(
                unit_id=found.unit_id,
                name=_text("name", command.name),
                renamed_on=command.changed_on,
            )
        )
    changed: dict[str, str] = {
        name: value
        for name in DETAIL_FIELDS
        if (value := getattr(command, name)) is not None and (value or None) != getattr(found, name)
    }
    if command.unit_type is not None and command.unit_type != found.unit_type:
        changed["unit_type"] = _text("unit_type", command.unit_type)
    if changed:
        events.append(
            UnitDetailsChanged(unit_id=found.unit_id, changed_on=command.changed_on, **changed)
        )
    return events


def rename(unit: Unit | None, command: RenameUnit) -> list[Event]:
    """Rename the unit; nothing if the name is already that."""
    found = _require_open(unit, command.unit_id)
    _not_before_registration(found, command.renamed_on)
    if command.name == found.name:
        return []
    return [
        UnitRenamed(
            unit_id=found.unit_id,
            name=_text("name", command.name),
            renamed_on=command.renamed_on,
        )
    ]


def reparent(
    unit: Unit | None,
    new_parent: Unit | None,
    new_parent_lineage: Sequence[str],
    command: ReparentUnit,
) -> list[Event]:
    """Move the unit under `new_parent`; refuse a cycle or a closed parent.

    `new_parent_lineage` is the new parent's chain of effective ancestors (itself first), as the
    handler read it: the unit must not be on it, else it would become its own ancestor.
    """
    found = _require_open(unit, command.unit_id)
    _not_before_registration(found, command.reparented_on)
    if command.to_parent_id == found.parent_id:
        return []
    if command.to_parent_id == found.unit_id or found.unit_id in new_parent_lineage:
        raise UnitCycleError(found.unit_id, command.to_parent_id)
    _parent_takes_children(new_parent, command.to_parent_id)
    return [
        UnitReparented(
            unit_id=found.unit_id,
            from_parent_id=found.parent_id,
            to_parent_id=command.to_parent_id,
            reparented_on=command.reparented_on,
        )
    ]


def suspend(unit: Unit | None, command: SuspendUnit) -> list[Event]:
    """Suspend an active unit."""
    found = _require_active(unit, command.unit_id)
    _not_before_registration(found, command.suspended_on)
    return [
        UnitSuspended(
            unit_id=found.unit_id, suspended_on=command.suspended_on, reason=command.reason
        )
    ]


def reactivate(unit: Unit | None, command: ReactivateUnit) -> list[Event]:
    """Reactivate a suspended unit."""
    found = _require_open(unit, command.unit_id)
    if found.status is not UnitStatus.SUSPENDED:
        raise UnitNotSuspendedError(found.unit_id, found.status)
    _not_before_registration(found, command.reactivated_on)
    return [UnitReactivated(unit_id=found.unit_id, reactivated_on=command.reactivated_on)]


def abolish(unit: Unit | None, command: AbolishUnit, open_children: Sequence[str]) -> list[Event]:
    """Abolish a unit that has no open unit below it (`open_children`, as the handler read them)."""
    found = _require_open(unit, command.unit_id)
    _not_before_registration(found, command.abolished_on)
    if open_children:
        raise UnitHasOpenChildrenError(found.unit_id, open_children)
    return [
        UnitAbolished(
            unit_id=found.unit_id,
            abolished_on=command.abolished_on,
            decision_reference=command.decision_reference,
        )
    ]


@dataclass(frozen=True, slots=True)
class MergeDecision:
    """What a merge appends: to the merged unit's stream and to the absorbing unit's."""

    merged: list[Event] = field(default_factory=list)
    absorbing: list[Event] = field(default_factory=list)


def merge(
    unit: Unit | None,
    into: Unit | None,
    into_lineage: Sequence[str],
    command: MergeUnit,
) -> MergeDecision:
    """Merge the unit into `into`; its open locations move there with their ids.

    `into_lineage` is the absorbing unit's chain of effective ancestors (itself first): merging a
    unit into one of its own descendants would hang that descendant below itself.
    """
    found = _require_open(unit, command.unit_id)
    _not_before_registration(found, command.merged_on)
    if command.into_unit_id == found.unit_id or found.unit_id in into_lineage:
        raise UnitCycleError(found.unit_id, command.into_unit_id)
    if into is None:
        raise UnitNotFoundError(command.into_unit_id)
    if into.status is not UnitStatus.ACTIVE:
        raise UnitNotActiveError(into.unit_id, into.status)
    merged: list[Event] = [
        UnitMerged(
            unit_id=found.unit_id,
            into_unit_id=into.unit_id,
            merged_on=command.merged_on,
            decision_reference=command.decision_reference,
        )
    ]
    absorbing: list[Event] = [
        LocationTransferred(
            unit_id=into.unit_id,
            location_id=loc.location_id,
            from_unit_id=found.unit_id,
            name=loc.name,
            kind=loc.kind,
            transferred_on=command.merged_on,
        )
        for loc in found.locations
        if not loc.is_retired
    ]
    return MergeDecision(merged, absorbing)


def start_serving(unit: Unit | None, served: Unit | None, command: StartServing) -> list[Event]:
    """Make an active support unit serve another open unit; nothing if it already does."""
    found = _require_active(unit, command.unit_id)
    if fold(found.unit_type) not in SUPPORT_UNIT_TYPES:
        raise NotASupportUnitError(found.unit_id, found.unit_type)
    if command.served_unit_id == found.unit_id:
        raise InvalidUnitDataError("served_unit_id", "a unit does not serve itself")
    _require_open(served, command.served_unit_id)
    if command.served_unit_id in found.serves:
        return []
    return [
        UnitServingStarted(
            unit_id=found.unit_id,
            served_unit_id=command.served_unit_id,
            started_on=command.started_on,
        )
    ]


def stop_serving(unit: Unit | None, command: StopServing) -> list[Event]:
    """End a support unit's service to a unit it serves."""
    found = _require_open(unit, command.unit_id)
    if command.served_unit_id not in found.serves:
        raise NotServingError(found.unit_id, command.served_unit_id)
    return [
        UnitServingStopped(
            unit_id=found.unit_id,
            served_unit_id=command.served_unit_id,
            stopped_on=command.stopped_on,
        )
    ]


# ---------------------------------------------------------------------------------------------
# Decisions on locations


def _name_is_free(unit: Unit, name: str, *, except_id: str | None = None) -> None:
    wanted = fold(name)
    for loc in unit.locations:
        if not loc.is_retired and loc.location_id != except_id and fold(loc.name) == wanted:
            raise LocationNameTakenError(unit.unit_id, name)


def _open_location(unit: Unit, loc_id: str) -> Location:
    loc = unit.location(loc_id)
    if loc is None:
        raise LocationNotFoundError(unit.unit_id, loc_id)
    if loc.is_retired:
        raise LocationRetiredError(loc_id)
    return loc


def add_location(unit: Unit | None, command: AddLocation) -> list[Event]:
    """Add a location, numbered after every location the unit has numbered."""
    found = _require_active(unit, command.unit_id)
    _name_is_free(found, _text("name", command.name))
    return [
        LocationAdded(
            unit_id=found.unit_id,
            location_id=location_id(found.unit_id, found.locations_numbered + 1),
            name=command.name,
            kind=command.kind,
            added_on=command.added_on,
        )
    ]


def rename_location(unit: Unit | None, command: RenameLocation) -> list[Event]:
    """Rename an open location; nothing if the name is already that."""
    found = _require_active(unit, command.unit_id)
    loc = _open_location(found, command.location_id)
    if loc.name == command.name:
        return []
    _name_is_free(found, _text("name", command.name), except_id=loc.location_id)
    return [
        LocationRenamed(
            unit_id=found.unit_id,
            location_id=loc.location_id,
            name=command.name,
            renamed_on=command.renamed_on,
        )
    ]


def retire_location(unit: Unit | None, command: RetireLocation) -> list[Event]:
    """Retire an open location (the equipment service decides whether items still lie there)."""
    found = _require_active(unit, command.unit_id)
    loc = _open_location(found, command.location_id)
    return [
        LocationRetired(
            unit_id=found.unit_id,
            location_id=loc.location_id,
            retired_on=command.retired_on,
            reason=command.reason,
        )
    ]


# ---------------------------------------------------------------------------------------------
# Grants


def grants_stream(user_id: str) -> str:
    """Return the stream id of a user's grants."""
    return f"grants:{user_id}"


@dataclass(frozen=True, slots=True)
class UserGrants:
    """The roles one user holds: per (unit, role) whether recursive, and global roles."""

    user_id: str
    unit_roles: Mapping[tuple[str, UnitRole], bool] = field(default_factory=dict)
    global_roles: frozenset[GlobalRole] = frozenset()
    version: int = 0


def evolve_grants(grants: UserGrants, event: Event, version: int | None = None) -> UserGrants:
    """Return the user's grants after `event`."""
    next_version = version if version is not None else grants.version + 1
    roles = dict(grants.unit_roles)
    global_roles = grants.global_roles
    match event:
        case RoleGranted():
            roles[(event.unit_id, event.role)] = event.is_recursive
        case RoleRevoked():
            roles.pop((event.unit_id, event.role), None)
        case GlobalRoleGranted():
            global_roles = global_roles | {event.role}
        case GlobalRoleRevoked():
            global_roles = global_roles - {event.role}
        case _:
            pass
    return UserGrants(grants.user_id, roles, global_roles, next_version)


def replay_grants(user_id: str, events: Iterable[Event]) -> UserGrants:
    """Fold a user's grant events into what they hold now."""
    grants = UserGrants(user_id)
    for event in events:
        grants = evolve_grants(grants, event)
    return grants


def grant(
    grants: UserGrants, unit: Unit | None, command: GrantRole, *, granted_at: datetime
) -> list[Event]:
    """Grant a role on an active unit; nothing if the same grant is already held.

    Whether the grantor may grant on that unit is `shared.authz`'s question (a recursive `manage`
    covering the unit, or `ministry_admin`), asked by the handler's caller before this.
    """
    _text("user_id", command.user_id)
    found = _require_active(unit, command.unit_id)
    if grants.unit_roles.get((found.unit_id, command.role)) == command.is_recursive:
        return []
    return [
        RoleGranted(
            user_id=command.user_id,
            unit_id=found.unit_id,
            role=command.role,
            is_recursive=command.is_recursive,
            granted_at=granted_at,
        )
    ]


def revoke(grants: UserGrants, command: RevokeRole, *, revoked_at: datetime) -> list[Event]:
    """Revoke a role the user holds on a unit (of any status: stale access must be removable)."""
    if (command.unit_id, command.role) not in grants.unit_roles:
        raise GrantNotFoundError(command.user_id, command.role.value, command.unit_id)
    return [
        RoleRevoked(
            user_id=command.user_id,
            unit_id=command.unit_id,
            role=command.role,
            revoked_at=revoked_at,
        )
    ]


def _require_ministry_admin(grantor_roles: frozenset[GlobalRole]) -> None:
    if GlobalRole.MINISTRY_ADMIN not in grantor_roles:
        raise GrantAuthorityError("only a ministry administrator grants or revokes global roles")


def grant_global(
    grants: UserGrants,
    command: GrantGlobalRole,
    *,
    granted_at: datetime,
    grantor_roles: frozenset[GlobalRole],
) -> list[Event]:
    """Grant a global role (ministry administrators only); nothing if already held."""
    _require_ministry_admin(grantor_roles)
    _text("user_id", command.user_id)
    if command.role in grants.global_roles:
        return []
    return [GlobalRoleGranted(user_id=command.user_id, role=command.role, granted_at=granted_at)]


def revoke_global(
    grants: UserGrants,
    command: RevokeGlobalRole,
    *,
    revoked_at: datetime,
    grantor_roles: frozenset[GlobalRole],
) -> list[Event]:
    """Revoke a global role the user holds (ministry administrators only)."""
    _require_ministry_admin(grantor_roles)
    if command.role not in grants.global_roles:
        raise GrantNotFoundError(command.user_id, command.role.value)
    return [GlobalRoleRevoked(user_id=command.user_id, role=command.role, revoked_at=revoked_at)]
