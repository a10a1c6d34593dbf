"""CSV and XLSX exports: the registry's Greek headers in its order, ΝΑΙ/ΟΧΙ, blank unknown years."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from openpyxl import load_workbook

from registry_sync.render import (
    BOM,
    BodyRef,
    iter_bodies_csv,
    iter_csv,
    write_bodies_xlsx,
    write_xlsx,
)
from registry_sync.table import Row

REGISTRY_HEADERS = [
    "Α/Α",
    "Είδος Εξοπλισμού",
    "Κατασκευαστής",
    "Μοντέλο",
    "Έτος Κτήσης",
    "Ποσότητα",
    "Εν Λειτουργία",
]
ROWS = (
    Row("DESKTOP", "Επιτραπέζιοι υπολογιστές", "HP", "ProDesk 400 G6", 2019, True, 12),
    Row("LAPTOP", "Φορητοί υπολογιστές", "ΕΛΛΗΝΙΚΉ", 'Μοντέλο, "Ά"', None, False, 1),
)


def _parse_csv(chunks: Iterator[str]) -> tuple[str, list[list[str]]]:
    text = "".join(chunks)
    return text, list(csv.reader(io.StringIO(text.removeprefix(BOM))))


def test_csv_has_a_bom_and_the_registry_headers_in_order() -> None:
    text, records = _parse_csv(iter_csv(ROWS))
    assert text.startswith(BOM + "Α/Α,")
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    assert records[0] == REGISTRY_HEADERS


def test_csv_rows_say_yes_or_no_and_leave_an_unknown_year_blank() -> None:
    _, records = _parse_csv(iter_csv(ROWS))
    assert records[1:] == [
        ["1", "Επιτραπέζιοι υπολογιστές", "HP", "ProDesk 400 G6", "2019", "12", "ΝΑΙ"],
        ["2", "Φορητοί υπολογιστές", "ΕΛΛΗΝΙΚΉ", 'Μοντέλο, "Ά"', "", "1", "ΟΧΙ"],
    ]


def test_an_empty_table_is_headers_only() -> None:
    _, records = _parse_csv(iter_csv(()))
    assert records == [REGISTRY_HEADERS]


def test_csv_neutralises_text_a_spreadsheet_would_run_as_a_formula() -> None:
    row = Row("OTHER_PERIPHERAL", "Λοιπά περιφερειακά", "=HYPERLINK(1)", "-X", 2020, True, 1)
    _, records = _parse_csv(iter_csv([row]))
    assert records[1][2:4] == ["'=HYPERLINK(1)", "'-X"]


def test_a_multi_body_csv_leads_with_code_and_name_and_numbers_lines_per_body() -> None:
    bodies = [
        (BodyRef("0551010", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ"), ROWS),
        (BodyRef("0551011", "2ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ"), ()),
        (BodyRef("0551012", "3ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ"), ROWS[:1]),
    ]
    _, records = _parse_csv(iter_bodies_csv(bodies))
    assert records[0] == ["Κωδικός φορέα", "Φορέας", *REGISTRY_HEADERS]
    assert [record[:3] for record in records[1:]] == [
        ["0551010", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "1"],
        ["0551010", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "2"],
        ["0551012", "3ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "1"],
    ]


def test_csv_streams_the_headers_before_reading_any_body() -> None:
    started: list[bool] = []

    def bodies() -> Iterator[tuple[BodyRef, tuple[Row, ...]]]:
        started.append(True)
        yield BodyRef("0551010", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ"), ROWS

    chunks = iter_bodies_csv(bodies())
    assert next(chunks).startswith(BOM + "Κωδικός φορέα,Φορέας,Α/Α")
    assert started == []
    assert "0551010" in next(chunks)
    assert started == [True]


def test_a_large_export_comes_in_several_chunks() -> None:
    bodies = ((BodyRef(f"{code:07d}", "ΣΧΟΛΕΙΟ"), ROWS) for code in range(2000))
    chunks = list(iter_bodies_csv(bodies))
    assert len(chunks) > 2
    assert sum(chunk.count("\r\n") for chunk in chunks) == 1 + 2 * 2000


def test_xlsx_has_the_greek_sheet_headers_and_values() -> None:
    buffer = io.BytesIO()
    write_xlsx(buffer, ROWS)
    workbook = load_workbook(io.BytesIO(buffer.getvalue()))
    sheet = workbook.active
    assert sheet is not None
    assert sheet.title == "Α. Εξοπλισμός"
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values == [
        REGISTRY_HEADERS,
        [1, "Επιτραπέζιοι υπολογιστές", "HP", "ProDesk 400 G6", 2019, 12, "ΝΑΙ"],
        [2, "Φορητοί υπολογιστές", "ΕΛΛΗΝΙΚΉ", 'Μοντέλο, "Ά"', None, 1, "ΟΧΙ"],
    ]
    assert sheet["A1"].font.bold
    assert not sheet["A2"].font.bold
    assert sheet.column_dimensions["B"].width == 34
    assert sheet.freeze_panes == "A2"


def test_xlsx_keeps_formula_like_text_as_text() -> None:
    row = Row("OTHER_PERIPHERAL", "Λοιπά περιφερειακά", "=1+1", "#N/A", 2020, True, 1)
    buffer = io.BytesIO()
    write_xlsx(buffer, [row])
    sheet = load_workbook(io.BytesIO(buffer.getvalue())).active
    assert sheet is not None
    assert (sheet["C2"].value, sheet["C2"].data_type) == ("=1+1", "s")
    assert (sheet["D2"].value, sheet["D2"].data_type) == ("#N/A", "s")


def test_xlsx_drops_control_characters_xml_cannot_hold() -> None:
    row = Row("LAPTOP", "Φορητοί υπολογιστές", "DE\x01LL", "X", 2020, True, 1)
    buffer = io.BytesIO()
    write_xlsx(buffer, [row])
    sheet = load_workbook(io.BytesIO(buffer.getvalue())).active
    assert sheet is not None
    assert sheet["C2"].value == "DELL"


def test_a_multi_body_xlsx_leads_with_code_and_name() -> None:
    buffer = io.BytesIO()
    write_bodies_xlsx(buffer, [(BodyRef("0551010", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ"), ROWS)])
    sheet = load_workbook(io.BytesIO(buffer.getvalue())).active
    assert sheet is not None
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == ["Κωδικός φορέα", "Φορέας", *REGISTRY_HEADERS]
    assert values[2][:3] == ["0551010", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", 2]
