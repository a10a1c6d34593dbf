"""Bulk import on the real event store: per-row results, partial status, idempotent re-import,
the import in each item's history, CSV (UTF-8 and Windows-1253, `;`) and XLSX.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from openpyxl import Workbook
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from equipment import importer, views
from equipment.importer.rows import FileKind
from shared.clock import FixedClock
from shared.events.envelope import Actor
from shared.events.equipment import ProductApproved, ProductProposed
from shared.eventstore import EventStore
from tests.integration.equipment.cert_kit import athens, migrated_store

pytestmark = pytest.mark.infra

UNIT = "0551040"
HEADER = [
    "Α/Α", "Κατηγορία", "Κατασκευαστής", "Μοντέλο", "Σειριακός αριθμός", "Αριθμός απογραφής",
    "Χώρος", "Κατάσταση", "Ημερομηνία κτήσης", "Κόστος (€)", "Πρόγραμμα χρηματοδότησης",
    "Στήλη που δεν ξέρουμε",
]  # fmt: skip
ROWS: list[list[Any]] = [
    [1, "Φορητός υπολογιστής", "Dell", "Latitude 5520", "SN-001", "", "Εργαστήριο Πληροφορικής",
     "Σε χρήση", "15/09/2021", "1.234,50", "ΕΣΠΑ 2014-2020", "x"],
    [2, "laptop", "DELL", "latitude 5520", "SN 002", "", "Εργαστήριο Πληροφορικής", "", "", "", "",
     ""],
    [3, "Βιντεοπροβολέας", "Epson", "EB-W06", "PJ-77", "", "Γραφείο", "σε αποθηκη", "2022-01-10",
     "450", "", ""],
    [4, "Τοστιέρα", "Izzy", "T1", "TS1", "", "Γραφείο", "", "", "", "", ""],
    [5, "Εκτυπωτής", "HP", "LaserJet", "PR-1", "", "Αποθήκη στον Άρη", "", "", "", "", ""],
    [6, "Εκτυπωτής", "HP", "LaserJet", "PR-2", "", "Γραφείο", "", "31/02/2022", "", "", ""],
    [7, "Φορητός υπολογιστής", "Dell", "Latitude 5520", "SN001", "", "Γραφείο", "", "", "", "",
     ""],
    [8, "Φορητός υπολογιστής", "Dell", "Latitude 5520", "", "", "Γραφείο", "", "", "", "", ""],
    [9, "Μνήμη RAM", "Kingston", "8GB DDR4", "", "ΠΑΛ-0042", "Γραφείο", "", "", "1.234", "", ""],
]  # fmt: skip
EXPECTED = {
    1: ("created", None),
    2: ("created", None),
    3: ("created", None),
    4: ("error", "Κατηγορία"),
    5: ("error", "Χώρος"),
    6: ("error", "Ημερομηνία κτήσης"),
    7: ("error", "Σειριακός αριθμός"),  # SN001 is SN-001 again: duplicate of line 2
    8: ("error", None),  # a laptop needs a serial number (the domain's rule)
    9: ("error", "Κόστος (€)"),  # 1.234 is ambiguous
}


@pytest_asyncio.fixture(loop_scope="session")
async def setup(
    fresh_database: Callable[[str], str],
) -> AsyncIterator[tuple[EventStore, AsyncEngine]]:
    url = fresh_database("equipment_import")
    clock = FixedClock(athens("2025-11-20T09:00"))
    store = await migrated_store(url, clock)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "TRUNCATE events, outbox, equipment_imports, equipment_import_rows,"
                " equipment_units_view, equipment_locations_view, products_view,"
                " equipment_asset_sequences"
            )
        )
        await connection.execute(text("UPDATE event_positions SET last_position = 0"))
        await connection.execute(
            insert(views.units_view).values(
                unit_id=UNIT, parent_id=None, name="1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", status="active",
                version=1, position=1,
            )
        )  # fmt: skip
        for number, name in ((1, "Εργαστήριο Πληροφορικής"), (2, "Γραφείο")):
            await connection.execute(
                insert(views.locations_view).values(
                    location_id=f"{UNIT}-L{number}", unit_id=UNIT, name=name, kind="office",
                    is_retired=False,
                )
            )  # fmt: skip
    # An approved laptop product (its stream and its read-model row).
    product = uuid4()
    await store.append(
        f"product:{product}",
        [
            ProductProposed(
                product_id=product, category_id="laptop", manufacturer="Dell",
                model="Latitude 5520", proposed_at=clock.now(),
            ),
            ProductApproved(product_id=product, approved_at=clock.now()),
        ],
        expected_version=0,
    )  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(
            insert(views.products_view).values(
                product_id=product, category_id="laptop", manufacturer="Dell",
                model="Latitude 5520", attributes={}, status="approved", version=2, position=2,
            )
        )  # fmt: skip
    yield store, engine
    await engine.dispose()
    await store.close()


def csv_bytes(rows: list[list[Any]], *, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    lines = [delimiter.join(f'"{cell}"' for cell in row) for row in [HEADER, *rows]]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def run(
    store: EventStore, engine: AsyncEngine, data: bytes, kind: FileKind, **more: Any
) -> tuple[list[importer.RowResult], importer.ImportSummary, Any]:
    summary = importer.ImportSummary()
    import_id = uuid4()
    async with AsyncSession(engine) as session:
        results = [
            r
            async for r in importer.import_file(
                io.BytesIO(data), kind, unit_id=UNIT, file_name=f"items.{kind}",
                import_id=import_id, actor=Actor("teacher", "entry"), store=store,
                clock=store.clock, session=session, summary=summary, **more,
            )
        ]  # fmt: skip
    return results, summary, import_id


@pytest.mark.parametrize(
    ("kind", "encoding", "delimiter", "batch_size"),
    [("csv", "utf-8", ",", 500), ("csv", "cp1253", ";", 2), ("xlsx", "", "", 500)],
)
async def test_import_answers_every_row_and_a_second_run_changes_nothing(
    setup: tuple[EventStore, AsyncEngine],
    kind: FileKind,
    encoding: str,
    delimiter: str,
    batch_size: int,
) -> None:
    store, engine = setup
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE equipment_asset_sequences"))
        await connection.execute(text("DELETE FROM events WHERE stream_id NOT LIKE 'product:%'"))
    data = (
        xlsx_bytes(ROWS) if kind == "xlsx" else csv_bytes(ROWS, encoding=encoding,
                                                             delimiter=delimiter)
    )  # fmt: skip
    results, summary, import_id = await run(store, engine, data, kind, batch_size=batch_size)

    got = {
        r.line - 1: (r.outcome.value, r.field if r.outcome is importer.Outcome.ERROR else None)
        for r in results
    }
    expected = dict(EXPECTED)
    expected[8] = ("error", got[8][1])  # the field of a domain refusal is the domain's to name
    assert got == expected
    assert summary.status == "partial"
    assert summary.ignored_columns == ["Στήλη που δεν ξέρουμε"]
    assert "duplicate of line 2" in str(results[6].reason)
    assert "SerialNumberRequired" in str(results[7].reason)

    # Every created item's history shows the import.
    created = [r for r in results if r.outcome is importer.Outcome.CREATED]
    for result in created:
        history = await store.load(str(result.item_id))
        assert history[-1].type == "ItemRegistered"
        assert history[-1].data["import_id"] == str(import_id)
        assert history[-1].correlation_id == import_id
    first = await store.load(str(created[0].item_id))
    assert first[0].data["acquisition"]["cost_eur"] == "1234.50"
    assert first[0].data["acquisition"]["acquired_on"] == "2021-09-15"
    assert first[0].data["serial_number"] == "SN001"
    projector_item = await store.load(str(created[2].item_id))
    assert projector_item[0].data["status"] == "in_storage"
    assert projector_item[0].data["is_product_pending_approval"] is True  # proposed by the import

    # Again: every row that was created is unchanged, nothing is appended.
    events_before = await store.last_position()
    again, summary_again, second_id = await run(store, engine, data, kind, batch_size=batch_size)
    assert [r.outcome.value for r in again] == [
        "unchanged" if r.outcome is importer.Outcome.CREATED else r.outcome.value for r in results
    ]
    assert [r.item_id for r in again if r.outcome is importer.Outcome.UNCHANGED] == [
        r.item_id for r in created
    ]
    assert await store.last_position() == events_before
    assert summary_again.status == "partial"

    record = await importer.get_import(store, import_id)
    assert record is not None
    assert record["status"] == "partial"
    assert record["counts"]["created"] == 3
    assert [row["line"] for row in record["rows"]] == [5, 6, 7, 8, 9, 10]
    assert second_id != import_id


async def test_a_file_without_required_columns_is_refused_as_a_whole(
    setup: tuple[EventStore, AsyncEngine],
) -> None:
    store, engine = setup
    with pytest.raises(importer.ImportFormatError, match="Μοντέλο"):
        await run(store, engine, "Κατηγορία,Κατασκευαστής\nlaptop,Dell\n".encode(), "csv")
