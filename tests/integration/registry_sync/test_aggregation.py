"""The aggregation is right: registrations, status changes, transfers, withdrawals, corrections,
bundles and a merge yield exactly the expected per-body tables at the reference receiver.

Events go through the kernel's stores, outbox relays and real Kafka topics into registry-sync's
projection; its delivery worker pushes to the receiver process over HTTP. The expected tables are
written out by hand from the mapping rules (DESIGN.md), not computed by the code under test.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import openpyxl
import pytest

from registry_sync.render import BODY_HEADERS, HEADERS
from shared.events.equipment import (
    ItemBundled,
    ItemDetailsCorrected,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferDispatched,
    ItemWithdrawn,
)
from shared.events.units import UnitMerged, UnitRenamed
from tests.integration.registry_sync.kit import (
    SyncWorld,
    item,
    unit,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.infra

A, B, C = "0551001", "0551002", "0551003"


def table(receiver: Receiver, code: str) -> list[tuple[Any, ...]]:
    held = receiver.body(code)
    assert held is not None, f"the receiver holds nothing for {code}"
    return [
        (r["category_code"], r["manufacturer"], r["model"], r["acquisition_year"],
         r["in_operation"], r["quantity"])
        for r in held["rows"]
    ]  # fmt: skip


async def test_the_receiver_holds_exactly_the_expected_tables(
    world: SyncWorld, receiver: Receiver
) -> None:
    for code, name in ((A, "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ"), (B, "2ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ"), (C, "3ο ΓΥΜΝΑΣΙΟ")):
        await world.emit(world.units, f"unit:{code}", [unit(code, name)])
    # A: two alike laptops (aliases and spacing normalise into one row), a broken printer,
    # a workstation bundle whose monitor is a part, a withdrawn projector, a lost tablet.
    laptops = [item(A, "laptop", "Hewlett-Packard", "ProBook  450 G8") for _ in range(2)]
    laptops.append(item(A, "laptop", " hp ", "ProBook 450 G8"))
    printer = item(A, "printer", "Brother", "HL-L2350DW", year=2019)
    workstation = item(A, "workstation", "Dell", "OptiPlex 7090", year=2021)
    monitor = item(A, "monitor", "Dell", "P2422H", year=2021)
    projector = item(A, "projector", "Epson", "EB-X41", year=2015)
    tablet = item(A, "tablet", "Samsung", "Galaxy Tab A", year=None)
    loose_monitor = item(B, "monitor", "ΑΟC", "24B2XH", year=2022)  # Greek letters in the name
    for registered in [*laptops, printer, workstation, monitor, projector, tablet, loose_monitor]:
        await world.emit(world.equipment, str(registered.item_id), [registered])
    await world.emit(world.equipment, str(printer.item_id), [
        ItemStatusChanged(item_id=printer.item_id, unit_id=A, from_status=ItemStatus.IN_USE,
                          to_status=ItemStatus.OUT_OF_ORDER, reason="χαλασμένο",
                          performed_on=date(2026, 11, 2)),
    ])  # fmt: skip
    await world.emit(world.equipment, str(monitor.item_id), [
        ItemBundled(item_id=monitor.item_id, unit_id=A, bundle_item_id=workstation.item_id,
                    performed_on=date(2026, 11, 2)),
    ])  # fmt: skip
    await world.emit(world.equipment, str(projector.item_id), [
        ItemWithdrawn(item_id=projector.item_id, unit_id=A, from_status=ItemStatus.IN_USE,
                      decision_reference="Πράξη 12/2026", decided_on=date(2026, 11, 3),
                      performed_on=date(2026, 11, 3)),
    ])  # fmt: skip
    await world.emit(world.equipment, str(tablet.item_id), [
        ItemStatusChanged(item_id=tablet.item_id, unit_id=A, from_status=ItemStatus.IN_USE,
                          to_status=ItemStatus.LOST, reason="κλοπή",
                          performed_on=date(2026, 11, 3)),
    ])  # fmt: skip
    # One laptop goes from A to B: dispatched (A still holds it), then accepted by B.
    moving = laptops[0]
    transfer = uuid4()
    await world.emit(world.equipment, str(moving.item_id), [
        ItemTransferDispatched(item_id=moving.item_id, unit_id=A, transfer_id=transfer,
                               to_unit_id=B, from_location_id="L1",
                               performed_on=date(2026, 11, 4)),
        ItemTransferAccepted(item_id=moving.item_id, unit_id=B, transfer_id=transfer,
                             from_unit_id=A, to_location_id="L9",
                             performed_on=date(2026, 11, 5)),
    ])  # fmt: skip
    # A correction: B's monitor was bought in 2023, by "AOC" in Latin letters.
    await world.emit(world.equipment, str(loose_monitor.item_id), [
        ItemDetailsCorrected(item_id=loose_monitor.item_id, unit_id=B, reason="λάθος",
                             performed_on=date(2026, 11, 6), manufacturer="AOC",
                             acquisition=loose_monitor.acquisition.model_copy(
                                 update={"acquired_on": date(2023, 1, 10)})),
    ])  # fmt: skip
    # C holds a switch, is renamed, then merged into B: its items count at B from then on.
    switch = item(C, "switch_hub", "Cisco Systems", "SG350-28", year=2018)
    await world.emit(world.equipment, str(switch.item_id), [switch])
    await world.emit(world.units, f"unit:{C}", [
        UnitRenamed(unit_id=C, name="3ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", renamed_on=date(2026, 11, 1)),
        UnitMerged(unit_id=C, into_unit_id=B, merged_on=date(2026, 11, 7)),
    ])  # fmt: skip
    await world.settle()

    assert table(receiver, A) == [
        ("DESKTOP", "DELL", "OptiPlex 7090", 2021, True, 1),
        ("LAPTOP", "HP", "ProBook 450 G8", 2020, True, 2),
        ("PRINTER", "BROTHER", "HL-L2350DW", 2019, False, 1),
    ]
    assert table(receiver, B) == [
        ("LAPTOP", "HP", "ProBook 450 G8", 2020, True, 1),
        ("MONITOR", "AOC", "24B2XH", 2023, True, 1),
        ("NETWORK", "CISCO", "SG350-28", 2018, True, 1),
    ]
    assert table(receiver, C) == []
    held_a, held_c = receiver.body(A), receiver.body(C)
    assert held_a is not None
    assert held_c is not None
    stats = receiver.stats()
    assert all(count == 1 for count in stats["applied_per_key"].values()), stats
    # What each push said beside its rows, as the receiver stored it.
    ours = await world.ledger_row(A)
    assert ours.acked_version == held_a["registry_version"]
    assert ours.acked_hash == held_a["content_hash"]
    merged = await world.client.get(f"/registry/bodies/{C}/table", headers=world.token())
    assert merged.status_code == 200, merged.text
    assert merged.json()["body_status"] == "merged"
    assert merged.json()["merged_into"] == B
    answer = await world.client.get(f"/registry/bodies/{A}/table", headers=world.token())
    document = answer.json()
    assert {(n["reason"], n["local_category"]) for n in document["not_reported"]} == {
        ("component_of_bundle", "monitor"),
    }
    assert {(e["status"], e["quantity"]) for e in document["excluded_by_status"]} == {
        ("lost", 1),
        ("withdrawn", 1),
    }
    assert datetime.fromisoformat(held_a["as_of"]) <= datetime.now(UTC)

    await check_exports(world)


async def check_exports(world: SyncWorld) -> None:
    """The same tables as the registry's Greek spreadsheet: one body, then every body, streamed."""
    csv_answer = await world.client.get(f"/registry/bodies/{A}/table.csv", headers=world.token())
    assert csv_answer.status_code == 200, csv_answer.text
    lines = list(csv.reader(io.StringIO(csv_answer.content.decode("utf-8-sig"))))
    assert lines[0] == list(HEADERS)
    assert lines[1:] == [
        ["1", "Επιτραπέζιοι υπολογιστές", "DELL", "OptiPlex 7090", "2021", "1", "ΝΑΙ"],
        ["2", "Φορητοί υπολογιστές", "HP", "ProBook 450 G8", "2020", "2", "ΝΑΙ"],
        ["3", "Εκτυπωτές", "BROTHER", "HL-L2350DW", "2019", "1", "ΟΧΙ"],
    ]
    export = await world.client.get("/registry/export.csv", headers=world.token())
    assert export.status_code == 200, export.text
    exported = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert exported[0] == [*BODY_HEADERS, *HEADERS]
    assert sorted((row[0], row[4], int(row[7])) for row in exported[1:]) == [
        (A, "BROTHER", 1), (A, "DELL", 1), (A, "HP", 2),
        (B, "AOC", 1), (B, "CISCO", 1), (B, "HP", 1),
    ]  # fmt: skip
    workbook_answer = await world.client.get("/registry/export.xlsx", headers=world.token())
    assert workbook_answer.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(workbook_answer.content), read_only=True).active
    assert sheet is not None
    values = [tuple(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == (*BODY_HEADERS, *HEADERS)
    assert len(values) == 1 + 6
    single = await world.client.get(f"/registry/bodies/{B}/table.xlsx", headers=world.token())
    assert single.status_code == 200
    assert single.headers["content-type"].startswith("application/vnd.openxmlformats")
