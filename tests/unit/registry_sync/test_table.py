"""The registry table's rules (DESIGN.md "Rules for an item"), its content hash and its payload."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from registry_sync.mapping import MAPPING_VERSION, Mapping, Outcome
from registry_sync.table import (
    Excluded,
    InvalidPayloadError,
    ItemFacts,
    NotReported,
    Row,
    Table,
    UnknownItemStatusError,
    build_table,
    build_table_from_groups,
    content_hash,
    rows_from_payload,
    to_payload,
)
from shared.events.equipment import ItemStatus

DESKTOP = "Επιτραπέζιοι υπολογιστές"
LAPTOP = "Φορητοί υπολογιστές"
EMPTY_HASH = hashlib.sha256(b"[]").hexdigest()


def item(
    category_id: str = "laptop",
    *,
    manufacturer: str = "DELL",
    model: str = "Latitude 3520",
    year: int | None = 2021,
    status: str = "in_use",
    in_bundle: bool = False,
) -> ItemFacts:
    return ItemFacts(category_id, manufacturer, model, year, status, in_bundle)


def laptop_row(quantity: int = 1, *, in_operation: bool = True, year: int | None = 2021) -> Row:
    return Row("LAPTOP", LAPTOP, "DELL", "Latitude 3520", year, in_operation, quantity)


# --- status -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "in_operation"),
    [
        (ItemStatus.IN_USE, True),
        (ItemStatus.IN_STORAGE, True),
        (ItemStatus.OUT_OF_ORDER, False),
        (ItemStatus.UNDER_REPAIR, False),
        (ItemStatus.FOR_WITHDRAWAL, False),
    ],
)
def test_held_statuses_are_counted_in_or_out_of_operation(
    status: ItemStatus, in_operation: bool
) -> None:
    table = build_table([item(status=status.value)])
    assert table.rows == (laptop_row(in_operation=in_operation),)
    assert table.excluded_by_status == ()
    assert table.not_reported == ()


@pytest.mark.parametrize("status", [ItemStatus.WITHDRAWN, ItemStatus.LOST])
def test_items_not_held_are_left_out_and_counted_by_status(status: ItemStatus) -> None:
    table = build_table([item(status=status.value), item(status=status.value)])
    assert table.rows == ()
    assert table.excluded_by_status == (Excluded(status.value, 2),)
    assert table.item_count == 2


def test_status_is_decided_before_category() -> None:
    table = build_table(
        [item("cpu", status="lost", in_bundle=True), item("rack", status="withdrawn")]
    )
    assert table.not_reported == ()
    assert table.excluded_by_status == (Excluded("lost", 1), Excluded("withdrawn", 1))


def test_every_item_status_has_a_rule() -> None:
    for status in ItemStatus:
        build_table([item(status=status.value)])  # none raises


def test_an_unknown_status_is_an_error_not_a_guess() -> None:
    with pytest.raises(UnknownItemStatusError):
        build_table([item(status="stolen")])


def test_working_and_broken_pieces_of_one_model_are_two_rows() -> None:
    table = build_table([item(), item(), item(status="out_of_order")])
    assert table.rows == (laptop_row(1, in_operation=False), laptop_row(2))


# --- components and bundles ---------------------------------------------------------------------


@pytest.mark.parametrize("category_id", ["cpu", "ram", "hard_disk", "monitor"])
def test_components_inside_a_bundle_are_not_reported(category_id: str) -> None:
    table = build_table([item(category_id, in_bundle=True)] * 3)
    assert table.rows == ()
    assert table.not_reported == (NotReported("component_of_bundle", category_id, 3),)


@pytest.mark.parametrize("category_id", ["cpu", "ram", "hard_disk"])
def test_stand_alone_cpu_ram_and_disks_are_never_reported_alone(category_id: str) -> None:
    table = build_table([item(category_id, in_bundle=False)])
    assert table.rows == ()
    assert table.not_reported == (NotReported("component_of_bundle", category_id, 1),)


def test_a_stand_alone_monitor_is_a_monitor_row() -> None:
    table = build_table([item("monitor", manufacturer="lg", model="24MK400H", in_bundle=False)])
    assert table.rows == (Row("MONITOR", "Οθόνες", "LG", "24MK400H", 2021, True, 1),)
    assert table.not_reported == ()


def test_a_workstation_is_one_desktop_and_its_parts_are_not_counted() -> None:
    bundle = [
        item("workstation", manufacturer="HP", model="ProDesk 400 G6", in_bundle=False),
        item("cpu", in_bundle=True),
        item("monitor", in_bundle=True),
        item("monitor", in_bundle=True),
        item("ram", in_bundle=True),
        item("hard_disk", in_bundle=True),
    ]
    table = build_table(bundle * 2)
    assert table.rows == (Row("DESKTOP", DESKTOP, "HP", "ProDesk 400 G6", 2021, True, 2),)
    assert table.not_reported == (
        NotReported("component_of_bundle", "cpu", 2),
        NotReported("component_of_bundle", "hard_disk", 2),
        NotReported("component_of_bundle", "monitor", 4),
        NotReported("component_of_bundle", "ram", 2),
    )
    assert table.item_count == 12


def test_laptops_of_a_mobile_lab_are_counted_and_the_cart_is_not() -> None:
    table = build_table(
        [item("mobile_lab", manufacturer="", model="")]
        + [item("laptop", in_bundle=True)] * 20
        + [item("access_point", manufacturer="Cisco Systems", model="AIR-AP", in_bundle=True)]
    )
    assert table.rows == (
        laptop_row(20),
        Row("NETWORK", "Δικτυακός εξοπλισμός", "CISCO", "AIR-AP", 2021, True, 1),
    )
    assert table.not_reported == (NotReported("passive_infrastructure", "mobile_lab", 1),)


def test_a_rack_is_passive_and_its_switches_and_servers_count() -> None:
    table = build_table(
        [
            item("rack"),
            item("patch_panel", in_bundle=True),
            item("switch_hub", manufacturer="HP", model="1920", in_bundle=True),
            item("server", manufacturer="Dell Inc.", model="R240", in_bundle=True),
            item("ram", in_bundle=True),
        ]
    )
    assert [(r.category_code, r.manufacturer) for r in table.rows] == [
        ("NETWORK", "HP"),
        ("SERVER", "DELL"),
    ]
    assert table.not_reported == (
        NotReported("component_of_bundle", "ram", 1),
        NotReported("passive_infrastructure", "patch_panel", 1),
        NotReported("passive_infrastructure", "rack", 1),
    )


def test_other_peripherals_are_reported_under_one_code() -> None:
    table = build_table(
        [
            item("projector", manufacturer="Epson", model="EB-X05"),
            item("interactive_system", manufacturer="Epson", model="EB-X05"),
            item("webcam", manufacturer="Logitech", model="C270"),
        ]
    )
    assert table.rows == (
        Row("OTHER_PERIPHERAL", "Λοιπά περιφερειακά", "EPSON", "EB-X05", 2021, True, 2),
        Row("OTHER_PERIPHERAL", "Λοιπά περιφερειακά", "LOGITECH", "C270", 2021, True, 1),
    )


# --- unknown categories -------------------------------------------------------------------------


def test_an_unknown_category_is_mapping_pending_and_never_blocks_the_report() -> None:
    table = build_table([item("holographic_projector"), item("holographic_projector"), item()])
    assert table.rows == (laptop_row(),)
    assert table.not_reported == (NotReported("mapping_pending", "holographic_projector", 2),)


def test_a_mapping_without_monitors_sends_stand_alone_monitors_to_mapping_pending() -> None:
    mapping = Mapping("test", {"laptop": Outcome("map", "LAPTOP", LAPTOP, None)})
    table = build_table([item("monitor"), item("monitor", in_bundle=True), item()], mapping)
    assert table.rows == (laptop_row(),)
    assert table.not_reported == (
        NotReported("component_of_bundle", "monitor", 1),
        NotReported("mapping_pending", "monitor", 1),
    )


def test_a_group_node_is_no_registry_category() -> None:
    table = build_table([item("computers")])
    assert table.not_reported == (NotReported("no_registry_category", "computers", 1),)


# --- normalisation, grouping and sorting --------------------------------------------------------


def test_manufacturer_spellings_and_model_whitespace_group_into_one_row() -> None:
    table = build_table(
        [
            item("workstation", manufacturer="HP", model="ProDesk 400 G6"),
            item("workstation", manufacturer=" hewlett-packard", model="ProDesk  400 G6 "),
            item("workstation", manufacturer="Hewlett Packard", model="ProDesk\t400 G6"),
            item("workstation", manufacturer="HP Inc.", model="prodesk 400 g6"),  # case kept
        ]
    )
    assert table.rows == (
        Row("DESKTOP", DESKTOP, "HP", "ProDesk 400 G6", 2021, True, 3),
        Row("DESKTOP", DESKTOP, "HP", "prodesk 400 g6", 2021, True, 1),
    )


def test_rows_sort_by_code_manufacturer_model_year_none_first_then_not_in_operation() -> None:
    items = [
        item("printer", manufacturer="HP", model="M404"),
        item(year=2022),
        item(year=None, status="under_repair"),
        item(year=None),
        item(year=2021),
        item(year=2021, status="out_of_order"),
        item(manufacturer="ACER", model="TravelMate"),
        item(model="Latitude 3420"),
        item("workstation", manufacturer="HP", model="ProDesk"),
    ]
    table = build_table(reversed(items))
    assert [
        (r.category_code, r.manufacturer, r.model, r.acquisition_year, r.in_operation)
        for r in table.rows
    ] == [
        ("DESKTOP", "HP", "ProDesk", 2021, True),
        ("LAPTOP", "ACER", "TravelMate", 2021, True),
        ("LAPTOP", "DELL", "Latitude 3420", 2021, True),
        ("LAPTOP", "DELL", "Latitude 3520", None, False),
        ("LAPTOP", "DELL", "Latitude 3520", None, True),
        ("LAPTOP", "DELL", "Latitude 3520", 2021, False),
        ("LAPTOP", "DELL", "Latitude 3520", 2021, True),
        ("LAPTOP", "DELL", "Latitude 3520", 2022, True),
        ("PRINTER", "HP", "M404", 2021, True),
    ]


def test_the_order_of_items_does_not_change_the_table() -> None:
    items = [
        item(year=y, status=s)
        for y in (None, 2019, 2020)
        for s in ("in_use", "lost", "out_of_order")
    ]
    items += [item("cpu", in_bundle=True), item("rack"), item("zzz")]
    assert build_table(items) == build_table(reversed(items))


def test_groups_with_counts_build_the_same_table_as_single_items() -> None:
    groups = [(item(), 12), (item(status="lost"), 3), (item("cpu", in_bundle=True), 12)]
    singles = [facts for facts, count in groups for _ in range(count)]
    assert build_table_from_groups(groups) == build_table(singles)
    assert build_table_from_groups(groups).item_count == 27


def test_a_group_of_no_items_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_table_from_groups([(item(), 0)])


def test_greek_manufacturer_and_model_round_trip_through_the_payload() -> None:
    table = build_table([item("printer", manufacturer="  Ελληνική  Εταιρεία", model="Μοντέλο Ά")])
    assert table.rows[0].manufacturer == "ΕΛΛΗΝΙΚΉ ΕΤΑΙΡΕΊΑ"
    payload = to_payload(table, **_payload_args())
    wire = json.loads(json.dumps(payload, ensure_ascii=False))
    assert rows_from_payload(wire["rows"]) == table.rows
    assert content_hash(rows_from_payload(wire["rows"])) == wire["content_hash"]


# --- content hash -------------------------------------------------------------------------------


GOLDEN_ROWS = (
    Row("DESKTOP", DESKTOP, "HP", "ProDesk 400 G6", 2019, True, 12),
    Row("LAPTOP", LAPTOP, "DELL", "Latitude 3520", None, False, 1),
    Row("PRINTER", "Εκτυπωτές", "ΕΛΛΗΝΙΚΉ", "Μοντέλο Ά", 2024, True, 2),
)
GOLDEN_JSON = (
    '[["DESKTOP","HP","ProDesk 400 G6",2019,true,12],'
    '["LAPTOP","DELL","Latitude 3520",null,false,1],'
    '["PRINTER","ΕΛΛΗΝΙΚΉ","Μοντέλο Ά",2024,true,2]]'
)
GOLDEN_HASH = "0fde8bd6984f4dd5936635261cddbdfe86a22f648a766cdacd1c8d978c9547d6"


def test_content_hash_is_sha256_of_the_compact_json_rows() -> None:
    assert hashlib.sha256(GOLDEN_JSON.encode("utf-8")).hexdigest() == GOLDEN_HASH
    assert content_hash(GOLDEN_ROWS) == GOLDEN_HASH


def test_content_hash_ignores_the_label_and_follows_the_table() -> None:
    relabelled = tuple(Row(r.category_code, "x", *_tail(r)) for r in GOLDEN_ROWS)
    assert content_hash(relabelled) == GOLDEN_HASH
    table = Table(GOLDEN_ROWS, (), (), item_count=15)
    assert table.content_hash == GOLDEN_HASH


def _tail(row: Row) -> tuple[str, str, int | None, bool, int]:
    return row.manufacturer, row.model, row.acquisition_year, row.in_operation, row.quantity


def test_an_empty_table_hashes_the_empty_list() -> None:
    table = build_table([])
    assert table.rows == ()
    assert table.item_count == 0
    assert table.content_hash == content_hash(()) == EMPTY_HASH
    assert EMPTY_HASH == "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"


def test_a_table_of_only_unreported_items_has_the_empty_hash() -> None:
    table = build_table([item("cpu", in_bundle=True), item(status="lost")])
    assert table.content_hash == EMPTY_HASH


# --- payload ------------------------------------------------------------------------------------


def _payload_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "body_code": "0551010",
        "body_name": "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ",
        "body_status": "active",
        "merged_into": None,
        "registry_version": 7,
        "as_of": datetime(2026, 11, 30, 1, 0, tzinfo=UTC),
        "basis": "live",
        "certification": None,
        "mapping_version": MAPPING_VERSION,
    }
    return args | overrides


def test_the_payload_has_the_contract_shape() -> None:
    table = build_table(
        [item("workstation", manufacturer="HP", model="ProDesk 400 G6", year=2019)] * 12
        + [item("cpu", in_bundle=True)] * 12
        + [item(status="withdrawn")] * 3
    )
    payload = to_payload(table, **_payload_args())
    assert payload == {
        "body_code": "0551010",
        "body_name": "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ",
        "body_status": "active",
        "merged_into": None,
        "registry_version": 7,
        "idempotency_key": "0551010:7",
        "as_of": "2026-11-30T01:00:00Z",
        "basis": "live",
        "certification": None,
        "mapping_version": "2026.1",
        "rows": [
            {
                "line": 1,
                "category_code": "DESKTOP",
                "category_label": DESKTOP,
                "manufacturer": "HP",
                "model": "ProDesk 400 G6",
                "acquisition_year": 2019,
                "quantity": 12,
                "in_operation": True,
            }
        ],
        "not_reported": [
            {"reason": "component_of_bundle", "local_category": "cpu", "quantity": 12}
        ],
        "excluded_by_status": [{"status": "withdrawn", "quantity": 3}],
        "content_hash": table.content_hash,
    }
    assert json.loads(json.dumps(payload)) == payload  # JSON-ready as it is


def test_payload_lines_run_one_to_n_in_row_order() -> None:
    table = Table(GOLDEN_ROWS, (), (), item_count=15)
    payload = to_payload(table, **_payload_args())
    assert [r["line"] for r in payload["rows"]] == [1, 2, 3]
    assert rows_from_payload(payload["rows"]) == GOLDEN_ROWS
    assert payload["content_hash"] == GOLDEN_HASH


def test_as_of_is_written_in_utc_with_z() -> None:
    athens = timezone(timedelta(hours=2))
    payload = to_payload(
        build_table([]), **_payload_args(as_of=datetime(2026, 11, 30, 3, 0, tzinfo=athens))
    )
    assert payload["as_of"] == "2026-11-30T01:00:00Z"
    assert payload["rows"] == []


def test_a_certified_merged_payload_carries_its_certification_and_absorber() -> None:
    certification = {
        "certification_id": "c-1",
        "certified_at": "2026-11-29T10:00:00Z",
        "content_hash": "0" * 64,
        "item_count": 27,
    }
    payload = to_payload(
        build_table([]),
        **_payload_args(
            basis="certified",
            certification=certification,
            body_status="merged",
            merged_into="0551011",
        ),
    )
    assert payload["certification"] == certification
    assert payload["merged_into"] == "0551011"


@pytest.mark.parametrize(
    "overrides",
    [
        {"as_of": datetime(2026, 11, 30, 1, 0)},  # noqa: DTZ001  (the naive instant is the point)
        {"registry_version": 0},
        {"body_status": "merged"},  # without merged_into
        {"merged_into": "0551011"},  # while active
        {"basis": "certified"},  # without a certification
        {"certification": {"certification_id": "c-1"}},  # while live
    ],
)
def test_an_inconsistent_payload_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayloadError):
        to_payload(build_table([]), **_payload_args(**overrides))


@pytest.mark.parametrize(
    "broken",
    [
        {"acquisition_year": "2021"},
        {"in_operation": 1},
        {"quantity": True},
        {"model": None},
    ],
)
def test_rows_from_payload_refuses_mistyped_fields(broken: dict[str, Any]) -> None:
    row = to_payload(Table((laptop_row(),), (), (), 1), **_payload_args())["rows"][0]
    with pytest.raises(InvalidPayloadError):
        rows_from_payload([row | broken])
