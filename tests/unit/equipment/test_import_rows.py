"""The bulk import's file rules without I/O: headers, cells, identities, CSV and XLSX reading."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import Workbook

from equipment.importer.rows import (
    ImportFormatError,
    ImportRow,
    ImportSummary,
    Outcome,
    RowResult,
    file_kind,
    header_key,
    map_header,
    parse_cost,
    parse_date,
    parse_status,
    read_csv,
    read_xlsx,
    validate_row,
)

UNIT = "0551040"
# Spreadsheet date cells carry no time zone: openpyxl reads them as naive datetimes.
CELL_DATE = datetime(2023, 3, 1)  # noqa: DTZ001


def test_headers_match_accent_case_and_punctuation_blind() -> None:
    summary = ImportSummary()
    columns = map_header(
        ["α/α", "ΚΑΤΗΓΟΡΙΑ", "Κατασκευαστης", "μοντέλο", "Αρ. Απογραφής", "κόστος", "Άλλο"],
        summary,
    )
    assert columns == [
        "row_key", "category", "manufacturer", "model", "asset_number", "cost_eur", None,
    ]  # fmt: skip
    assert summary.ignored_columns == ["Άλλο"]
    assert header_key("Κόστος (€)") == header_key("κοστος")


def test_a_header_without_a_required_column_is_refused() -> None:
    with pytest.raises(ImportFormatError, match="Κατασκευαστής"):
        map_header(["Κατηγορία", "Μοντέλο"])


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("15/09/2021", date(2021, 9, 15)), ("1.2.2020", date(2020, 2, 1)),
     ("2022-01-10", date(2022, 1, 10)), (CELL_DATE, date(2023, 3, 1)),
     ("", None), (None, None)],
)  # fmt: skip
def test_dates_are_read_in_greek_and_iso_forms(cell: object, expected: date | None) -> None:
    assert parse_date("acquired_on", cell) == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("1.234,50", Decimal("1234.50")), ("1234,5", Decimal("1234.50")),
     ("1,234.50", Decimal("1234.50")), ("450", Decimal("450.00")), (450.0, Decimal("450.00")),
     ("12.5 €", Decimal("12.50")), (None, None)],
)  # fmt: skip
def test_amounts_in_euro_are_read_in_greek_and_english_forms(
    cell: object, expected: Decimal | None
) -> None:
    assert parse_cost(cell) == expected


def test_an_ambiguous_or_negative_amount_is_an_error_row() -> None:
    for cell in ("1.234", "-5", "abc"):
        result = validate_row(2, {"category": "laptop", "manufacturer": "Dell", "model": "X",
                                  "serial_number": "S", "cost_eur": cell}, UNIT)  # fmt: skip
        assert isinstance(result, RowResult)
        assert result.outcome is Outcome.ERROR
        assert result.field == "Κόστος (€)"


def test_status_labels_and_codes() -> None:
    assert parse_status("Σε Αποθήκη") == "in_storage"
    assert parse_status("out_of_order") == "out_of_order"
    assert parse_status(None) == "in_use"
    result = validate_row(2, {"category": "laptop", "manufacturer": "Dell", "model": "X",
                              "serial_number": "S", "status": "Αποσύρθηκε"}, UNIT)  # fmt: skip
    assert isinstance(result, RowResult)
    assert result.field == "Κατάσταση"


def test_the_item_id_is_derived_from_the_serial_else_the_asset_number_else_the_row_key() -> None:
    base = {"category": "laptop", "manufacturer": "Dell Inc.", "model": "X"}
    by_serial = validate_row(2, {**base, "serial_number": "ab-12 3"}, UNIT)
    same = validate_row(9, {**base, "manufacturer": "DELL INC", "serial_number": "AB123"}, UNIT)
    by_asset = validate_row(3, {**base, "asset_number": "ΠΑΛ-7"}, UNIT)
    by_key = validate_row(4, {**base, "row_key": 12.0}, UNIT)
    assert isinstance(by_serial, ImportRow)
    assert isinstance(same, ImportRow)
    assert isinstance(by_asset, ImportRow)
    assert isinstance(by_key, ImportRow)
    assert by_serial.item_id == same.item_id
    assert len({by_serial.item_id, by_asset.item_id, by_key.item_id}) == 3
    assert by_key.identity == "row:12"
    assert validate_row(5, {**base, "serial_number": "AB123"}, "0551050") != by_serial
    none = validate_row(6, base, UNIT)
    assert isinstance(none, RowResult)
    assert none.field == "Σειριακός αριθμός"


def test_csv_in_windows_1253_with_semicolons_is_read_row_by_row() -> None:
    text = "Κατηγορία;Κατασκευαστής;Μοντέλο;Χώρος\r\nΟθόνη;LG;24MK;Γραφείο\r\n\r\nUPS;APC;Back;\r\n"
    rows = list(read_csv(io.BytesIO(text.encode("cp1253"))))
    assert rows == [
        (2, {"category": "Οθόνη", "manufacturer": "LG", "model": "24MK", "location": "Γραφείο"}),
        (4, {"category": "UPS", "manufacturer": "APC", "model": "Back", "location": ""}),
    ]


def test_xlsx_is_read_from_the_first_sheet_in_read_only_mode() -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Κατηγορία", "Κατασκευαστής", "Μοντέλο", "Ημερομηνία κτήσης"])
    sheet.append(["Ταμπλέτα", "Samsung", "Tab A", CELL_DATE])
    buffer = io.BytesIO()
    workbook.save(buffer)
    buffer.seek(0)
    rows = list(read_xlsx(buffer))
    assert rows == [
        (2, {"category": "Ταμπλέτα", "manufacturer": "Samsung", "model": "Tab A",
             "acquired_on": CELL_DATE}),
    ]  # fmt: skip
    with pytest.raises(ImportFormatError):
        list(read_xlsx(io.BytesIO(b"not a workbook")))


def test_file_kind_from_content_type_or_name() -> None:
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert file_kind(None, xlsx) == "xlsx"
    assert file_kind("Απογραφή.XLSX", None) == "xlsx"
    assert file_kind("items.csv", "text/csv") == "csv"


def test_summary_status_is_partial_when_some_rows_fail() -> None:
    summary = ImportSummary()
    summary.add(RowResult(2, Outcome.CREATED))
    assert summary.status == "completed"
    summary.add(RowResult(3, Outcome.ERROR, reason="x"))
    assert summary.status == "partial"
    only_errors = ImportSummary()
    only_errors.add(RowResult(2, Outcome.ERROR, reason="x"))
    assert only_errors.status == "failed"
