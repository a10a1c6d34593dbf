"""Golden wire format: every published event type's JSON, and one CloudEvent, pinned in files.

Why this exists: events are contracts between services and with the stored history (STYLE.md
habit 7): a renamed field, a changed enum value or date format silently breaks every consumer and
every old stream. Each registered type has a fully-populated sample here and a golden file in
`golden/`; the test fails when the JSON differs, when a type has no sample or golden file, or when
a golden file names a type that is no longer registered.

Usage::

    .venv/bin/pytest tests/unit/shared/test_event_wire_format.py
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/shared/test_event_wire_format.py   # review the diff

Notes: a golden file is never rewritten unless UPDATE_GOLDEN=1 is set; a changed golden file in a
diff is a changed contract and needs an upcaster (or a new event type) rather than an edit.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal
from uuid import UUID

import pytest

import shared.events
from shared.events import (
    Event,
    EventSchemaTooNewError,
    decode,
    register_upcaster,
    registered_types,
)
from shared.events.compliance import (
    CampaignClosed,
    CampaignDeadlineExtended,
    CampaignOpened,
    ComplianceState,
    ReminderDue,
    ReminderStep,
    ScopeKind,
    UnitComplianceChanged,
)
from shared.events.envelope import Actor, RecordedEvent
from shared.events.equipment import (
    Acquisition,
    BundlePartAdded,
    BundlePartRemoved,
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
    ItemUnbundled,
    ItemWithdrawn,
    ProductApproved,
    ProductMerged,
    ProductProposed,
    ProductRejected,
    SerialNumberClaimed,
    SerialNumberReleased,
    TransferOutcome,
)
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
from shared.hashchain import chain, verify

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CLOUDEVENT_GOLDEN = "cloudevent.RecordedEvent.json"
# Producer modules: types defined elsewhere (test doubles in other test modules) are not contracts.
PUBLISHED_PREFIX = f"{shared.events.__name__}."

AT = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
ON = date(2026, 3, 16)
ADMIN = "user-ministry-admin-01"

ITEM = UUID("7d1c9a52-3f1e-4c8b-9a51-2f0d6c1e8b01")
PART = UUID("7d1c9a52-3f1e-4c8b-9a51-2f0d6c1e8b02")
PRODUCT = UUID("5b0e2c1a-8f3d-4e7a-b6c9-0a1d2e3f4a01")
OTHER_PRODUCT = UUID("5b0e2c1a-8f3d-4e7a-b6c9-0a1d2e3f4a02")
TRANSFER = UUID("c4a7e6d2-1b9f-4a3e-8d5c-6f2b1a0e9d01")
IMPORT = UUID("e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a05")
CERTIFICATION = UUID("9f8e7d6c-5b4a-4c3d-9e2f-1a0b9c8d7e01")
ACQUISITION = Acquisition(
    acquired_on=date(2019, 9, 2),
    funding_programme="ΕΣΠΑ 2014-2020",
    contract="Σύμβαση 12/2019",
    cost_eur=Decimal("1234.50"),
    invoice="ΤΙΜ 000341 / 2019-09-02",
)
EQUIPMENT_SAMPLES: tuple[Event, ...] = (
    ProductProposed(
        product_id=PRODUCT,
        category_id="laptop",
        manufacturer="Lenovo",
        model="ThinkPad L14 Gen 2",
        part_number="20X1S0AB00",
        attributes={"cpu": "Intel Core i5-1135G7", "ram_gb": "8"},
        proposed_by_unit_id="0551010",
        proposed_at=AT,
    ),
    ProductApproved(product_id=PRODUCT, approved_at=AT),
    ProductRejected(product_id=PRODUCT, reason="διπλοεγγραφή", rejected_at=AT),
    ProductMerged(product_id=PRODUCT, into_product_id=OTHER_PRODUCT, merged_at=AT),
    SerialNumberClaimed(
        manufacturer_key="lenovo", serial_number="PF2ABC12", item_id=ITEM, unit_id="0551010"
    ),
    SerialNumberReleased(
        manufacturer_key="lenovo", serial_number="PF2ABC12", item_id=ITEM, unit_id="0551010"
    ),
    ItemRegistered(
        item_id=ITEM,
        unit_id="0551010",
        product_id=PRODUCT,
        category_id="laptop",
        manufacturer="Lenovo",
        model="ThinkPad L14 Gen 2",
        serial_number="PF2ABC12",
        asset_number="ΑΠ-2019/17",
        is_legacy_asset_number=True,
        location_id="0551010-L3",
        acquisition=ACQUISITION,
        warranty_ends_on=date(2024, 9, 1),
        status=ItemStatus.IN_STORAGE,
        is_product_pending_approval=True,
        notes="στο ντουλάπι του εργαστηρίου",
        performed_on=ON,
        import_id=IMPORT,
    ),
    ItemDetailsCorrected(
        item_id=ITEM,
        unit_id="0551010",
        reason="λάθος πληκτρολόγησης",
        performed_on=ON,
        product_id=OTHER_PRODUCT,
        category_id="laptop",
        manufacturer="Lenovo",
        model="ThinkPad L14 Gen 3",
        serial_number="PF2ABC13",
        asset_number="0551010-000017",
        is_legacy_asset_number=False,
        acquisition=ACQUISITION,
        warranty_ends_on=date(2025, 9, 1),
        is_product_pending_approval=False,
        notes="",
        cleared_fields=("notes",),
        import_id=IMPORT,
    ),
    ItemStatusChanged(
        item_id=ITEM,
        unit_id="0551010",
        from_status=ItemStatus.IN_USE,
        to_status=ItemStatus.UNDER_REPAIR,
        reason="δεν ανάβει η οθόνη",
        performed_on=ON,
    ),
    ItemMoved(
        item_id=PART,
        unit_id="0551010",
        from_location_id="0551010-L3",
        to_location_id="0551010-L1",
        performed_on=ON,
        with_bundle_item_id=ITEM,
    ),
    ItemWithdrawn(
        item_id=PART,
        unit_id="0551010",
        from_status=ItemStatus.FOR_WITHDRAWAL,
        decision_reference="Πράξη 5/2026 Συλλόγου Διδασκόντων",
        decided_on=date(2026, 3, 10),
        reason="ασύμφορη επισκευή",
        performed_on=ON,
        with_bundle_item_id=ITEM,
    ),
    BundlePartAdded(
        item_id=ITEM,
        unit_id="0551010",
        part_item_id=PART,
        part_category_id="monitor",
        performed_on=ON,
    ),
    BundlePartRemoved(
        item_id=ITEM,
        unit_id="0551010",
        part_item_id=PART,
        part_category_id="monitor",
        reason="χάλασε",
        performed_on=ON,
    ),
    ItemBundled(item_id=PART, unit_id="0551010", bundle_item_id=ITEM, performed_on=ON),
    ItemUnbundled(item_id=PART, unit_id="0551010", bundle_item_id=ITEM, performed_on=ON),
    ItemTransferDispatched(
        item_id=PART,
        unit_id="0551010",
        transfer_id=TRANSFER,
        to_unit_id="0551020",
        from_location_id="0551010-L3",
        reason="ανακατανομή εξοπλισμού",
        performed_on=ON,
        with_bundle_item_id=ITEM,
    ),
    ItemTransferAccepted(
        item_id=ITEM,
        unit_id="0551020",
        transfer_id=TRANSFER,
        from_unit_id="0551010",
        to_location_id="0551020-L2",
        asset_number="0551020-000004",
        performed_on=ON,
        with_bundle_item_id=PART,
    ),
    ItemTransferRejected(
        item_id=ITEM,
        unit_id="0551010",
        transfer_id=TRANSFER,
        to_unit_id="0551020",
        reason="δεν ζητήθηκε",
        performed_on=ON,
        with_bundle_item_id=PART,
    ),
    ItemTransferCancelled(
        item_id=ITEM,
        unit_id="0551010",
        transfer_id=TRANSFER,
        to_unit_id="0551020",
        reason="λάθος σχολείο",
        performed_on=ON,
        with_bundle_item_id=PART,
    ),
    InventoryTransferOpened(
        unit_id="0551020",
        transfer_id=TRANSFER,
        item_id=ITEM,
        from_unit_id="0551010",
        to_unit_id="0551020",
        performed_on=ON,
    ),
    InventoryTransferClosed(
        unit_id="0551020",
        transfer_id=TRANSFER,
        item_id=ITEM,
        outcome=TransferOutcome.ACCEPTED,
        performed_on=ON,
    ),
    InventoryCertified(
        unit_id="0551010",
        certification_id=CERTIFICATION,
        certified_at=AT,
        certified_on=date(2026, 3, 14),
        signer_id="user-head-0551010",
        item_count=42,
        content_hash="3b" * 32,
        covers_position=1234,
    ),
)
DEADLINE_AT = datetime(2026, 12, 31, 22, 0, tzinfo=UTC)  # 1 Jan 2027 00:00 Athens
DEADLINE_ON = date(2026, 12, 31)
COMPLIANCE_SAMPLES: tuple[Event, ...] = (
    CampaignOpened(
        campaign_id="adhoc-2026-labs",
        title="Έκτακτη απογραφή εργαστηρίων",
        opens_at=AT,
        deadline_at=DEADLINE_AT,
        deadline_on=DEADLINE_ON,
        scope_kind=ScopeKind.REGION,
        scope_value="0500000",
        reason="Πρόγραμμα ψηφιακού μετασχηματισμού",
    ),
    CampaignDeadlineExtended(
        campaign_id="window-2026-12",
        scope_kind=ScopeKind.DIRECTORATE,
        scope_unit_id="0551000",
        deadline_at=datetime(2027, 1, 15, 22, 0, tzinfo=UTC),
        deadline_on=date(2027, 1, 15),
        extended_at=AT,
        reason="Κλειστά σχολεία λόγω χιονόπτωσης",
    ),
    CampaignClosed(campaign_id="adhoc-2026-labs", closed_at=AT, reason="Ολοκληρώθηκε"),
    UnitComplianceChanged(
        unit_id="0551010",
        campaign_id="window-2026-12",
        from_state=ComplianceState.IN_PROGRESS,
        to_state=ComplianceState.CERTIFIED,
        changed_at=AT,
        deadline_at=DEADLINE_AT,
        deadline_on=DEADLINE_ON,
        directorate_id="0551000",
        region_id="0500000",
        certification_id=CERTIFICATION,
        certified_at=AT,
        signer_id="user-head-0551010",
    ),
    ReminderDue(
        unit_id="0551010",
        unit_name="1ο Γυμνάσιο Αθηνών",
        unit_type="ΓΥΜΝΑΣΙΟ",
        mm_id="1000451",
        email="mail@1gym-athin.att.sch.gr",
        campaign_id="window-2026-12",
        campaign_title="Απογραφή Δεκεμβρίου 2026",
        step=ReminderStep.OVERDUE,
        state=ComplianceState.IN_PROGRESS,
        deadline_at=DEADLINE_AT,
        deadline_on=DEADLINE_ON,
        days_left=-2,
        due_on=date(2027, 1, 2),
        recipient_unit_ids=("0551000",),
        directorate_id="0551000",
        directorate_name="ΔΙΕΥΘΥΝΣΗ Δ.Ε. Α΄ ΑΘΗΝΑΣ",
        region_id="0500000",
    ),
)

# One fully-populated instance per published type: every field set, none left at None or default.
SAMPLES: dict[str, Event] = {
    sample.type: sample
    for sample in (
        UnitRegistered(
            unit_id="0551010",
            parent_id="0551000",
            name="1ο Γυμνάσιο Αθηνών «Ο Παρθενών»",
            unit_type="gymnasium",
            mm_id="1000451",
            registered_on=date(1985, 9, 1),
            municipality="ΑΘΗΝΑΙΩΝ",
            address="Λεωφ. Αλεξάνδρας 12",
            postal_code="11473",
            operation_shift="ΗΜΕΡΗΣΙΟ",
            legal_character="ΔΗΜΟΣΙΟ",
            orientation="ΜΟΥΣΙΚΟ",
            phone="2106400000",
            email="mail@1gym-athin.att.sch.gr",
            is_holding_node=True,
        ),
        UnitRenamed(unit_id="0551010", name="1ο Γυμνάσιο Αθηνών Ελ. Βενιζέλου", renamed_on=ON),
        UnitDetailsChanged(
            unit_id="0551010",
            unit_type="model_gymnasium",
            mm_id="1000452",
            changed_on=ON,
            municipality="ΑΘΗΝΑΙΩΝ",
            address="Πατησίων 5",
            postal_code="10433",
            operation_shift="ΕΣΠΕΡΙΝΟ",
            legal_character="ΙΔΙΩΤΙΚΟ",
            orientation="ΚΑΛΛΙΤΕΧΝΙΚΟ",
            phone="2106400001",
            email="",
        ),
        LocationAdded(
            unit_id="0551010",
            location_id="0551010-L2",
            name="Εργαστήριο Πληροφορικής (ΣΕΠΕΗΥ)",
            kind=LocationKind.COMPUTER_LAB,
            added_on=ON,
            is_from_template=True,
        ),
        LocationRenamed(
            unit_id="0551010", location_id="0551010-L2", name="ΣΕΠΕΗΥ 1", renamed_on=ON
        ),
        LocationRetired(
            unit_id="0551010", location_id="0551010-L2", retired_on=ON, reason="Κατεδάφιση"
        ),
        LocationTransferred(
            unit_id="0551010",
            location_id="0551011-L1",
            from_unit_id="0551011",
            name="Γραφείο Διεύθυνσης",
            kind=LocationKind.OFFICE,
            transferred_on=ON,
        ),
        UnitServingStarted(unit_id="0599001", served_unit_id="0551010", started_on=ON),
        UnitServingStopped(unit_id="0599001", served_unit_id="0551010", stopped_on=ON),
        UnitReparented(
            unit_id="0551010", from_parent_id="0551000", to_parent_id="0552000", reparented_on=ON
        ),
        UnitSuspended(unit_id="0551010", suspended_on=ON, reason="Σεισμόπληκτο κτίριο"),
        UnitReactivated(unit_id="0551010", reactivated_on=date(2026, 9, 1)),
        UnitAbolished(
            unit_id="SEK0099", abolished_on=ON, decision_reference="ΦΕΚ Β' 1234/16.03.2026"
        ),
        UnitMerged(
            unit_id="0551011",
            into_unit_id="0551010",
            merged_on=ON,
            decision_reference="ΦΕΚ Β' 1235/16.03.2026",
        ),
        RoleGranted(
            user_id="user-head-0551010",
            unit_id="0551010",
            role=UnitRole.CERTIFY,
            is_recursive=True,
            granted_at=AT,
        ),
        RoleRevoked(
            user_id="user-head-0551010", unit_id="0551010", role=UnitRole.MANAGE, revoked_at=AT
        ),
        GlobalRoleGranted(user_id=ADMIN, role=GlobalRole.AUDITOR, granted_at=AT),
        GlobalRoleRevoked(user_id=ADMIN, role=GlobalRole.HELPDESK, revoked_at=AT),
        *EQUIPMENT_SAMPLES,
        *COMPLIANCE_SAMPLES,
    )
}


def _published_types() -> dict[str, type[Event]]:
    return {
        name: cls
        for name, cls in registered_types().items()
        if cls.__module__.startswith(PUBLISHED_PREFIX)
    }


def _wire(event: Event) -> dict[str, Any]:
    return {"type": event.type, "schema_version": event.schema_version, "data": event.payload()}


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def _check_golden(name: str, document: Any) -> Any:
    """Compare `document` with golden file `name` (write it first under UPDATE_GOLDEN=1)."""
    path = GOLDEN_DIR / name
    if UPDATE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(_dumps(document), encoding="utf-8")
    if not path.exists():
        pytest.fail(f"no golden file {path}: run with UPDATE_GOLDEN=1 once and review the diff")
    golden = json.loads(path.read_text(encoding="utf-8"))
    # Parsed JSON, not text: key order and indentation are not part of the contract.
    assert _dumps(document) == _dumps(golden), f"{name}: the wire format changed"
    return golden


def test_every_published_type_has_a_sample_and_every_sample_a_published_type() -> None:
    assert sorted(SAMPLES) == sorted(_published_types())


def test_every_golden_file_names_a_published_type() -> None:
    stale = sorted(
        path.stem
        for path in GOLDEN_DIR.glob("*.json")
        if path.name != CLOUDEVENT_GOLDEN and path.stem not in _published_types()
    )
    assert stale == [], f"golden files without a registered type (renamed or removed?): {stale}"


@pytest.mark.parametrize("event_type", sorted(_published_types()))
def test_sample_sets_every_field(event_type: str) -> None:
    sample = SAMPLES.get(event_type)
    assert sample is not None, f"{event_type} has no sample in SAMPLES"
    unset = set(type(sample).model_fields) - {"type"} - sample.model_fields_set
    empty = sorted(name for name, value in sample.payload().items() if value is None)
    assert unset == set(), f"{event_type}: sample leaves {sorted(unset)} at their defaults"
    assert empty == [], f"{event_type}: sample leaves {empty} empty"


@pytest.mark.parametrize("event_type", sorted(_published_types()))
def test_wire_format_matches_golden_file(event_type: str) -> None:
    sample = SAMPLES.get(event_type)
    assert sample is not None, f"{event_type} has no sample in SAMPLES"

    _check_golden(f"{event_type}.json", _wire(sample))


@pytest.mark.parametrize("event_type", sorted(_published_types()))
def test_golden_file_decodes_to_the_sample(event_type: str) -> None:
    path = GOLDEN_DIR / f"{event_type}.json"
    if not path.exists():
        pytest.fail(f"no golden file {path}: run with UPDATE_GOLDEN=1 once and review the diff")
    golden = json.loads(path.read_text(encoding="utf-8"))

    decoded = decode(golden["type"], golden["schema_version"], golden["data"])

    assert decoded == SAMPLES[event_type]


def _recorded_sample() -> RecordedEvent:
    event = SAMPLES["UnitRegistered"]
    recorded = RecordedEvent(
        event_id=UUID("0190a8c2-6f1e-7b3a-9d4c-2e5f60718293"),
        source="/units",
        stream_id="unit-0551010",
        version=1,
        position=42,
        type=event.type,
        schema_version=event.schema_version,
        data=event.payload(),
        recorded_at=AT,
        unit_id="0551010",
        actor=Actor(ADMIN, "ministry_admin"),
        correlation_id=UUID("0190a8c2-6f1e-7b3a-9d4c-2e5f60718294"),
        causation_id=UUID("0190a8c2-6f1e-7b3a-9d4c-2e5f60718295"),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        prevhash="0" * 64,
    )
    return replace(recorded, hash=chain(recorded.prevhash, recorded.hashed_attributes(), 1))


def test_cloudevent_structured_form_matches_golden_file() -> None:
    _check_golden(CLOUDEVENT_GOLDEN, _recorded_sample().to_cloudevent())


def test_cloudevent_golden_file_round_trips_and_verifies() -> None:
    path = GOLDEN_DIR / CLOUDEVENT_GOLDEN
    if not path.exists():
        pytest.fail(f"no golden file {path}: run with UPDATE_GOLDEN=1 once and review the diff")
    golden = json.loads(path.read_text(encoding="utf-8"))

    recorded = RecordedEvent.from_cloudevent(golden)

    assert recorded == _recorded_sample()
    assert recorded.event() == SAMPLES["UnitRegistered"]
    assert verify([recorded]) == []


# A throwaway contract at schema version 2 (its module is not a producer module, so it needs no
# golden file): version 1 called the label `name`, version 2 splits it into `label` and `room`.
class WireFormatProbeRecorded(Event):
    """Record a probe reading (test-only event at schema version 2)."""

    SCHEMA_VERSION: ClassVar[int] = 2

    type: Literal["WireFormatProbeRecorded"] = "WireFormatProbeRecorded"
    probe_id: str
    label: str
    room: str


@register_upcaster("WireFormatProbeRecorded", 1)
def _probe_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    upcast = {key: value for key, value in data.items() if key != "name"}
    return {**upcast, "label": data["name"], "room": ""}


# UnitRegistered and UnitDetailsChanged as first published, before their details fields were
# added (with defaults): stored payloads of that shape must keep decoding, unchanged in meaning.
FIRST_PUBLISHED = {
    "UnitRegistered": {
        "mm_id": "1000451",
        "name": "1ο Γυμνάσιο Αθηνών «Ο Παρθενών»",
        "parent_id": "0551000",
        "registered_on": "1985-09-01",
        "unit_id": "0551010",
        "unit_type": "gymnasium",
    },
    "UnitDetailsChanged": {
        "changed_on": "2026-03-16",
        "mm_id": "1000452",
        "unit_id": "0551010",
        "unit_type": "model_gymnasium",
    },
}


@pytest.mark.parametrize("event_type", sorted(FIRST_PUBLISHED))
def test_a_payload_without_the_fields_added_later_still_decodes(event_type: str) -> None:
    data = FIRST_PUBLISHED[event_type]

    decoded = decode(event_type, 1, data)

    assert decoded.model_dump(mode="json", include=set(data)) == data
    added = set(type(decoded).model_fields) - set(data) - {"type"}
    assert all(getattr(decoded, name) in (None, False) for name in added)


def test_older_schema_version_is_upcast_on_decode() -> None:
    decoded = decode("WireFormatProbeRecorded", 1, {"probe_id": "p-1", "name": "Εργαστήριο"})

    assert decoded == WireFormatProbeRecorded(probe_id="p-1", label="Εργαστήριο", room="")
    assert decoded.schema_version == 2


def test_recorded_event_of_an_older_schema_version_is_upcast() -> None:
    recorded = replace(
        _recorded_sample(),
        type="WireFormatProbeRecorded",
        schema_version=1,
        data={"probe_id": "p-1", "name": "Εργαστήριο Πληροφορικής"},
    )

    assert recorded.event() == WireFormatProbeRecorded(
        probe_id="p-1", label="Εργαστήριο Πληροφορικής", room=""
    )


def test_current_schema_version_is_decoded_unchanged() -> None:
    data = {"probe_id": "p-1", "label": "Αίθουσα 3", "room": "Β2"}

    assert decode("WireFormatProbeRecorded", 2, data) == WireFormatProbeRecorded(**data)


def test_newer_schema_version_than_the_code_is_refused() -> None:
    with pytest.raises(EventSchemaTooNewError):
        decode("WireFormatProbeRecorded", 3, {"probe_id": "p-1", "label": "x", "room": "y"})
