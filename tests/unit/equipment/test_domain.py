"""The equipment rules, pure: given events → when command → then events or error (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from uuid import UUID, uuid4

import pytest

from equipment import domain
from equipment.commands import (
    AcceptTransfer,
    ApproveProduct,
    BundlePart,
    CancelTransfer,
    ChangeItemStatus,
    CorrectItemDetails,
    MergeProduct,
    MoveItem,
    ProposeProduct,
    RegisterItem,
    RejectTransfer,
    TransferItem,
    UnbundlePart,
    WithdrawItem,
)
from equipment.domain import Item, KnownUnit, Product, SerialClaim, UnitInventory
from shared.events.base import Event
from shared.events.equipment import (
    Acquisition,
    BundlePartAdded,
    InventoryCertified,
    InventoryTransferClosed,
    InventoryTransferOpened,
    ItemBundled,
    ItemDetailsCorrected,
    ItemMoved,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferCancelled,
    ItemTransferDispatched,
    ItemTransferRejected,
    ItemWithdrawn,
    ProductApproved,
    ProductMerged,
    ProductProposed,
    SerialNumberClaimed,
    SerialNumberReleased,
    TransferOutcome,
)

TODAY = date(2026, 3, 16)
NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
SCHOOL = "0551010"
OTHER = "0551020"
LAB, OFFICE = f"{SCHOOL}-L3", f"{SCHOOL}-L1"
OTHER_LAB = f"{OTHER}-L2"
UNIT = KnownUnit(SCHOOL, "active", frozenset({LAB, OFFICE}))
OTHER_UNIT = KnownUnit(OTHER, "active", frozenset({OTHER_LAB}))
LAPTOP = UUID("00000000-0000-4000-8000-000000000001")
WORKSTATION = UUID("00000000-0000-4000-8000-000000000002")
MONITOR = UUID("00000000-0000-4000-8000-000000000003")
CPU = UUID("00000000-0000-4000-8000-000000000004")


def product(
    product_id: UUID = LAPTOP,
    category_id: str = "laptop",
    *,
    approved: bool = True,
    proposed_by: str | None = None,
) -> Product:
    events: list[tuple[Event, int]] = [
        (
            ProductProposed(
                product_id=product_id,
                category_id=category_id,
                manufacturer="Lenovo",
                model=f"Model {category_id}",
                proposed_by_unit_id=proposed_by,
                proposed_at=NOW,
            ),
            1,
        )
    ]
    if approved:
        events.append((ProductApproved(product_id=product_id, approved_at=NOW), 2))
    found = domain.replay_product(events)
    assert found is not None
    return found


def inventory(unit_id: str = SCHOOL, *, certified_on: date | None = None) -> UnitInventory:
    state = UnitInventory(unit_id)
    if certified_on is None:
        return state
    return domain.evolve_inventory(
        state,
        InventoryCertified(
            unit_id=unit_id,
            certification_id=uuid4(),
            certified_at=NOW,
            certified_on=certified_on,
            signer_id="head",
            item_count=0,
            content_hash="0" * 64,
            covers_position=1,
        ),
        1,
    )


def registration(
    item_id: UUID | None = None,
    *,
    product_id: UUID = LAPTOP,
    serial: str | None = "PF-2abc 12",
    asset_number: str | None = None,
    on: date = date(2026, 1, 10),
    location: str = LAB,
) -> RegisterItem:
    return RegisterItem(
        item_id=item_id or uuid4(),
        unit_id=SCHOOL,
        product_id=product_id,
        location_id=location,
        performed_on=on,
        serial_number=serial,
        asset_number=asset_number,
        acquisition=Acquisition(acquired_on=date(2019, 9, 2), funding_programme="ΕΣΠΑ"),
    )


def claim_for(command: RegisterItem, found: Product) -> SerialClaim | None:
    serial = domain.normalise_serial(command.serial_number)
    return SerialClaim(found.manufacturer_key, serial) if serial else None


def register(command: RegisterItem, found: Product | None = None, **more: object) -> list[Event]:
    found = found or product()
    options: dict[str, object] = {
        "product": found,
        "unit": UNIT,
        "inventory": inventory(),
        "claim": claim_for(command, found),
        "allocated_asset_number": domain.asset_number(SCHOOL, 7),
        "today": TODAY,
        **more,
    }
    return domain.register(None, command, **options)  # type: ignore[arg-type]


def replay(events: Sequence[Event]) -> Item:
    item = domain.replay_item((event, n) for n, event in enumerate(events, start=1))
    assert item is not None
    return item


def registered_item(
    category: str = "laptop", product_id: UUID = LAPTOP, *, serial: str | None = "SN1"
) -> list[Event]:
    found = product(product_id, category)
    command = registration(product_id=product_id, serial=serial)
    return [e for e in register(command, found) if isinstance(e, ItemRegistered)]


# --- registration ---------------------------------------------------------------------------


def test_registration_claims_the_normalised_serial_and_allocates_an_asset_number() -> None:
    command = registration()
    claimed, registered = register(command)
    assert isinstance(claimed, SerialNumberClaimed)
    assert claimed.serial_number == "PF2ABC12"
    assert claimed.manufacturer_key == "lenovo"
    assert domain.stream_of(claimed) == "serial:lenovo:PF2ABC12"
    assert isinstance(registered, ItemRegistered)
    assert registered.asset_number == "0551010-000007"
    assert registered.is_legacy_asset_number is False
    assert registered.category_id == "laptop"
    assert domain.stream_of(registered) == str(command.item_id)


def test_serial_numbers_are_normalised() -> None:
    assert domain.normalise_serial("  ab-12 cd\u201334 ") == "AB12CD34"
    assert domain.normalise_serial(" - ") is None
    assert domain.manufacturer_key("Hewlett-Packard Inc.") == "hewlettpackardinc"


def test_a_legacy_asset_number_is_kept_as_given() -> None:
    events = register(registration(asset_number="ΑΠ-2011/17"))
    assert isinstance(events[-1], ItemRegistered)
    assert events[-1].asset_number == "ΑΠ-2011/17"
    assert events[-1].is_legacy_asset_number is True


def test_registration_is_rejected_when_the_serial_is_taken_by_another_item() -> None:
    command = registration()
    claim = SerialClaim("lenovo", "PF2ABC12", item_id=uuid4(), version=1)
    with pytest.raises(domain.SerialNumberTakenError):
        register(command, claim=claim)


def test_registration_needs_a_serial_when_the_category_uses_them() -> None:
    with pytest.raises(domain.SerialNumberRequiredError):
        register(registration(serial=None))


def test_a_category_without_serial_numbers_registers_without_one() -> None:
    found = product(WORKSTATION, "workstation")
    events = register(registration(product_id=WORKSTATION, serial=None), found)
    assert [type(e) for e in events] == [ItemRegistered]


def test_a_repeated_registration_with_the_same_content_appends_nothing() -> None:
    command = registration()
    item = replay([register(command)[-1]])
    assert domain.register(
        item, command, product=None, unit=None, inventory=inventory(), claim=None,
        allocated_asset_number=None, today=TODAY,
    ) == []  # fmt: skip


def test_a_registration_reusing_an_item_id_with_other_content_is_refused() -> None:
    command = registration()
    item = replay([register(command)[-1]])
    changed = registration(command.item_id, location=OFFICE)
    with pytest.raises(domain.ItemAlreadyRegisteredError):
        domain.register(
            item, changed, product=None, unit=None, inventory=inventory(), claim=None,
            allocated_asset_number=None, today=TODAY,
        )  # fmt: skip


def test_only_approved_products_go_on_new_items() -> None:
    proposed = product(approved=False, proposed_by=OTHER)
    with pytest.raises(domain.ProductNotApprovedError):
        register(registration(), proposed)


def test_a_unit_may_register_with_its_own_proposed_product_shown_pending() -> None:
    proposed = product(approved=False, proposed_by=SCHOOL)
    events = register(registration(), proposed)
    assert isinstance(events[-1], ItemRegistered)
    assert events[-1].is_product_pending_approval is True


def test_a_merged_product_is_refused_naming_its_replacement() -> None:
    found = product()
    merged = domain.evolve_product(
        found, ProductMerged(product_id=LAPTOP, into_product_id=MONITOR, merged_at=NOW), 3
    )
    with pytest.raises(domain.ProductMergedError) as caught:
        register(registration(), merged)
    assert caught.value.into_product_id == MONITOR


@pytest.mark.parametrize(
    ("on", "certified_on", "error"),
    [
        (date(2026, 3, 17), None, domain.ActDatedInFutureError),
        (date(2025, 12, 20), date(2025, 12, 31), domain.ActBeforeCertificationError),
    ],
)
def test_registration_dates_are_checked(
    on: date, certified_on: date | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        register(registration(on=on), inventory=inventory(certified_on=certified_on))


def test_an_act_on_the_day_of_the_certification_is_allowed() -> None:
    events = register(
        registration(on=date(2025, 12, 31)), inventory=inventory(certified_on=date(2025, 12, 31))
    )
    assert isinstance(events[-1], ItemRegistered)


def test_registration_needs_an_open_location_of_an_active_unit() -> None:
    with pytest.raises(domain.LocationNotFoundError):
        register(registration(location=OTHER_LAB))
    with pytest.raises(domain.UnitNotActiveError):
        register(registration(), unit=KnownUnit(SCHOOL, "suspended", frozenset({LAB})))
    with pytest.raises(domain.UnitNotFoundError):
        register(registration(), unit=None)


# --- corrections and status -----------------------------------------------------------------


def test_a_correction_records_only_what_differs_and_moves_the_serial_claim() -> None:
    item = replay(registered_item())
    command = CorrectItemDetails(
        item.item_id, "λάθος", TODAY, serial_number="sn-2", notes=item.notes
    )
    old = SerialClaim("lenovo", "SN1", item.item_id, 1)
    new = SerialClaim("lenovo", "SN2")
    events = domain.correct(
        item, command, product=None, old_claim=old, new_claim=new, inventory=inventory(),
        today=TODAY,
    )  # fmt: skip
    assert [type(e) for e in events] == [
        SerialNumberReleased,
        SerialNumberClaimed,
        ItemDetailsCorrected,
    ]
    corrected = events[-1]
    assert isinstance(corrected, ItemDetailsCorrected)
    assert corrected.serial_number == "SN2"
    assert corrected.notes is None
    assert replay([*registered_item(), corrected]).serial_number == "SN2"


def test_a_correction_that_changes_nothing_appends_nothing() -> None:
    item = replay(registered_item())
    command = CorrectItemDetails(item.item_id, "τίποτα", TODAY, serial_number="sn1")
    assert domain.correct(
        item, command, product=None, old_claim=None, new_claim=None, inventory=inventory(),
        today=TODAY,
    ) == []  # fmt: skip


def test_a_correction_needs_a_reason() -> None:
    item = replay(registered_item())
    with pytest.raises(domain.InvalidItemDataError) as caught:
        domain.correct(
            item, CorrectItemDetails(item.item_id, " ", TODAY, notes="x"), product=None,
            old_claim=None, new_claim=None, inventory=inventory(), today=TODAY,
        )  # fmt: skip
    assert caught.value.field_name == "reason"


def test_status_changes_with_a_reason() -> None:
    item = replay(registered_item())
    command = ChangeItemStatus(item.item_id, ItemStatus.UNDER_REPAIR, "οθόνη", TODAY)
    (event,) = domain.change_status(item, command, inventory=inventory(), today=TODAY)
    assert isinstance(event, ItemStatusChanged)
    assert (event.from_status, event.to_status) == (ItemStatus.IN_USE, ItemStatus.UNDER_REPAIR)


def test_the_same_status_again_changes_nothing() -> None:
    item = replay(registered_item())
    command = ChangeItemStatus(item.item_id, ItemStatus.IN_USE, "ok", TODAY)
    assert domain.change_status(item, command, inventory=inventory(), today=TODAY) == []


def test_withdrawal_is_not_a_status_change() -> None:
    item = replay(registered_item())
    command = ChangeItemStatus(item.item_id, ItemStatus.WITHDRAWN, "παλιό", TODAY)
    with pytest.raises(domain.StatusChangeError):
        domain.change_status(item, command, inventory=inventory(), today=TODAY)


def test_an_act_cannot_be_dated_before_the_items_last_act() -> None:
    item = replay(registered_item())
    command = ChangeItemStatus(item.item_id, ItemStatus.LOST, "χάθηκε", date(2026, 1, 9))
    with pytest.raises(domain.ActBeforeItemHistoryError):
        domain.change_status(item, command, inventory=inventory(), today=TODAY)


def test_a_withdrawn_item_takes_no_more_acts() -> None:
    events = registered_item()
    item = replay(events)
    withdrawal = WithdrawItem(item.item_id, "Πράξη 5/2026", date(2026, 3, 10), TODAY, "παλιό")
    (withdrawn,) = domain.withdraw(item, withdrawal, parts=[], inventory=inventory(), today=TODAY)
    assert isinstance(withdrawn, ItemWithdrawn)
    gone = replay([*events, withdrawn])
    assert gone.status is ItemStatus.WITHDRAWN
    assert domain.withdraw(gone, withdrawal, parts=[], inventory=inventory(), today=TODAY) == []
    with pytest.raises(domain.ItemWithdrawnError):
        domain.move(
            gone, MoveItem(gone.item_id, OFFICE, TODAY), unit=UNIT, parts=[],
            inventory=inventory(), today=TODAY,
        )  # fmt: skip
    with pytest.raises(domain.ItemWithdrawnError):
        domain.change_status(
            gone, ChangeItemStatus(gone.item_id, ItemStatus.IN_USE, "x", TODAY),
            inventory=inventory(), today=TODAY,
        )  # fmt: skip


def test_a_withdrawal_follows_its_decision() -> None:
    item = replay(registered_item())
    command = WithdrawItem(item.item_id, "Πράξη 5", date(2026, 3, 12), date(2026, 3, 11))
    with pytest.raises(domain.InvalidItemDataError):
        domain.withdraw(item, command, parts=[], inventory=inventory(), today=TODAY)


# --- moves and bundles ----------------------------------------------------------------------


def test_move_is_rejected_when_the_location_is_not_the_units() -> None:
    item = replay(registered_item())
    with pytest.raises(domain.LocationNotFoundError):
        domain.move(
            item, MoveItem(item.item_id, OTHER_LAB, TODAY), unit=UNIT, parts=[],
            inventory=inventory(), today=TODAY,
        )  # fmt: skip


def test_a_move_to_where_the_item_is_changes_nothing() -> None:
    item = replay(registered_item())
    assert domain.move(
        item, MoveItem(item.item_id, LAB, TODAY), unit=UNIT, parts=[], inventory=inventory(),
        today=TODAY,
    ) == []  # fmt: skip


def bundle_with_monitor() -> tuple[list[Event], list[Event]]:
    bundle_events = registered_item("workstation", WORKSTATION, serial=None)
    monitor_events = registered_item("monitor", MONITOR, serial="MON1")
    bundle, monitor = replay(bundle_events), replay(monitor_events)
    events = domain.bundle(
        bundle, monitor, BundlePart(bundle.item_id, monitor.item_id, TODAY),
        inventory=inventory(), today=TODAY,
    )  # fmt: skip
    return bundle_events + events[:1], monitor_events + events[1:]


def test_a_new_workstation_is_flagged_until_it_has_its_required_parts() -> None:
    bundle = replay(registered_item("workstation", WORKSTATION, serial=None))
    assert bundle.has_missing_parts
    assert bundle.missing_parts() == {"cpu": 1, "monitor": 1}
    bundle_events, _ = bundle_with_monitor()
    assert replay(bundle_events).missing_parts() == {"cpu": 1}


def test_bundling_records_it_on_both_items() -> None:
    bundle_events, monitor_events = bundle_with_monitor()
    assert isinstance(bundle_events[-1], BundlePartAdded)
    assert isinstance(monitor_events[-1], ItemBundled)
    bundle, monitor = replay(bundle_events), replay(monitor_events)
    assert monitor.bundle_item_id == bundle.item_id
    assert dict(bundle.parts) == {monitor.item_id: "monitor"}


def test_a_laptop_is_not_a_bundle() -> None:
    laptop, monitor = replay(registered_item()), replay(registered_item("monitor", MONITOR))
    with pytest.raises(domain.BundleRuleError):
        domain.bundle(
            laptop, monitor, BundlePart(laptop.item_id, monitor.item_id, TODAY),
            inventory=inventory(), today=TODAY,
        )  # fmt: skip


def test_a_bundle_takes_only_the_parts_its_category_lists() -> None:
    bundle = replay(registered_item("workstation", WORKSTATION, serial=None))
    laptop = replay(registered_item())
    with pytest.raises(domain.BundleRuleError, match="takes no laptop"):
        domain.bundle(
            bundle, laptop, BundlePart(bundle.item_id, laptop.item_id, TODAY),
            inventory=inventory(), today=TODAY,
        )  # fmt: skip


def test_a_bundle_holds_at_most_the_maximum_of_a_part() -> None:
    bundle = replay(registered_item("workstation", WORKSTATION, serial=None))
    cpus = [replay(registered_item("cpu", CPU, serial=f"C{n}")) for n in range(2)]
    events = domain.bundle(
        bundle, cpus[0], BundlePart(bundle.item_id, cpus[0].item_id, TODAY),
        inventory=inventory(), today=TODAY,
    )  # fmt: skip
    fuller = domain.evolve_item(bundle, events[0], bundle.version + 1)  # type: ignore[arg-type]
    with pytest.raises(domain.BundleRuleError, match="at most 1"):
        domain.bundle(
            fuller, cpus[1], BundlePart(bundle.item_id, cpus[1].item_id, TODAY),
            inventory=inventory(), today=TODAY,
        )  # fmt: skip


def test_a_part_sits_in_one_bundle_and_moves_only_with_it() -> None:
    bundle_events, monitor_events = bundle_with_monitor()
    bundle, monitor = replay(bundle_events), replay(monitor_events)
    other = replay(registered_item("workstation", WORKSTATION, serial=None))
    with pytest.raises(domain.BundleRuleError, match="already in bundle"):
        domain.bundle(
            other, monitor, BundlePart(other.item_id, monitor.item_id, TODAY),
            inventory=inventory(), today=TODAY,
        )  # fmt: skip
    with pytest.raises(domain.PartInBundleError):
        domain.move(
            monitor, MoveItem(monitor.item_id, OFFICE, TODAY), unit=UNIT, parts=[],
            inventory=inventory(), today=TODAY,
        )  # fmt: skip
    moved = domain.move(
        bundle, MoveItem(bundle.item_id, OFFICE, TODAY), unit=UNIT, parts=[monitor],
        inventory=inventory(), today=TODAY,
    )  # fmt: skip
    assert [(type(e), getattr(e, "item_id", None)) for e in moved] == [
        (ItemMoved, bundle.item_id),
        (ItemMoved, monitor.item_id),
    ]
    part_move = moved[1]
    assert isinstance(part_move, ItemMoved)
    assert part_move.with_bundle_item_id == bundle.item_id


def test_unbundling_frees_the_part() -> None:
    bundle_events, monitor_events = bundle_with_monitor()
    bundle, monitor = replay(bundle_events), replay(monitor_events)
    events = domain.unbundle(
        bundle, monitor, UnbundlePart(bundle.item_id, monitor.item_id, TODAY, "χάλασε"),
        inventory=inventory(), today=TODAY,
    )  # fmt: skip
    assert replay([*monitor_events, events[1]]).bundle_item_id is None
    assert replay([*bundle_events, events[0]]).has_missing_parts


def test_a_bundle_inside_a_bundle_takes_no_parts() -> None:
    rack = replay(registered_item("rack", uuid4(), serial=None))
    server_events = registered_item("server", uuid4(), serial="SRV1")
    server = replay(server_events)
    added = domain.bundle(
        rack, server, BundlePart(rack.item_id, server.item_id, TODAY), inventory=inventory(),
        today=TODAY,
    )  # fmt: skip
    inside = replay([*server_events, added[1]])
    disk = replay(registered_item("hard_disk", uuid4(), serial="D1"))
    with pytest.raises(domain.BundleRuleError, match="inside another bundle"):
        domain.bundle(
            inside, disk, BundlePart(inside.item_id, disk.item_id, TODAY), inventory=inventory(),
            today=TODAY,
        )  # fmt: skip


# --- transfers ------------------------------------------------------------------------------

TRANSFER = UUID("00000000-0000-4000-8000-0000000000aa")


def dispatched(
    events: list[Event] | None = None,
    *,
    destination_inventory: UnitInventory | None = None,
) -> tuple[list[Event], list[Event]]:
    events = events or registered_item()
    item = replay(events)
    decided = domain.dispatch(
        item,
        TransferItem(item.item_id, OTHER, TRANSFER, TODAY, "ανακατανομή"),
        parts=[],
        source=UNIT,
        destination=OTHER_UNIT,
        source_inventory=inventory(),
        destination_inventory=destination_inventory or inventory(OTHER),
        today=TODAY,
    )
    return [*events, *(e for e in decided if isinstance(e, ItemTransferDispatched))], decided


def test_dispatch_puts_the_item_in_transit_and_marks_both_inventories() -> None:
    events, decided = dispatched()
    assert [type(e) for e in decided] == [
        ItemTransferDispatched,
        InventoryTransferOpened,
        InventoryTransferOpened,
    ]
    assert [domain.stream_of(e) for e in decided[1:]] == [
        f"inventory:{SCHOOL}",
        f"inventory:{OTHER}",
    ]
    item = replay(events)
    assert item.is_in_transit
    assert item.unit_id == SCHOOL
    source = domain.evolve_inventory(inventory(), decided[1], 1)
    assert source.has_pending_transfers


def test_an_item_in_transit_takes_no_other_act() -> None:
    events, _ = dispatched()
    item = replay(events)
    with pytest.raises(domain.ItemInTransitError):
        domain.move(
            item, MoveItem(item.item_id, OFFICE, TODAY), unit=UNIT, parts=[],
            inventory=inventory(), today=TODAY,
        )  # fmt: skip
    with pytest.raises(domain.ItemInTransitError):
        domain.change_status(
            item, ChangeItemStatus(item.item_id, ItemStatus.LOST, "x", TODAY),
            inventory=inventory(), today=TODAY,
        )  # fmt: skip


def test_the_same_dispatch_again_changes_nothing() -> None:
    events, _ = dispatched()
    item = replay(events)
    again = domain.dispatch(
        item, TransferItem(item.item_id, OTHER, TRANSFER, TODAY), parts=[], source=UNIT,
        destination=OTHER_UNIT, source_inventory=inventory(),
        destination_inventory=inventory(OTHER), today=TODAY,
    )  # fmt: skip
    assert again == []


def test_a_transfer_to_the_same_unit_is_refused() -> None:
    item = replay(registered_item())
    with pytest.raises(domain.TransferToSameUnitError):
        domain.dispatch(
            item, TransferItem(item.item_id, SCHOOL, TRANSFER, TODAY), parts=[], source=UNIT,
            destination=UNIT, source_inventory=inventory(), destination_inventory=inventory(),
            today=TODAY,
        )  # fmt: skip


def test_acceptance_moves_the_item_with_its_identity_and_acquisition() -> None:
    events, _ = dispatched()
    item = replay(events)
    decided = domain.accept(
        item, AcceptTransfer(item.item_id, OTHER_LAB, TODAY), parts=[], destination=OTHER_UNIT,
        source_inventory=inventory(), destination_inventory=inventory(OTHER),
        allocated_asset_number=None, today=TODAY,
    )  # fmt: skip
    assert [type(e) for e in decided] == [
        ItemTransferAccepted,
        InventoryTransferClosed,
        InventoryTransferClosed,
    ]
    closed = decided[1]
    assert isinstance(closed, InventoryTransferClosed)
    assert closed.outcome is TransferOutcome.ACCEPTED
    moved = replay([*events, decided[0]])
    assert (moved.unit_id, moved.location_id, moved.is_in_transit) == (OTHER, OTHER_LAB, False)
    assert (moved.item_id, moved.serial_number, moved.acquisition) == (
        item.item_id,
        item.serial_number,
        item.acquisition,
    )
    assert moved.asset_number == item.asset_number


def test_acceptance_may_give_the_destinations_asset_number() -> None:
    events, _ = dispatched()
    item = replay(events)
    (accepted, *_) = domain.accept(
        item, AcceptTransfer(item.item_id, OTHER_LAB, TODAY, assign_asset_number=True), parts=[],
        destination=OTHER_UNIT, source_inventory=inventory(),
        destination_inventory=inventory(OTHER), allocated_asset_number="0551020-000003",
        today=TODAY,
    )  # fmt: skip
    assert replay([*events, accepted]).asset_number == "0551020-000003"


def test_acceptance_needs_a_location_of_the_destination() -> None:
    events, _ = dispatched()
    item = replay(events)
    with pytest.raises(domain.LocationNotFoundError):
        domain.accept(
            item, AcceptTransfer(item.item_id, LAB, TODAY), parts=[], destination=OTHER_UNIT,
            source_inventory=inventory(), destination_inventory=inventory(OTHER),
            allocated_asset_number=None, today=TODAY,
        )  # fmt: skip


def test_acceptance_cannot_be_dated_before_the_dispatch() -> None:
    events, _ = dispatched()
    item = replay(events)
    with pytest.raises(domain.ActBeforeItemHistoryError):
        domain.accept(
            item, AcceptTransfer(item.item_id, OTHER_LAB, date(2026, 3, 15)), parts=[],
            destination=OTHER_UNIT, source_inventory=inventory(),
            destination_inventory=inventory(OTHER), allocated_asset_number=None, today=TODAY,
        )  # fmt: skip


def test_dispatch_cannot_be_dated_before_the_destinations_last_certification() -> None:
    with pytest.raises(domain.ActBeforeCertificationError) as caught:
        dispatched(destination_inventory=inventory(OTHER, certified_on=date(2026, 3, 17)))
    assert caught.value.unit_id == OTHER


@pytest.mark.parametrize(
    ("decide", "command_type", "event_type", "outcome"),
    [
        (domain.reject, RejectTransfer, ItemTransferRejected, TransferOutcome.REJECTED),
        (domain.cancel, CancelTransfer, ItemTransferCancelled, TransferOutcome.CANCELLED),
    ],
)
def test_a_rejected_or_cancelled_transfer_returns_the_item_to_the_source(
    decide: object, command_type: type, event_type: type, outcome: TransferOutcome
) -> None:
    events, _ = dispatched()
    item = replay(events)
    decided = decide(  # type: ignore[operator]
        item, command_type(item.item_id, TODAY, "λάθος"), parts=[], source_inventory=inventory(),
        destination_inventory=inventory(OTHER), today=TODAY,
    )  # fmt: skip
    assert isinstance(decided[0], event_type)
    assert {e.outcome for e in decided[1:]} == {outcome}
    back = replay([*events, decided[0]])  # type: ignore[list-item]  # an Event, from `decide`
    assert (back.unit_id, back.location_id, back.is_in_transit) == (SCHOOL, LAB, False)


def test_closing_a_transfer_needs_one_pending() -> None:
    item = replay(registered_item())
    with pytest.raises(domain.ItemNotInTransitError):
        domain.cancel(
            item, CancelTransfer(item.item_id, TODAY), parts=[], source_inventory=inventory(),
            destination_inventory=inventory(OTHER), today=TODAY,
        )  # fmt: skip


def test_a_bundle_travels_with_its_parts() -> None:
    bundle_events, monitor_events = bundle_with_monitor()
    bundle, monitor = replay(bundle_events), replay(monitor_events)
    decided = domain.dispatch(
        bundle, TransferItem(bundle.item_id, OTHER, TRANSFER, TODAY), parts=[monitor],
        source=UNIT, destination=OTHER_UNIT, source_inventory=inventory(),
        destination_inventory=inventory(OTHER), today=TODAY,
    )  # fmt: skip
    sent = [e for e in decided if isinstance(e, ItemTransferDispatched)]
    assert [e.item_id for e in sent] == [bundle.item_id, monitor.item_id]
    assert sent[1].with_bundle_item_id == bundle.item_id
    assert len([e for e in decided if isinstance(e, InventoryTransferOpened)]) == 2
    in_transit = replay([*monitor_events, sent[1]])
    accepted = domain.accept(
        replay([*bundle_events, sent[0]]), AcceptTransfer(bundle.item_id, OTHER_LAB, TODAY),
        parts=[in_transit], destination=OTHER_UNIT, source_inventory=inventory(),
        destination_inventory=inventory(OTHER), allocated_asset_number=None, today=TODAY,
    )  # fmt: skip
    assert [e.item_id for e in accepted if isinstance(e, ItemTransferAccepted)] == [
        bundle.item_id,
        monitor.item_id,
    ]


def test_by_stream_groups_events_keeping_their_order() -> None:
    _, decided = dispatched()
    grouped = domain.by_stream(decided)
    assert [stream for stream, _ in grouped] == [
        str(decided[0].item_id),  # type: ignore[attr-defined]
        f"inventory:{SCHOOL}",
        f"inventory:{OTHER}",
    ]


def test_inventory_state_tracks_pending_transfers_and_certification() -> None:
    _, decided = dispatched()
    state = domain.evolve_inventory(inventory(), decided[1], 1)
    assert set(state.pending_transfers) == {TRANSFER}
    closed = InventoryTransferClosed(
        unit_id=SCHOOL, transfer_id=TRANSFER, item_id=uuid4(),
        outcome=TransferOutcome.CANCELLED, performed_on=TODAY,
    )  # fmt: skip
    assert not domain.evolve_inventory(state, closed, 2).has_pending_transfers
    assert inventory(certified_on=TODAY).last_certified_on == TODAY


# --- products -------------------------------------------------------------------------------


def test_a_ministry_product_is_approved_at_once_and_a_retry_changes_nothing() -> None:
    command = ProposeProduct(uuid4(), "printer", " HP ", "LaserJet  M404", is_approved=True)
    events = domain.propose_product(None, command, now=NOW)
    assert [type(e) for e in events] == [ProductProposed, ProductApproved]
    found = domain.replay_product((e, n) for n, e in enumerate(events, start=1))
    assert found is not None
    assert (found.manufacturer, found.model, found.status) == (
        "HP",
        "LaserJet M404",
        domain.ProductStatus.APPROVED,
    )
    assert domain.propose_product(found, command, now=NOW) == []


def test_a_product_needs_a_category_that_takes_products() -> None:
    with pytest.raises(domain.CategoryNotFoundError):
        domain.propose_product(None, ProposeProduct(uuid4(), "computers", "HP", "x"), now=NOW)
    with pytest.raises(domain.CategoryNotFoundError):
        domain.propose_product(None, ProposeProduct(uuid4(), "toaster", "HP", "x"), now=NOW)


def test_approval_and_merge_rules() -> None:
    proposed = product(approved=False, proposed_by=SCHOOL)
    assert len(domain.approve_product(proposed, ApproveProduct(LAPTOP), now=NOW)) == 1
    target = product(MONITOR, "laptop")
    (merged,) = domain.merge_product(proposed, target, MergeProduct(LAPTOP, MONITOR), now=NOW)
    assert isinstance(merged, ProductMerged)
    other_category = product(CPU, "cpu")
    with pytest.raises(domain.ProductStateError):
        domain.merge_product(proposed, other_category, MergeProduct(LAPTOP, CPU), now=NOW)
    unapproved = product(CPU, "laptop", approved=False)
    with pytest.raises(domain.ProductStateError):
        domain.merge_product(proposed, unapproved, MergeProduct(LAPTOP, CPU), now=NOW)
