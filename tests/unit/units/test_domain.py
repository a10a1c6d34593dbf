"""The units domain, pure: given events → when a command → then events or a named error."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.events.base import Event
from shared.events.units import (
    GlobalRole,
    GlobalRoleGranted,
    LocationAdded,
    LocationKind,
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
    UnitSuspended,
)
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
from units.domain import (
    EffectiveDateError,
    GrantAuthorityError,
    GrantNotFoundError,
    InvalidUnitCodeError,
    InvalidUnitDataError,
    LocationNameTakenError,
    LocationNotFoundError,
    LocationRetiredError,
    NotASupportUnitError,
    NotServingError,
    ParentClosedError,
    ParentNotFoundError,
    Unit,
    UnitAlreadyRegisteredError,
    UnitClosedError,
    UnitCycleError,
    UnitHasOpenChildrenError,
    UnitNotActiveError,
    UnitNotFoundError,
    UnitNotSuspendedError,
    UnitStatus,
    abolish,
    add_location,
    change_details,
    grant,
    grant_global,
    location_template,
    merge,
    reactivate,
    register,
    rename,
    rename_location,
    reparent,
    replay,
    replay_grants,
    retire_location,
    revoke,
    revoke_global,
    start_serving,
    stop_serving,
    suspend,
    validate_code,
)

ON = date(2026, 9, 1)
LATER = date(2026, 10, 1)
AT = datetime(2026, 9, 1, 8, tzinfo=UTC)
DIRECTORATE = "0551000"
OTHER_DIRECTORATE = "0552000"
SCHOOL = "0551010"
OTHER_SCHOOL = "0551011"
KEPLINET = "0599001"


def registered(
    unit_id: str = SCHOOL, parent_id: str | None = DIRECTORATE, unit_type: str = "ΓΥΜΝΑΣΙΟ"
) -> UnitRegistered:
    return UnitRegistered(
        unit_id=unit_id,
        parent_id=parent_id,
        name=f"ΜΟΝΑΔΑ {unit_id}",
        unit_type=unit_type,
        registered_on=ON,
    )


def unit_of(*events: Event) -> Unit:
    unit = replay(events)
    assert unit is not None
    return unit


def school(*more: Event) -> Unit:
    return unit_of(*register(None, directorate(), register_command()), *more)


def directorate(unit_id: str = DIRECTORATE) -> Unit:
    return unit_of(registered(unit_id, "0500000", "ΔΙΕΥΘΥΝΣΗ ΔΕΥΤΕΡΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ"))


def register_command(unit_id: str = SCHOOL, **changes: object) -> RegisterUnit:
    values: dict[str, object] = {
        "unit_id": unit_id,
        "parent_id": DIRECTORATE,
        "name": "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ",
        "unit_type": "ΓΥΜΝΑΣΙΟ",
        "registered_on": ON,
        "municipality": "ΑΘΗΝΑΙΩΝ",
    }
    values.update(changes)
    return RegisterUnit(**values)  # type: ignore[arg-type]


# --- registry codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["0551010", "0000001", "9901101", "01523003", "SEK012", "SEK1", "diekek", "sgm99"]
)
def test_accepted_code_shapes(code: str) -> None:
    assert validate_code(code) == code


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("", "empty"),
        (" 0551010", "spaces"),
        ("055101", "6 digits"),
        ("055101099", "9 digits"),
        ("sek012", "SEK followed"),
        ("SEK", "SEK followed"),
        ("IDG0019", "unknown prefix 'IDG'"),
        ("05-51010", "only digits and Latin letters"),
        ("ΓΥΜ0001", "only digits and Latin letters"),
    ],
)
def test_other_codes_are_rejected_with_the_reason(code: str, reason: str) -> None:
    with pytest.raises(InvalidUnitCodeError, match=reason):
        validate_code(code)


def test_register_is_rejected_when_the_code_is_invalid() -> None:
    with pytest.raises(InvalidUnitCodeError):
        register(None, directorate(), register_command("IDG0019"))


# --- registration -----------------------------------------------------------------------------


def test_register_creates_the_unit_and_its_template_locations() -> None:
    events = register(None, directorate(), register_command())

    first, *locations = events
    assert isinstance(first, UnitRegistered)
    assert first.municipality == "ΑΘΗΝΑΙΩΝ"
    assert all(isinstance(e, LocationAdded) and e.is_from_template for e in locations)
    kinds = {e.kind for e in locations if isinstance(e, LocationAdded)}
    assert {LocationKind.OFFICE, LocationKind.COMPUTER_LAB, LocationKind.CLASSROOM} <= kinds
    assert LocationKind.LIBRARY in kinds
    assert [e.location_id for e in locations if isinstance(e, LocationAdded)][:2] == [
        f"{SCHOOL}-L1",
        f"{SCHOOL}-L2",
    ]


def test_template_is_found_whatever_the_accents_and_case() -> None:
    assert location_template("Γυμνάσιο") == location_template("ΓΥΜΝΑΣΙΟ")
    assert len(location_template("ΚΑΤΙ ΑΓΝΩΣΤΟ")) == 1  # an office at least


def test_a_holding_node_gets_no_locations() -> None:
    events = register(None, directorate(), register_command(is_holding_node=True))
    assert [type(e) for e in events] == [UnitRegistered]


def test_register_is_rejected_when_the_unit_exists() -> None:
    with pytest.raises(UnitAlreadyRegisteredError):
        register(school(), directorate(), register_command())


def test_register_is_rejected_when_the_parent_is_missing() -> None:
    with pytest.raises(ParentNotFoundError):
        register(None, None, register_command())


@pytest.mark.parametrize(
    "closing", [UnitAbolished(unit_id=DIRECTORATE, abolished_on=ON), None], ids=["abolished", "x"]
)
def test_register_is_rejected_when_the_parent_is_closed(closing: Event | None) -> None:
    if closing is None:
        closing = UnitMerged(unit_id=DIRECTORATE, into_unit_id=OTHER_DIRECTORATE, merged_on=ON)
    parent = unit_of(registered(DIRECTORATE, "0500000"), closing)
    with pytest.raises(ParentClosedError):
        register(None, parent, register_command())


def test_a_root_needs_no_parent() -> None:
    events = register(None, None, register_command("0000000", parent_id=None))
    assert isinstance(events[0], UnitRegistered)
    assert events[0].parent_id is None


def test_register_is_rejected_when_the_name_is_blank() -> None:
    with pytest.raises(InvalidUnitDataError, match="name"):
        register(None, directorate(), register_command(name="   "))


# --- details and renames ----------------------------------------------------------------------


def test_change_details_records_only_what_differs() -> None:
    unit = school()
    events = change_details(
        unit,
        ChangeUnitDetails(
            SCHOOL, changed_on=LATER, municipality="ΑΘΗΝΑΙΩΝ", address="Πατησίων 5", name=unit.name
        ),
    )
    assert events == [UnitDetailsChanged(unit_id=SCHOOL, changed_on=LATER, address="Πατησίων 5")]


def test_change_details_with_nothing_new_changes_nothing() -> None:
    assert change_details(school(), ChangeUnitDetails(SCHOOL, LATER, municipality="ΑΘΗΝΑΙΩΝ")) == []


def test_change_details_with_a_new_name_is_a_rename() -> None:
    events = change_details(school(), ChangeUnitDetails(SCHOOL, LATER, name="2ο ΓΥΜΝΑΣΙΟ"))
    assert events == [UnitRenamed(unit_id=SCHOOL, name="2ο ΓΥΜΝΑΣΙΟ", renamed_on=LATER)]


def test_an_empty_string_clears_a_detail() -> None:
    unit = school()
    events = change_details(unit, ChangeUnitDetails(SCHOOL, LATER, municipality=""))
    assert unit_of(*_events_of(unit), *events).municipality is None


def _events_of(unit: Unit) -> list[Event]:
    return register(None, directorate(), register_command(unit.unit_id))


def test_rename_to_the_same_name_changes_nothing() -> None:
    unit = school()
    assert rename(unit, RenameUnit(SCHOOL, unit.name, LATER)) == []


def test_rename_is_rejected_when_the_unit_is_missing() -> None:
    with pytest.raises(UnitNotFoundError):
        rename(None, RenameUnit(SCHOOL, "Χ", LATER))


def test_rename_is_rejected_when_the_unit_is_abolished() -> None:
    unit = school(UnitAbolished(unit_id=SCHOOL, abolished_on=ON))
    with pytest.raises(UnitClosedError):
        rename(unit, RenameUnit(SCHOOL, "Χ", LATER))


def test_an_act_cannot_take_effect_before_registration() -> None:
    with pytest.raises(EffectiveDateError):
        rename(school(), RenameUnit(SCHOOL, "Χ", date(2020, 1, 1)))


# --- re-parenting -----------------------------------------------------------------------------


def test_reparent_moves_the_unit() -> None:
    events = reparent(
        school(),
        directorate(OTHER_DIRECTORATE),
        [OTHER_DIRECTORATE, "0500000"],
        ReparentUnit(SCHOOL, OTHER_DIRECTORATE, LATER),
    )
    assert events == [
        UnitReparented(
            unit_id=SCHOOL,
            from_parent_id=DIRECTORATE,
            to_parent_id=OTHER_DIRECTORATE,
            reparented_on=LATER,
        )
    ]


def test_reparent_is_rejected_when_the_unit_would_be_its_own_parent() -> None:
    with pytest.raises(UnitCycleError):
        reparent(school(), school(), [SCHOOL], ReparentUnit(SCHOOL, SCHOOL, LATER))


def test_reparent_is_rejected_when_the_new_parent_lies_below_the_unit() -> None:
    below = unit_of(registered("0551099", SCHOOL))
    with pytest.raises(UnitCycleError):
        reparent(
            directorate(),
            below,
            ["0551099", SCHOOL, DIRECTORATE, "0500000"],
            ReparentUnit(DIRECTORATE, "0551099", LATER),
        )


def test_reparent_is_rejected_when_the_new_parent_is_abolished() -> None:
    parent = unit_of(
        registered(OTHER_DIRECTORATE, "0500000"),
        UnitAbolished(unit_id=OTHER_DIRECTORATE, abolished_on=ON),
    )
    with pytest.raises(ParentClosedError):
        reparent(
            school(), parent, [OTHER_DIRECTORATE], ReparentUnit(SCHOOL, OTHER_DIRECTORATE, LATER)
        )


def test_reparent_is_rejected_when_the_new_parent_is_missing() -> None:
    with pytest.raises(ParentNotFoundError):
        reparent(school(), None, [], ReparentUnit(SCHOOL, OTHER_DIRECTORATE, LATER))


def test_reparent_under_the_same_parent_changes_nothing() -> None:
    assert reparent(school(), directorate(), [], ReparentUnit(SCHOOL, DIRECTORATE, LATER)) == []


# --- suspension, reactivation, abolition -------------------------------------------------------


def test_suspend_then_reactivate() -> None:
    suspended = school(*suspend(school(), SuspendUnit(SCHOOL, LATER, "σεισμός")))
    assert suspended.status is UnitStatus.SUSPENDED
    assert reactivate(suspended, ReactivateUnit(SCHOOL, LATER)) == [
        UnitReactivated(unit_id=SCHOOL, reactivated_on=LATER)
    ]


def test_suspend_is_rejected_when_already_suspended() -> None:
    with pytest.raises(UnitNotActiveError):
        suspend(school(UnitSuspended(unit_id=SCHOOL, suspended_on=ON)), SuspendUnit(SCHOOL, ON))


def test_reactivate_is_rejected_when_the_unit_is_active() -> None:
    with pytest.raises(UnitNotSuspendedError):
        reactivate(school(), ReactivateUnit(SCHOOL, LATER))


def test_abolish_is_rejected_when_open_units_lie_below() -> None:
    with pytest.raises(UnitHasOpenChildrenError):
        abolish(directorate(), AbolishUnit(DIRECTORATE, LATER), [SCHOOL])


def test_abolish_closes_the_unit_for_good() -> None:
    events = abolish(school(), AbolishUnit(SCHOOL, LATER, "ΦΕΚ Β' 1/2026"), [])
    abolished = school(*events)
    assert abolished.status is UnitStatus.ABOLISHED
    with pytest.raises(UnitClosedError):
        abolish(abolished, AbolishUnit(SCHOOL, LATER), [])
    with pytest.raises(UnitClosedError):
        reactivate(abolished, ReactivateUnit(SCHOOL, LATER))


# --- merges -----------------------------------------------------------------------------------


def other_school(*more: Event) -> Unit:
    return unit_of(*register(None, directorate(), register_command(OTHER_SCHOOL)), *more)


def test_merge_moves_the_open_locations_to_the_absorbing_unit() -> None:
    merged = school(
        LocationRetired(unit_id=SCHOOL, location_id=f"{SCHOOL}-L6", retired_on=ON),
    )
    decision = merge(
        merged, other_school(), [OTHER_SCHOOL, DIRECTORATE], MergeUnit(SCHOOL, OTHER_SCHOOL, LATER)
    )

    assert decision.merged == [
        UnitMerged(unit_id=SCHOOL, into_unit_id=OTHER_SCHOOL, merged_on=LATER)
    ]
    moved = [e.location_id for e in decision.absorbing if isinstance(e, LocationTransferred)]
    assert moved == [f"{SCHOOL}-L{n}" for n in range(1, 6)]
    absorbing = other_school(*decision.absorbing)
    assert {loc.location_id for loc in absorbing.locations} >= set(moved)
    after = unit_of(*_events_of(merged), *decision.merged)
    assert after.status is UnitStatus.MERGED
    assert after.effective_parent_id == OTHER_SCHOOL


def test_locations_added_after_a_merge_do_not_collide_with_transferred_ones() -> None:
    decision = merge(
        school(), other_school(), [OTHER_SCHOOL], MergeUnit(SCHOOL, OTHER_SCHOOL, LATER)
    )
    absorbing = other_school(*decision.absorbing)
    (added,) = add_location(
        absorbing, AddLocation(OTHER_SCHOOL, "Νέα αίθουσα", LocationKind.CLASSROOM, LATER)
    )
    assert isinstance(added, LocationAdded)
    assert added.location_id == f"{OTHER_SCHOOL}-L7"


def test_merge_is_rejected_into_itself_or_below_itself() -> None:
    with pytest.raises(UnitCycleError):
        merge(school(), school(), [SCHOOL], MergeUnit(SCHOOL, SCHOOL, LATER))
    with pytest.raises(UnitCycleError):
        merge(directorate(), school(), [SCHOOL, DIRECTORATE], MergeUnit(DIRECTORATE, SCHOOL, LATER))


def test_merge_is_rejected_when_the_absorbing_unit_is_not_active() -> None:
    closed = other_school(UnitAbolished(unit_id=OTHER_SCHOOL, abolished_on=ON))
    with pytest.raises(UnitNotActiveError):
        merge(school(), closed, [OTHER_SCHOOL], MergeUnit(SCHOOL, OTHER_SCHOOL, LATER))


def test_merge_is_rejected_when_the_absorbing_unit_is_missing() -> None:
    with pytest.raises(UnitNotFoundError):
        merge(school(), None, [], MergeUnit(SCHOOL, OTHER_SCHOOL, LATER))


def test_a_merged_unit_takes_no_children() -> None:
    merged = school(UnitMerged(unit_id=SCHOOL, into_unit_id=OTHER_SCHOOL, merged_on=ON))
    with pytest.raises(ParentClosedError):
        register(None, merged, register_command("0551099", parent_id=SCHOOL))


# --- support units ----------------------------------------------------------------------------


def keplinet() -> Unit:
    return unit_of(registered(KEPLINET, DIRECTORATE, "ΚΕΠΛΗΝΕΤ"))


def test_a_support_unit_serves_a_school_once() -> None:
    events = start_serving(keplinet(), school(), StartServing(KEPLINET, SCHOOL, LATER))
    assert events == [UnitServingStarted(unit_id=KEPLINET, served_unit_id=SCHOOL, started_on=LATER)]
    serving = unit_of(registered(KEPLINET, DIRECTORATE, "ΚΕΠΛΗΝΕΤ"), *events)
    assert start_serving(serving, school(), StartServing(KEPLINET, SCHOOL, LATER)) == []
    assert stop_serving(serving, StopServing(KEPLINET, SCHOOL, LATER))


def test_only_support_units_serve() -> None:
    with pytest.raises(NotASupportUnitError):
        start_serving(school(), keplinet(), StartServing(SCHOOL, KEPLINET, LATER))


def test_stop_serving_is_rejected_when_not_serving() -> None:
    with pytest.raises(NotServingError):
        stop_serving(keplinet(), StopServing(KEPLINET, SCHOOL, LATER))


# --- locations --------------------------------------------------------------------------------


def test_add_location_is_rejected_when_the_name_is_taken_ignoring_accents() -> None:
    with pytest.raises(LocationNameTakenError):
        add_location(school(), AddLocation(SCHOOL, "ΒΙΒΛΙΟΘΗΚΗ", LocationKind.LIBRARY, LATER))


def test_rename_and_retire_a_location() -> None:
    unit = school()
    renamed = rename_location(unit, RenameLocation(SCHOOL, f"{SCHOOL}-L3", "ΣΕΠΕΗΥ 1", LATER))
    retired = retire_location(unit, RetireLocation(SCHOOL, f"{SCHOOL}-L3", LATER))
    after = unit_of(*_events_of(unit), *renamed, *retired)
    location = after.location(f"{SCHOOL}-L3")
    assert location is not None
    assert (location.name, location.is_retired) == ("ΣΕΠΕΗΥ 1", True)
    with pytest.raises(LocationRetiredError):
        rename_location(after, RenameLocation(SCHOOL, f"{SCHOOL}-L3", "Χ", LATER))


def test_a_missing_location_is_named() -> None:
    with pytest.raises(LocationNotFoundError):
        retire_location(school(), RetireLocation(SCHOOL, f"{SCHOOL}-L99", LATER))


def test_a_suspended_unit_takes_no_new_location() -> None:
    unit = school(UnitSuspended(unit_id=SCHOOL, suspended_on=ON))
    with pytest.raises(UnitNotActiveError):
        add_location(unit, AddLocation(SCHOOL, "Αποθήκη 2", LocationKind.STORAGE, LATER))


# --- grants -----------------------------------------------------------------------------------


def test_grant_then_the_same_grant_again_changes_nothing() -> None:
    grants = replay_grants("u1", [])
    command = GrantRole("u1", SCHOOL, UnitRole.ENTRY)
    events = grant(grants, school(), command, granted_at=AT)
    assert events == [RoleGranted(user_id="u1", unit_id=SCHOOL, role=UnitRole.ENTRY, granted_at=AT)]
    assert grant(replay_grants("u1", events), school(), command, granted_at=AT) == []


def test_granting_again_with_another_recursion_replaces_the_grant() -> None:
    held = replay_grants(
        "u1", [RoleGranted(user_id="u1", unit_id=SCHOOL, role=UnitRole.MANAGE, granted_at=AT)]
    )
    events = grant(held, school(), GrantRole("u1", SCHOOL, UnitRole.MANAGE, True), granted_at=AT)
    assert replay_grants("u1", events).unit_roles[(SCHOOL, UnitRole.MANAGE)] is True


def test_grant_is_rejected_on_a_closed_or_missing_unit() -> None:
    closed = school(UnitAbolished(unit_id=SCHOOL, abolished_on=ON))
    with pytest.raises(UnitClosedError):
        grant(
            replay_grants("u1", []), closed, GrantRole("u1", SCHOOL, UnitRole.ENTRY), granted_at=AT
        )
    with pytest.raises(UnitNotFoundError):
        grant(replay_grants("u1", []), None, GrantRole("u1", SCHOOL, UnitRole.ENTRY), granted_at=AT)


def test_revoke_is_rejected_when_the_role_is_not_held() -> None:
    with pytest.raises(GrantNotFoundError):
        revoke(replay_grants("u1", []), RevokeRole("u1", SCHOOL, UnitRole.CERTIFY), revoked_at=AT)


def test_revoke_a_held_role() -> None:
    held = replay_grants(
        "u1", [RoleGranted(user_id="u1", unit_id=SCHOOL, role=UnitRole.CERTIFY, granted_at=AT)]
    )
    assert revoke(held, RevokeRole("u1", SCHOOL, UnitRole.CERTIFY), revoked_at=AT) == [
        RoleRevoked(user_id="u1", unit_id=SCHOOL, role=UnitRole.CERTIFY, revoked_at=AT)
    ]


def test_only_a_ministry_administrator_grants_global_roles() -> None:
    command = GrantGlobalRole("u2", GlobalRole.AUDITOR)
    with pytest.raises(GrantAuthorityError):
        grant_global(
            replay_grants("u2", []),
            command,
            granted_at=AT,
            grantor_roles=frozenset({GlobalRole.HELPDESK}),
        )
    events = grant_global(
        replay_grants("u2", []),
        command,
        granted_at=AT,
        grantor_roles=frozenset({GlobalRole.MINISTRY_ADMIN}),
    )
    assert events == [GlobalRoleGranted(user_id="u2", role=GlobalRole.AUDITOR, granted_at=AT)]


def test_revoke_global_is_rejected_when_not_held() -> None:
    with pytest.raises(GrantNotFoundError):
        revoke_global(
            replay_grants("u2", []),
            RevokeGlobalRole("u2", GlobalRole.AUDITOR),
            revoked_at=AT,
            grantor_roles=frozenset({GlobalRole.MINISTRY_ADMIN}),
        )
